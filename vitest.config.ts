import { defineConfig } from 'vitest/config';

// Tiers: `unit` is pure (no services); the others share one global setup that brings up a real
// Postgres database template and a real Temporal dev server. The native Temporal bridge needs
// process isolation, hence pool 'forks'.
const services = { globalSetup: ['test/setup/globalSetup.ts'] };

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 180_000,
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { test: { name: 'integration', include: ['test/integration/**/*.test.ts'], ...services } },
      { test: { name: 'workflow', include: ['test/workflow/**/*.test.ts'], ...services } },
      { test: { name: 'replay', include: ['test/replay/**/*.test.ts'] } },
    ],
  },
});
