/**
 * Configuration: one zod schema over the environment, parsed once at the program's edge and
 * passed explicitly from there. Library code never reads process.env.
 */
import {
  loadClientConfigProfile,
  type ClientConfigProfile,
  type ClientConfigTLS,
} from '@temporalio/envconfig';
import { z } from 'zod';
import { MAX_PAYLOAD_INLINE_MAX_BYTES } from './shared/payloadRefs';

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
  /**
   * The worker's Postgres pool size; a step holds a connection only while it reads or commits.
   * Unset: derived from the worker's activity concurrency (src/store/pool.ts poolSizeFor).
   */
  CAIRN_PG_POOL_MAX: z.coerce
    .number({ message: 'must be a number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(1000, 'must be at most 1000')
    .optional(),
  /**
   * Direct Postgres URL for LISTEN (wakes minVersion waits), e.g. past PgBouncer, whose
   * transaction mode cannot carry LISTEN; `off`: poll instead. Unset: DATABASE_URL.
   */
  CAIRN_PG_LISTEN_URL: z.union([z.literal('off'), postgresUrl]).optional(),
  /** How long to wait for a Postgres connection before retrying (see CAIRN_DB_RETRY_MS). */
  CAIRN_PG_CONNECT_TIMEOUT_MS: z.coerce
    .number({ message: 'must be a number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(100, 'must be at least 100 ms')
    .max(600_000, 'must be at most 600000 ms')
    .default(10_000),
  /**
   * Step outputs (and proposed steps' inputs) whose JSON is larger than this many bytes are
   * stored in Postgres and pass through Temporal's history as references (claim-check). Default
   * 16 KiB; at most 256 KiB (larger values put Temporal's 2 MB payload limit back in reach).
   */
  CAIRN_PAYLOAD_INLINE_MAX_BYTES: z.coerce
    .number({ message: 'must be a number of bytes' })
    .int('must be a whole number of bytes')
    .min(0, 'must be 0 (everything by reference) or more bytes')
    .max(MAX_PAYLOAD_INLINE_MAX_BYTES, `must be at most ${MAX_PAYLOAD_INLINE_MAX_BYTES} bytes`)
    .optional(),
  /**
   * Observability (src/telemetry): `off` (default) registers nothing, so Cairn's spans and
   * counters are no-ops; `otlp` exports traces and metrics (Cairn's and Temporal's) over
   * OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT; `prometheus` serves the metrics for scraping on
   * CAIRN_PROMETHEUS_ADDRESS and exports traces over OTLP only if OTEL_EXPORTER_OTLP_ENDPOINT is set.
   */
  CAIRN_OTEL: z
    .enum(['off', 'otlp', 'prometheus'], { message: 'must be off, otlp or prometheus' })
    .default('off'),
  /** The OTLP/HTTP base URL (…/v1/traces and …/v1/metrics are appended), as OpenTelemetry names it. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z
    .string()
    .url('must be a URL, e.g. http://127.0.0.1:4318')
    .refine((s) => /^https?:\/\//.test(s), 'must be an http:// or https:// URL (OTLP/HTTP)')
    .optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('cairn'),
  CAIRN_PROMETHEUS_ADDRESS: hostPort.default('127.0.0.1:9464'),
  /**
   * Worker versioning (docs/production.md#safe-upgrades): workers always report their deployment
   * version (CAIRN_DEPLOYMENT_NAME, CAIRN_BUILD_ID); `on` also lets Temporal route by it
   * (workflows AUTO_UPGRADE), which needs a current version set for the deployment.
   */
  CAIRN_WORKER_VERSIONING: z.enum(['on', 'off'], { message: 'must be on or off' }).default('off'),
  /** Default: the task-queue prefix. */
  CAIRN_DEPLOYMENT_NAME: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'must be letters, digits, _ - (no dots)')
    .optional(),
  /** Default: cairn-<package version>. */
  CAIRN_BUILD_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$/, 'must be letters, digits, . _ + -')
    .optional(),
  // Read by @temporalio/envconfig (see temporalProfile below), listed so the schema names every
  // variable Cairn reads: a temporal.toml profile, then TLS, mTLS and API key overrides.
  TEMPORAL_CONFIG_FILE: z.string().min(1).optional(),
  TEMPORAL_PROFILE: z.string().min(1).optional(),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: z.enum(['true', 'false', '1', '0'], { message: 'must be true or false' }).optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_CERT_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_DATA: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  // Postgres TLS, as libpq names them; each applies when DATABASE_URL does not say it.
  PGSSLMODE: z
    .enum(['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'], {
      message: 'must be disable, prefer, require, verify-ca, verify-full or no-verify',
    })
    .optional(),
  PGSSLROOTCERT: z.string().min(1).optional(),
  PGSSLCERT: z.string().min(1).optional(),
  PGSSLKEY: z.string().min(1).optional(),
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
  /** CAIRN_PG_POOL_MAX: the worker's pool size (unset: derived from its concurrency). */
  pgPoolMax?: number;
  /** CAIRN_PG_LISTEN_URL: a URL, null for `off`; absent: DATABASE_URL. */
  pgListenUrl?: string | null;
  /** CAIRN_PG_CONNECT_TIMEOUT_MS (default 10 s). */
  pgConnectTimeoutMs?: number;
  /** CAIRN_PAYLOAD_INLINE_MAX_BYTES: outputs larger than this go by reference (default 16 KiB). */
  payloadInlineMaxBytes?: number;
  /** TLS or mTLS to the Temporal frontend (temporal.toml profile, TEMPORAL_TLS_* variables); absent: plain. */
  temporalTls?: ClientConfigTLS;
  /** API key for the Temporal frontend (TEMPORAL_API_KEY or the profile's api_key); implies TLS. */
  temporalApiKey?: string;
  /** Extra gRPC headers (TEMPORAL_GRPC_META_* or the profile's grpc_meta). */
  temporalGrpcMeta?: Record<string, string>;
  /** CAIRN_OTEL; absent means off. */
  otel?: 'off' | 'otlp' | 'prometheus';
  /** OTEL_EXPORTER_OTLP_ENDPOINT (default for otlp: http://127.0.0.1:4318). */
  otlpEndpoint?: string;
  /** OTEL_SERVICE_NAME (default `cairn`). */
  otelServiceName?: string;
  /** CAIRN_PROMETHEUS_ADDRESS (default 127.0.0.1:9464). */
  prometheusAddress?: string;
  /** CAIRN_WORKER_VERSIONING=on: Temporal routes workflow tasks by deployment version. */
  workerVersioning?: boolean;
  /** CAIRN_DEPLOYMENT_NAME (default: the task-queue prefix, dots made dashes). */
  deploymentName?: string;
  /** CAIRN_BUILD_ID (default: cairn-<package version>). */
  buildId?: string;
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
  const profile = temporalProfile(cleaned as Record<string, string>);
  // A variable beats the profile, which beats the default.
  const temporalAddress =
    cleaned.TEMPORAL_ADDRESS === undefined && profile.address !== undefined
      ? checked('TEMPORAL_ADDRESS', hostPort, profile.address, 'profile address')
      : c.TEMPORAL_ADDRESS;
  const temporalNamespace =
    cleaned.TEMPORAL_NAMESPACE === undefined && profile.namespace !== undefined
      ? profile.namespace
      : c.TEMPORAL_NAMESPACE;
  return {
    databaseUrl: withPgSslVariables(c.DATABASE_URL, c),
    temporalAddress,
    temporalNamespace,
    taskQueuePrefix: c.CAIRN_TASK_QUEUE_PREFIX,
    temporalUiUrl: c.TEMPORAL_UI_URL.replace(/\/$/, ''),
    temporalCli: c.TEMPORAL_CLI,
    dbRetryMs: c.CAIRN_DB_RETRY_MS,
    temporalRetryMs: c.CAIRN_TEMPORAL_RETRY_MS,
    ...(c.CAIRN_PG_POOL_MAX !== undefined ? { pgPoolMax: c.CAIRN_PG_POOL_MAX } : {}),
    ...(c.CAIRN_PG_LISTEN_URL !== undefined
      ? { pgListenUrl: c.CAIRN_PG_LISTEN_URL === 'off' ? null : c.CAIRN_PG_LISTEN_URL }
      : {}),
    pgConnectTimeoutMs: c.CAIRN_PG_CONNECT_TIMEOUT_MS,
    ...(c.CAIRN_PAYLOAD_INLINE_MAX_BYTES !== undefined
      ? { payloadInlineMaxBytes: c.CAIRN_PAYLOAD_INLINE_MAX_BYTES }
      : {}),
    ...(profile.tls !== undefined ? { temporalTls: profile.tls } : {}),
    ...(profile.apiKey !== undefined ? { temporalApiKey: profile.apiKey } : {}),
    ...(profile.grpcMeta !== undefined && Object.keys(profile.grpcMeta).length > 0
      ? { temporalGrpcMeta: profile.grpcMeta }
      : {}),
    otel: c.CAIRN_OTEL,
    ...(c.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined ? { otlpEndpoint: c.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
    otelServiceName: c.OTEL_SERVICE_NAME,
    prometheusAddress: c.CAIRN_PROMETHEUS_ADDRESS,
    workerVersioning: c.CAIRN_WORKER_VERSIONING === 'on',
    ...(c.CAIRN_DEPLOYMENT_NAME !== undefined ? { deploymentName: c.CAIRN_DEPLOYMENT_NAME } : {}),
    ...(c.CAIRN_BUILD_ID !== undefined ? { buildId: c.CAIRN_BUILD_ID } : {}),
  };
}

/**
 * The Temporal connection profile, as the Temporal CLI and SDKs read it: the profile
 * TEMPORAL_PROFILE (default "default") of TEMPORAL_CONFIG_FILE (default
 * ~/.config/temporalio/temporal.toml, if it exists), overridden by TEMPORAL_* variables.
 */
function temporalProfile(env: Record<string, string>): ClientConfigProfile {
  try {
    return loadClientConfigProfile({ overrideEnvVars: env });
  } catch (err) {
    const variable = env.TEMPORAL_PROFILE !== undefined ? 'TEMPORAL_PROFILE' : 'TEMPORAL_CONFIG_FILE';
    throw new ConfigError(
      variable,
      `could not be used: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
    );
  }
}

function checked<T>(variable: string, schema: z.ZodType<T>, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new ConfigError(variable, `(${what}) ${r.error.issues[0]?.message ?? 'is invalid'}`);
}

/** libpq's PGSSL* variables, for what DATABASE_URL does not say itself (pg reads them from the URL). */
function withPgSslVariables(databaseUrl: string, c: z.output<typeof configSchema>): string {
  const params: [string, string | undefined][] = [
    ['sslmode', c.PGSSLMODE],
    ['sslrootcert', c.PGSSLROOTCERT],
    ['sslcert', c.PGSSLCERT],
    ['sslkey', c.PGSSLKEY],
  ];
  if (params.every(([, v]) => v === undefined)) return databaseUrl;
  const url = new URL(databaseUrl);
  for (const [name, value] of params)
    if (value !== undefined && !url.searchParams.has(name)) url.searchParams.set(name, value);
  return url.toString();
}
