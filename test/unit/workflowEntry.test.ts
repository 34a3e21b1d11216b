/**
 * `@cairn-memory/cairn/workflow` must load inside Temporal's workflow sandbox: Temporal's bundler
 * refuses Node built-ins (and so anything that pulls in `pg`), so bundling a workflow that imports
 * the entry proves it. No services needed.
 */
import path from 'node:path';
import { expect, it } from 'vitest';
import { bundleWorkflowCode } from '@temporalio/worker';

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

it('bundles a workflow that imports the /workflow entry (no pg, no Node built-ins)', async () => {
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(__dirname, 'fixtures', 'userWorkflow.ts'),
    logger: quiet,
  });
  expect(code).toContain('userWorkflow');
  expect(code).toContain('reduceEntity');
}, 120_000);

it('and the bundler does refuse a module that reaches Postgres', async () => {
  // The control: the same check fails for the root entry, which carries the store and pg.
  await expect(
    bundleWorkflowCode({
      workflowsPath: path.join(__dirname, 'fixtures', 'rootEntryWorkflow.ts'),
      logger: quiet,
    }),
    // (Either Temporal's own check names the disallowed modules, or webpack already fails on a
    // Node-only import such as a `node:` scheme; both are the refusal.)
  ).rejects.toThrow(/importing the following disallowed modules|Webpack finished with errors/);
}, 120_000);
