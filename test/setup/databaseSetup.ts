/** Global setup of the integration tier: a migrated template database (real Postgres), no Temporal. */
import type { TestProject } from 'vitest/node';
import { enter, useDatabase } from './services';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const leave = enter();
  project.provide('cairnDatabase', await useDatabase());
  return leave;
}
