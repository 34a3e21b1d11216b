/**
 * Brings up the real services once per `vitest run`: a dedicated Temporal dev server for tests
 * (its own port and fresh database, continue-as-new suggested early so tests exercise it), a
 * migrated template database that each test file clones, and the workflow bundle (built once).
 */
import { rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { ensureTemporalServer, type TemporalServer } from '../../src/dev/temporalServer';
import { WORKFLOWS_PATH } from '../../src/worker';
import { splitDatabaseUrl } from '../../src/store/database';
import { createTemplateDatabase } from '../helpers/database';
import { ensurePostgresRunning } from '../../src/dev/postgres';
import { writeFileSync } from 'node:fs';

const root = path.resolve(__dirname, '..', '..');
/** Low enough that a task of a few dozen steps continues-as-new at least once. */
export const TEST_SUGGEST_CONTINUE_AS_NEW_AFTER = 120;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (m: string) => process.stderr.write(`[cairn test setup] ${m}\n`);
  const config = loadConfig(process.env);
  // CAIRN_TEST_TEMPORAL_ADDRESS lets several suites run side by side: each port gets its own
  // server files and its own template database.
  const address = process.env.CAIRN_TEST_TEMPORAL_ADDRESS ?? '127.0.0.1:7243';
  const port = address.split(':').pop()!;
  const dataDir = path.join(root, '.cairn', `test-temporal-${port}`);
  const started = Date.now();

  const adminUrl = splitDatabaseUrl(config.databaseUrl).maintenanceUrl;
  const template = `cairn_test_template_${port}`;
  await ensurePostgresRunning(adminUrl, log);
  const dbReady = createTemplateDatabase(adminUrl, template).then(() => log(`database template ${template} migrated`));

  let server: TemporalServer | undefined;
  const temporalReady = (async () => {
    // A fresh history each run, unless a test server is already up (then reuse it).
    server = await ensureTemporalServer({
      address,
      namespace: config.temporalNamespace,
      dataDir,
      headless: true,
      dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': TEST_SUGGEST_CONTINUE_AS_NEW_AFTER },
      ...(config.temporalCli ? { cliPath: config.temporalCli } : {}),
      freshDatabase: true,
      log,
    });
  })();

  const bundleDir = path.join(root, '.cairn', `test-${port}`);
  mkdirSync(bundleDir, { recursive: true });
  const bundlePath = path.join(bundleDir, 'workflow-bundle.js');
  const bundleReady = bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietLogger }).then(({ code }) => {
    writeFileSync(bundlePath, code);
  });

  await Promise.all([dbReady, temporalReady, bundleReady]);
  log(`services ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  project.provide('cairnTest', {
    adminUrl,
    template,
    temporalAddress: address,
    namespace: config.temporalNamespace,
    uiUrl: `http://127.0.0.1:${Number(address.split(':')[1]) + 1000}`,
    workflowBundlePath: bundlePath,
  });

  return async () => {
    await server?.stop();
    rmSync(bundlePath, { force: true });
  };
}

const quietLogger = {
  log: () => {},
  trace: () => {},
  debug: () => {},
  info: () => {},
  warn: (m: string) => process.stderr.write(`[bundle] ${m}\n`),
  error: (m: string) => process.stderr.write(`[bundle] ${m}\n`),
};
