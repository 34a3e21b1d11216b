/** The calibration workflow for `npm run bench`: one no-op activity, nothing else. */
import { proxyActivities } from '@temporalio/workflow';

export interface BenchActivities {
  benchNoop(): Promise<void>;
}

const { benchNoop } = proxyActivities<BenchActivities>({ startToCloseTimeout: '30 seconds' });

export async function benchNoopWorkflow(): Promise<void> {
  await benchNoop();
}
