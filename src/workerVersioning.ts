/**
 * Worker versioning: every worker reports a deployment version, a deployment name (the app: by
 * default its task-queue prefix) and a build id (by default the Cairn version, which fixes the
 * workflow code: Cairn's workflows are all Cairn's own). With CAIRN_WORKER_VERSIONING=on
 * Temporal also routes by it: a workflow's tasks go to the deployment's current version, and
 * Cairn's workflows are AUTO_UPGRADE (they move to the new version at their next task; changes
 * of their commands sit behind patched(), so a newer worker replays an older run).
 * See docs/production.md#safe-upgrades.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkerDeploymentVersion } from '@temporalio/common';
import type { WorkerOptions } from '@temporalio/worker';
import type { CairnConfig } from './config';

let version: string | undefined;

/** The version of this copy of Cairn (its package.json, found above this file in src/ or dist/src/). */
export function cairnVersion(): string {
  if (version !== undefined) return version;
  for (let dir = __dirname, i = 0; i < 5; i++, dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
    if (pkg.name === '@cairn-memory/cairn' && typeof pkg.version === 'string') return (version = pkg.version);
  }
  throw new Error(`cairnVersion: no package.json of @cairn-memory/cairn above ${__dirname}`);
}

/** The deployment version this worker reports: CAIRN_DEPLOYMENT_NAME / CAIRN_BUILD_ID or derived. */
export function workerDeploymentVersion(config: CairnConfig): WorkerDeploymentVersion {
  return {
    // A deployment version is written `<name>.<build id>`: the name cannot hold a dot.
    deploymentName: config.deploymentName ?? config.taskQueuePrefix.replace(/\./g, '-'),
    buildId: config.buildId ?? `cairn-${cairnVersion()}`,
  };
}

export function workerDeploymentOptions(
  config: CairnConfig,
): NonNullable<WorkerOptions['workerDeploymentOptions']> {
  const v = workerDeploymentVersion(config);
  return config.workerVersioning
    ? { version: v, useWorkerVersioning: true, defaultVersioningBehavior: 'AUTO_UPGRADE' }
    : { version: v, useWorkerVersioning: false };
}
