/**
 * An API key (TEMPORAL_API_KEY, as Temporal Cloud takes it) against a frontend that checks it:
 * an HTTP/2 TLS proxy made by the test refuses calls without `authorization: Bearer <key>`. The
 * worker and CairnClient, configured from the variables alone, run a task through it; a wrong
 * key is refused.
 */
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { CairnClient } from '../../src/client';
import { loadConfig } from '../../src/config';
import { createWorker } from '../../src/worker';
import { startApiKeyProxy, type ApiKeyProxy } from '../helpers/apiKeyProxy';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { createTestCa, type TestCa } from '../helpers/testCerts';
import { echo, testTypes } from './agents';

let db: TestDatabase;
let ca: TestCa;
let proxy: ApiKeyProxy;
const apiKey = `key-${randomUUID()}`;

beforeAll(async () => {
  db = await createTestDatabase();
  ca = createTestCa();
  const server = ca.issue('server', { commonName: 'localhost', server: true });
  proxy = await startApiKeyProxy({ upstream: inject('cairnTest').temporalAddress, ...server, apiKey });
});
afterAll(async () => {
  await proxy?.close();
  await db?.drop();
  if (ca) rmSync(ca.dir, { recursive: true, force: true });
});

const env = (key: string) => ({
  DATABASE_URL: db.url,
  TEMPORAL_ADDRESS: proxy.address,
  TEMPORAL_NAMESPACE: inject('cairnTest').namespace,
  TEMPORAL_API_KEY: key,
  // An API key implies TLS; the test's own CA signs the proxy's certificate.
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: ca.ca.cert,
  CAIRN_TASK_QUEUE_PREFIX: `t${randomUUID().slice(0, 8)}`,
  CAIRN_TEMPORAL_RETRY_MS: '0',
});

it('the worker and the client run a task with TEMPORAL_API_KEY against a frontend that checks it', async () => {
  const config = loadConfig(env(apiKey));
  expect(config.temporalApiKey).toBe(apiKey);
  const worker = await createWorker({
    config,
    pool: db.pool,
    registry: testTypes,
    agents: [echo],
    workflowBundle: { codePath: inject('cairnTest').workflowBundlePath },
    workerOptions: { shutdownGraceTime: '1s' },
  });
  const running = worker.run();
  const client = await CairnClient.connect(config);
  try {
    const taskKey = `key-${randomUUID().slice(0, 8)}`;
    const stepId = `s${randomUUID().slice(0, 8)}`;
    await client.startTask({
      taskKey,
      goal: 'with an API key',
      steps: [{ id: stepId, role: 'echo', title: 'echo', input: { text: 'keyed' } }],
    });
    const result = await client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.steps[0]?.output).toEqual({ text: 'keyed' });
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
  }
  expect(proxy.forwarded).toBeGreaterThan(0);
  expect(proxy.refused).toBe(0);

  const refusedBefore = proxy.refused;
  const wrong = loadConfig(env('not-the-key'));
  const err = await CairnClient.connect(wrong)
    .then((c) => c.status('nothing').finally(() => c.close()))
    .catch((e: unknown) => e);
  const chain = [err, (err as { cause?: unknown }).cause]
    .map((e) => String((e as Error)?.message))
    .join(' / ');
  expect(chain).toMatch(/bad API key|UNAUTHENTICATED/);
  expect(proxy.refused).toBeGreaterThan(refusedBefore);
}, 120_000);
