/**
 * The real services the test tiers need, started at most once per `vitest run` however many
 * projects ask for them: a migrated template database that test files clone, a dedicated
 * Temporal dev server (its own port and fresh database, continue-as-new suggested early so tests
 * exercise it) and the workflow bundle (built once). Each project's global setup asks only for
 * what its tier uses (the unit tier for nothing). Projects' global setups run in the one main
 * vitest process but may load this module more than once, so the shared state lives on
 * globalThis; the last project to tear down stops the server.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { ensurePostgresRunning } from '../../src/dev/postgres';
import { ensureTemporalServer, type TemporalServer } from '../../src/dev/temporalServer';
import { splitDatabaseUrl } from '../../src/store/database';
import { WORKFLOWS_PATH } from '../../src/worker';
import { workflowBundlerOptions } from '../../src/workflowBundle';
import { createTemplateDatabase } from '../helpers/database';

const root = path.resolve(__dirname, '..', '..');
/** Low enough that a task of a few dozen steps continues-as-new at least once. */
export const TEST_SUGGEST_CONTINUE_AS_NEW_AFTER = 120;

export interface DatabaseServices {
  adminUrl: string;
  template: string;
}

export interface TemporalServices {
  temporalAddress: string;
  namespace: string;
  uiUrl: string;
  workflowBundlePath: string;
}

interface Shared {
  database?: Promise<DatabaseServices>;
  temporal?: Promise<TemporalServices & { server: TemporalServer | undefined }>;
  users: number;
}

const shared: Shared = ((globalThis as { __cairnTestServices?: Shared }).__cairnTestServices ??= {
  users: 0,
});

export const log = (m: string) => process.stderr.write(`[cairn test setup] ${m}\n`);

// CAIRN_TEST_TEMPORAL_ADDRESS lets several suites run side by side: each port gets its own
// server files and its own template database.
function testAddress(): { address: string; port: string } {
  const address = process.env.CAIRN_TEST_TEMPORAL_ADDRESS ?? '127.0.0.1:7243';
  return { address, port: address.split(':').pop()! };
}

export function useDatabase(): Promise<DatabaseServices> {
  return (shared.database ??= (async () => {
    const config = loadConfig(process.env);
    const adminUrl = splitDatabaseUrl(config.databaseUrl).maintenanceUrl;
    const template = `cairn_test_template_${testAddress().port}`;
    await ensurePostgresRunning(adminUrl, log);
    await createTemplateDatabase(adminUrl, template);
    log(`database template ${template} migrated`);
    return { adminUrl, template };
  })());
}

export function useTemporal(): Promise<TemporalServices> {
  return (shared.temporal ??= (async () => {
    const config = loadConfig(process.env);
    const { address, port } = testAddress();
    const bundleDir = path.join(root, '.cairn', `test-${port}`);
    mkdirSync(bundleDir, { recursive: true });
    const workflowBundlePath = path.join(bundleDir, 'workflow-bundle.js');
    const bundled = bundleWorkflowCode({
      workflowsPath: WORKFLOWS_PATH,
      ...workflowBundlerOptions(),
      logger: quietLogger,
    }).then(({ code }) => writeFileSync(workflowBundlePath, code));
    // A fresh history each run, unless a test server is already up (then reuse it).
    const server = await ensureTemporalServer({
      address,
      namespace: config.temporalNamespace,
      dataDir: path.join(root, '.cairn', `test-temporal-${port}`),
      headless: true,
      dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': TEST_SUGGEST_CONTINUE_AS_NEW_AFTER },
      ...(config.temporalCli ? { cliPath: config.temporalCli } : {}),
      freshDatabase: true,
      log,
    });
    await bundled;
    return {
      server,
      temporalAddress: address,
      namespace: config.temporalNamespace,
      uiUrl: `http://127.0.0.1:${Number(port) + 1000}`,
      workflowBundlePath,
    };
  })());
}

/** Counts a project in; its teardown calls the returned function. The last one out stops the server. */
export function enter(): () => Promise<void> {
  shared.users++;
  return async () => {
    if (--shared.users > 0) return;
    const temporal = await shared.temporal?.catch(() => undefined);
    shared.temporal = undefined;
    shared.database = undefined;
    if (temporal) {
      await temporal.server?.stop();
      rmSync(temporal.workflowBundlePath, { force: true });
    }
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
