import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config';

describe('configuration', () => {
  it('has defaults that work on a development machine', () => {
    expect(loadConfig({})).toEqual({
      databaseUrl: 'postgres://root@127.0.0.1:5432/cairn',
      temporalAddress: '127.0.0.1:7233',
      temporalNamespace: 'default',
      taskQueuePrefix: 'cairn',
      temporalUiUrl: 'http://127.0.0.1:8233',
      temporalCli: undefined,
      dbRetryMs: 180_000,
      temporalRetryMs: 180_000,
      pgConnectTimeoutMs: 10_000,
      otel: 'off',
      otelServiceName: 'cairn',
      prometheusAddress: '127.0.0.1:9464',
      workerVersioning: false,
    });
  });

  it('reads the observability and worker-versioning settings', () => {
    const c = loadConfig({
      CAIRN_OTEL: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_SERVICE_NAME: 'deal-desk',
      CAIRN_PROMETHEUS_ADDRESS: '0.0.0.0:9464',
      CAIRN_WORKER_VERSIONING: 'on',
      CAIRN_DEPLOYMENT_NAME: 'deal-desk',
      CAIRN_BUILD_ID: '2026.12.07+abc123',
    });
    expect(c).toMatchObject({
      otel: 'otlp',
      otlpEndpoint: 'http://collector:4318',
      otelServiceName: 'deal-desk',
      prometheusAddress: '0.0.0.0:9464',
      workerVersioning: true,
      deploymentName: 'deal-desk',
      buildId: '2026.12.07+abc123',
    });
  });

  it('reads the retry budgets in milliseconds', () => {
    const c = loadConfig({ CAIRN_DB_RETRY_MS: '5000', CAIRN_TEMPORAL_RETRY_MS: '0' });
    expect([c.dbRetryMs, c.temporalRetryMs]).toEqual([5000, 0]);
  });

  it('reads the pool size and the LISTEN URL (off: poll)', () => {
    const c = loadConfig({ CAIRN_PG_POOL_MAX: '7', CAIRN_PG_LISTEN_URL: 'postgres://root@db:5432/cairn' });
    expect([c.pgPoolMax, c.pgListenUrl]).toEqual([7, 'postgres://root@db:5432/cairn']);
    expect(loadConfig({ CAIRN_PG_LISTEN_URL: 'off' }).pgListenUrl).toBeNull();
    expect(() => loadConfig({ CAIRN_PG_LISTEN_URL: 'mysql://x' })).toThrow(/CAIRN_PG_LISTEN_URL/);
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ TEMPORAL_ADDRESS: '' }).temporalAddress).toBe('127.0.0.1:7233');
  });

  it.each([
    ['DATABASE_URL', 'mysql://x@y/z', /DATABASE_URL must be a postgres:\/\//],
    ['TEMPORAL_ADDRESS', 'localhost', /TEMPORAL_ADDRESS must be host:port/],
    ['TEMPORAL_NAMESPACE', 'bad namespace', /TEMPORAL_NAMESPACE must be a namespace name/],
    ['CAIRN_TASK_QUEUE_PREFIX', 'a b', /CAIRN_TASK_QUEUE_PREFIX must be/],
    ['TEMPORAL_UI_URL', 'not a url', /TEMPORAL_UI_URL must be a URL/],
    ['CAIRN_DB_RETRY_MS', 'soon', /CAIRN_DB_RETRY_MS must be a number of milliseconds/],
    ['CAIRN_TEMPORAL_RETRY_MS', '-1', /CAIRN_TEMPORAL_RETRY_MS must be 0/],
    ['CAIRN_PG_POOL_MAX', '0', /CAIRN_PG_POOL_MAX must be at least 1/],
    ['CAIRN_PG_CONNECT_TIMEOUT_MS', 'x', /CAIRN_PG_CONNECT_TIMEOUT_MS must be a number of milliseconds/],
    [
      'CAIRN_PAYLOAD_INLINE_MAX_BYTES',
      '999999999',
      /CAIRN_PAYLOAD_INLINE_MAX_BYTES must be at most 262144 bytes/,
    ],
    ['CAIRN_OTEL', 'on', /CAIRN_OTEL must be off, otlp or prometheus/],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'grpc://collector:4317', /OTEL_EXPORTER_OTLP_ENDPOINT must be an http/],
    ['CAIRN_PROMETHEUS_ADDRESS', '9464', /CAIRN_PROMETHEUS_ADDRESS must be host:port/],
    ['CAIRN_WORKER_VERSIONING', 'yes', /CAIRN_WORKER_VERSIONING must be on or off/],
    ['CAIRN_DEPLOYMENT_NAME', 'deal.desk', /CAIRN_DEPLOYMENT_NAME must be letters, digits, _ - \(no dots\)/],
    ['CAIRN_BUILD_ID', 'has space', /CAIRN_BUILD_ID must be letters/],
  ])('a bad %s is one error naming the variable', (variable, value, message) => {
    const attempt = () => loadConfig({ [variable]: value });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(message);
    try {
      attempt();
    } catch (err) {
      expect((err as ConfigError).variable).toBe(variable);
      expect((err as Error).message).not.toContain('\n');
    }
  });
});
