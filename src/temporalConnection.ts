/**
 * Connection options for the Temporal frontend, shared by CairnClient, the worker and the CLI:
 * address, TLS or mTLS (certificates read from the configured paths or data) and API key, from
 * the configuration (src/config.ts: temporal.toml profile plus TEMPORAL_* variables).
 */
import { toClientOptions } from '@temporalio/envconfig';
import type { TLSConfig } from '@temporalio/client';
import { ConfigError, type CairnConfig } from './config';

export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig | boolean;
  apiKey?: string;
  metadata?: Record<string, string>;
}

export function temporalConnectionOptions(config: CairnConfig): TemporalConnectionOptions {
  let options: ReturnType<typeof toClientOptions>['connectionOptions'];
  try {
    ({ connectionOptions: options } = toClientOptions({
      address: config.temporalAddress,
      namespace: config.temporalNamespace,
      ...(config.temporalApiKey !== undefined ? { apiKey: config.temporalApiKey } : {}),
      ...(config.temporalTls !== undefined ? { tls: config.temporalTls } : {}),
      ...(config.temporalGrpcMeta !== undefined ? { grpcMeta: config.temporalGrpcMeta } : {}),
    }));
  } catch (err) {
    // A certificate or key file that cannot be read.
    throw new ConfigError(
      'TEMPORAL_TLS_*',
      `could not be used: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const apiKey = typeof options.apiKey === 'string' ? options.apiKey : undefined;
  return {
    address: config.temporalAddress,
    ...(options.tls !== undefined && options.tls !== null ? { tls: options.tls } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}),
    ...(config.temporalGrpcMeta !== undefined ? { metadata: config.temporalGrpcMeta } : {}),
  };
}
