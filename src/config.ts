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

const hostPort = z
  .string()
  .regex(/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/, 'must be host:port, e.g. 127.0.0.1:7233');

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
  TEMPORAL_UI_URL: z.string().url('must be a URL, e.g. http://127.0.0.1:8233').default('http://127.0.0.1:8233'),
  TEMPORAL_CLI: z.string().min(1).optional(),
});

export type CairnConfig = {
  databaseUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  taskQueuePrefix: string;
  temporalUiUrl: string;
  temporalCli: string | undefined;
};

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
  };
}
