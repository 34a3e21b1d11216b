import { defineConfig } from 'vitest/config';

// Tiers: `unit` is pure (no services); `integration` talks to a real Postgres, `workflow` to a
// real Temporal dev server and Postgres, `replay` replays stored histories, `cluster` runs a real
// Temporal server on Postgres the way docker-compose.yml describes it. The root global setup
// brings the services up once per run and its provided context reaches every project. The native
// Temporal bridge needs process isolation, hence pool 'forks'.
const shared = { pool: 'forks' as const, testTimeout: 60_000, hookTimeout: 240_000 };

export default defineConfig({
  test: {
    ...shared,
    globalSetup: ['test/setup/globalSetup.ts'],
    reporters: ['default', './test/setup/summaryReporter.ts'],
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { ...shared, name: 'integration', include: ['test/integration/**/*.test.ts'] } },
      { test: { ...shared, name: 'workflow', include: ['test/workflow/**/*.test.ts'] } },
      { test: { ...shared, name: 'replay', include: ['test/replay/**/*.test.ts'] } },
      // A real Temporal server on Postgres, built from source (cached; the first build takes minutes).
      {
        test: {
          ...shared,
          name: 'cluster',
          include: ['test/cluster/**/*.test.ts'],
          globalSetup: ['test/cluster/globalSetup.ts'],
          hookTimeout: 30 * 60_000, // a cold `go install` took 25 min on a loaded 2-core box
        },
      },
    ],
  },
});
