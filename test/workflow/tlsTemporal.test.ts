/**
 * Secured Temporal connections (issue 13, item 3): a TLS-terminating proxy with a CA and
 * certificates made by the test, in front of the test's dev server. The configuration comes the
 * way an operator gives it (TEMPORAL_* variables, or a temporal.toml profile), and CairnClient and
 * the worker (what the CLI uses) connect with it and run a task end to end. mTLS refuses a
 * client without a certificate.
 */
import { writeFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnClient } from '../../src/client';
import { loadConfig, type CairnConfig } from '../../src/config';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createTestCa, type TestCa } from '../helpers/testCerts';
import { runEchoTaskWith } from '../helpers/temporal';
import { startTlsProxy, type TlsProxy } from '../helpers/tlsProxy';
import { echo, testTypes } from './agents';

let db: TestDatabase;
let ca: TestCa;
let tlsOnly: TlsProxy;
let mutual: TlsProxy;
let client: { cert: string; key: string };

beforeAll(async () => {
  db = await createTestDatabase();
  ca = createTestCa();
  const server = ca.issue('server', { commonName: 'localhost', server: true });
  client = ca.issue('worker', { commonName: 'cairn-worker' });
  const upstream = inject('cairnTest').temporalAddress;
  tlsOnly = await startTlsProxy({ upstream, ...server });
  mutual = await startTlsProxy({ upstream, ...server, clientCa: ca.ca.cert });
});

afterAll(async () => {
  await Promise.allSettled([tlsOnly?.close(), mutual?.close()]);
  await db?.drop();
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

/** Runs one echo task through `config`: a worker and a client that both connect with it. */
async function runTask(config: CairnConfig): Promise<string> {
  const result = await runEchoTaskWith(config, db.pool, { echo, types: testTypes }, 'over TLS', 'secured');
  return `${result.status}:${JSON.stringify(result.steps[0]?.output)}`;
}

const base = () => ({
  DATABASE_URL: db.url,
  TEMPORAL_NAMESPACE: inject('cairnTest').namespace,
  CAIRN_TASK_QUEUE_PREFIX: `t${randomUUID().slice(0, 8)}`,
});

describe('Temporal over TLS', () => {
  it('TLS with the server CA from TEMPORAL_TLS_* variables', async () => {
    const config = loadConfig({
      ...base(),
      TEMPORAL_ADDRESS: tlsOnly.address,
      TEMPORAL_TLS: 'true',
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.ca.cert,
    });
    expect(config.temporalTls).toMatchObject({ serverCACert: { path: ca.ca.cert } });
    expect(await runTask(config)).toBe('completed:{"text":"secured"}');
  }, 120_000);

  it('mTLS from a temporal.toml profile, and a client without a certificate is refused', async () => {
    const file = path.join(ca.dir, 'temporal.toml');
    writeFileSync(
      file,
      [
        '[profile.secure]',
        `address = "${mutual.address}"`,
        `namespace = "${inject('cairnTest').namespace}"`,
        '[profile.secure.tls]',
        `client_cert_path = "${client.cert}"`,
        `client_key_path = "${client.key}"`,
        `server_ca_cert_path = "${ca.ca.cert}"`,
        '',
      ].join('\n'),
    );
    const env = { ...base(), TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'secure' };
    const { TEMPORAL_NAMESPACE: _ns, ...fromProfile } = env;
    const config = loadConfig(fromProfile);
    expect(config.temporalAddress).toBe(mutual.address);
    expect(await runTask(config)).toBe('completed:{"text":"secured"}');

    const refusedBefore = mutual.refusals;
    const noCert = { ...config, temporalTls: { serverCACert: { path: ca.ca.cert } }, temporalRetryMs: 0 };
    await expect(CairnClient.connect(noCert).then((c) => c.status('nothing'))).rejects.toThrow();
    expect(mutual.refusals).toBeGreaterThan(refusedBefore);
  }, 120_000);

  it('a plaintext client is not served by the TLS endpoint', async () => {
    const config = loadConfig({ ...base(), TEMPORAL_ADDRESS: tlsOnly.address, CAIRN_TEMPORAL_RETRY_MS: '0' });
    await expect(CairnClient.connect(config).then((c) => c.status('nothing'))).rejects.toThrow();
  }, 60_000);
});
