/**
 * Global setup of the tiers that run workflows (workflow, package): the template database, the
 * test Temporal dev server and the workflow bundle (see ./services.ts).
 */
import type { TestProject } from 'vitest/node';
import { enter, log, useDatabase, useTemporal } from './services';

export { TEST_SUGGEST_CONTINUE_AS_NEW_AFTER } from './services';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const leave = enter();
  const started = Date.now();
  const [database, temporal] = await Promise.all([useDatabase(), useTemporal()]);
  log(`services ready for ${project.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  project.provide('cairnDatabase', database);
  const { temporalAddress, namespace, uiUrl, workflowBundlePath } = temporal;
  project.provide('cairnTest', { ...database, temporalAddress, namespace, uiUrl, workflowBundlePath });
  return leave;
}
