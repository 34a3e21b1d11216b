/**
 * The bench's workflow entry: Cairn's own workflows plus a calibration workflow with one no-op
 * activity, so `npm run bench` can measure Temporal's own round trip. Only the bench's worker
 * bundles this file; production workers never register the calibration workflow.
 */
import path from 'node:path';

export const BENCH_WORKFLOWS_PATH = path.join(__dirname, 'workflows', 'index.ts');

/** The activity the calibration workflow calls, registered on the bench worker's task queue. */
export const benchTaskActivities = { benchNoop: async (): Promise<void> => {} };
