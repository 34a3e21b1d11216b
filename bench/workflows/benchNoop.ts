/** The calibration workflow for `npm run bench`: one no-op activity, nothing else. */
import { proxyActivities } from '@temporalio/workflow';
import type { BenchActivities } from '../../src/shared/activityTypes';

const { benchNoop } = proxyActivities<BenchActivities>({ startToCloseTimeout: '30 seconds' });

export async function benchNoopWorkflow(): Promise<void> {
  await benchNoop();
}
