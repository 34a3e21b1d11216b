/** Global setup of the integration tier: a migrated template database (real Postgres), no Temporal. */
import type { TestProject } from 'vitest/node';
import { enter, useDatabase } from './services';
import { ensureDebianPackage } from './systemPackages';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const leave = enter();
  // test/integration/pgbouncer.test.ts runs Cairn behind a real PgBouncer.
  ensureDebianPackage('pgbouncer', ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'], (m) =>
    process.stderr.write(`[cairn test setup] ${m}\n`),
  );
  project.provide('cairnDatabase', await useDatabase());
  return leave;
}
