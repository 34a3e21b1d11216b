/**
 * Configuration: one zod schema over the environment, parsed once at the program's edge and
 * passed explicitly from there. Library code never reads process.env.
 */
import { z } from 'zod';

const postgresUrl = z
  .string()
  .refine((s) => /^postgres(ql)?:\/\//.test(s), 'must be a postgres:// or postgresql:// URL')
  .refine((s) => {
    try {
      new URL(s);
      return true;
    } catch {
      return false;
    }
  }, 'is not a parseable URL');

const hostPort = z.string().regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233');

const retryBudget = z.coerce
  .number({ message: 'must be a number of milliseconds' })
  .int('must be a whole number of milliseconds')
  .min(0, 'must be 0 (no retry) or more milliseconds')
  .max(24 * 3600_000, 'must be at most a day (86400000 ms)');

export const configSchema = z.object({
  DATABASE_URL: postgresUrl.default('postgres://root@127.0.0.1:5432/cairn'),
  TEMPORAL_ADDRESS: hostPort.default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be a namespace name (letters, digits, . _ -)')
    .default('default'),
  CAIRN_TASK_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, . _ -')
    .default('cairn'),
  TEMPORAL_UI_URL: z
    .string()
    .url('must be a URL, e.g. http://127.0.0.1:8233')
    .default('http://127.0.0.1:8233'),
  TEMPORAL_CLI: z.string().min(1).optional(),
  /**
   * How long a step attempt retries infrastructure faults of Postgres (refused or reset
   * connections, admin shutdown, too many connections, serialization failures, deadlocks)
   * around its reads and its commit before it fails: 3 minutes, so a 2-minute outage costs no
   * attempt of the role's retry policy. Keep it below the role's start-to-close timeout.
   */
  CAIRN_DB_RETRY_MS: retryBudget.default(180_000),
  /** How long CairnClient calls retry an unreachable Temporal frontend (UNAVAILABLE). */
  CAIRN_TEMPORAL_RETRY_MS: retryBudget.default(180_000),
});

export type CairnConfig = {
  databaseUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  taskQueuePrefix: string;
  temporalUiUrl: string;
  temporalCli: string | undefined;
  /** CAIRN_DB_RETRY_MS; absent means the default (180 s). */
  dbRetryMs?: number;
  /** CAIRN_TEMPORAL_RETRY_MS; absent means the default (180 s). */
  temporalRetryMs?: number;
};

/** Defaults of the retry budgets, for configs built without loadConfig. */
export const DEFAULT_DB_RETRY_MS = 180_000;
export const DEFAULT_TEMPORAL_RETRY_MS = 180_000;

/** A configuration error names the variable; the CLI prints it as one line. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`Invalid configuration: ${variable} ${problem}`);
  }
}

export function loadConfig(env: Record<string, string | undefined>): CairnConfig {
  // Treat empty strings as unset so `FOO= cmd` falls back to the default.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(variable, issue.message);
  }
  const c = parsed.data;
  return {
    databaseUrl: c.DATABASE_URL,
    temporalAddress: c.TEMPORAL_ADDRESS,
    temporalNamespace: c.TEMPORAL_NAMESPACE,
    taskQueuePrefix: c.CAIRN_TASK_QUEUE_PREFIX,
    temporalUiUrl: c.TEMPORAL_UI_URL.replace(/\/$/, ''),
    temporalCli: c.TEMPORAL_CLI,
    dbRetryMs: c.CAIRN_DB_RETRY_MS,
    temporalRetryMs: c.CAIRN_TEMPORAL_RETRY_MS,
  };
}
