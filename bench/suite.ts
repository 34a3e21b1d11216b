/** Every benchmark of `cairn bench`, in the order the table prints them. */
import type { BenchEnv } from './env';
import type { BenchEntry } from './harness';
import { mcpBenchmarks } from './mcp.bench';
import { readSetBenchmarks } from './readSets.bench';
import { calibrationBenchmarks } from './suites/calibration';
import { claimBenchmarks } from './suites/claims';
import { observationLogBenchmarks } from './suites/observationLog';
import { payloadBenchmarks } from './suites/payloads';
import { scopeBenchmarks } from './suites/scopes';
import { taskBenchmarks } from './suites/tasks';
import { writerBenchmarks } from './suites/writers';

export { createBenchEnv, FULL_SIZES, QUICK_SIZES, type BenchSizes } from './env';
export { runBenchmarks, selectEntries, type ResultRow } from './harness';
export { createCpuProbe } from './cpu';
export { machineInfo, renderReport, writeResults, type ResultsFile } from './report';

export function allBenchmarks(env: BenchEnv): BenchEntry[] {
  const calibration = calibrationBenchmarks(env);
  return [
    ...calibration.all,
    ...observationLogBenchmarks(env, calibration),
    ...taskBenchmarks(env, calibration),
    ...payloadBenchmarks(env),
    ...scopeBenchmarks(env),
    ...claimBenchmarks(env),
    ...writerBenchmarks(env),
    ...readSetBenchmarks(env),
    ...mcpBenchmarks(env),
  ];
}
