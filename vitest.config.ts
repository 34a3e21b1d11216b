import { defineConfig } from 'vitest/config';

// Tiers: `unit` is pure and needs no services; `integration` talks to a real Postgres; `workflow`
// to a real Temporal dev server and Postgres; `replay` replays stored histories (no server);
// `package` packs the package, installs it into a project outside the repository and runs that
// project's worker and a task; `cluster` runs a real Temporal server on Postgres the way
// docker-compose.yml describes it, with two worker processes. Each tier's global setup brings up only what it uses, once per run
// however many tiers ask (test/setup/services.ts). The native Temporal bridge needs process
// isolation, hence pool 'forks'.
const shared = { pool: 'forks' as const, testTimeout: 60_000, hookTimeout: 240_000 };
const withDatabase = ['test/setup/databaseSetup.ts'];
const withTemporal = ['test/setup/globalSetup.ts'];
const withPackage = [...withTemporal, 'test/setup/packageSetup.ts'];

export default defineConfig({
  test: {
    ...shared,
    reporters: ['default', './test/setup/summaryReporter.ts'],
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          ...shared,
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: withDatabase,
        },
      },
      {
        test: {
          ...shared,
          name: 'workflow',
          include: ['test/workflow/**/*.test.ts'],
          globalSetup: withTemporal,
        },
      },
      { test: { ...shared, name: 'replay', include: ['test/replay/**/*.test.ts'] } },
      {
        test: {
          ...shared,
          name: 'package',
          include: ['test/package/**/*.test.ts'],
          globalSetup: withPackage,
          // Packing (with its build) and installing take minutes on a busy machine.
          testTimeout: 180_000,
          hookTimeout: 600_000,
        },
      },
      // A real Temporal server on Postgres, built from source (cached; the first build takes minutes).
      {
        test: {
          ...shared,
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: [...withDatabase, 'test/cluster/globalSetup.ts'],
          hookTimeout: 30 * 60_000, // a cold `go install` took 25 min on a loaded 2-core box
        },
      },
    ],
  },
});
