/**
 * The retention schedule: a Temporal Schedule that starts the maintenance workflow (on the
 * tasks queue) every `every`. Creating it is idempotent: a second call updates the existing
 * schedule's interval and options in place (a paused schedule stays paused).
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import {
  MAINTENANCE_SCHEDULE_SUFFIX,
  maintenanceOptionsSchema,
  type MaintenanceOptions,
} from './shared/maintenance';
import { taskWorkflowQueue } from './shared/task';
import type { maintenanceWorkflow } from '../workflows/maintenance';

export interface MaintenanceScheduleOptions {
  taskQueuePrefix: string;
  /** Interval between runs (ms, or an ms-style string such as `1d`, `12h`). Default one day. */
  every?: Duration;
  /** Retention settings passed to every run. */
  maintenance?: MaintenanceOptions;
}

export function maintenanceScheduleId(taskQueuePrefix: string): string {
  return `${taskQueuePrefix}${MAINTENANCE_SCHEDULE_SUFFIX}`;
}

export async function ensureMaintenanceSchedule(
  client: Client,
  opts: MaintenanceScheduleOptions,
): Promise<{ scheduleId: string; created: boolean }> {
  const scheduleId = maintenanceScheduleId(opts.taskQueuePrefix);
  // Parsed here so a bad setting fails now, not at 3 a.m. in the scheduled run.
  const args: [MaintenanceOptions] = [maintenanceOptionsSchema.parse(opts.maintenance ?? {})];
  const spec = { intervals: [{ every: opts.every ?? '1 day' }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'maintenanceWorkflow',
    taskQueue: taskWorkflowQueue(opts.taskQueuePrefix),
    workflowId: scheduleId,
    args,
    staticSummary: 'Cairn retention maintenance',
  };
  // Maintenance is idempotent, but there is no point in two at once.
  const policies = { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: 24 * 3600_000 };
  try {
    await client.schedule.create<typeof maintenanceWorkflow>({
      scheduleId,
      spec,
      action,
      policies,
      state: { note: 'created by cairn maintenance schedule' },
    });
    return { scheduleId, created: true };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  await client.schedule.getHandle(scheduleId).update<typeof maintenanceWorkflow>((previous) => ({
    spec,
    action,
    policies,
    state: {
      paused: previous.state.paused,
      note: previous.state.note ?? 'updated by cairn maintenance schedule',
    },
  }));
  return { scheduleId, created: false };
}
