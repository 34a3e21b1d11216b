/**
 * The maintenance workflow a Temporal Schedule starts (see src/maintenanceSchedule.ts): one
 * activity that condenses old episodes, archives old acknowledged context and prunes
 * superseded snapshots. Idempotent, so an overlapping or repeated run changes nothing.
 */
import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { MaintenanceActivities, MaintenanceOptions, MaintenanceReport } from '../src/shared/maintenance';

export async function maintenanceWorkflow(opts: MaintenanceOptions = {}): Promise<MaintenanceReport> {
  const { runMaintenance } = proxyActivities<MaintenanceActivities>({
    startToCloseTimeout: '30 minutes',
    retry: { maximumAttempts: 5, initialInterval: '10s' },
    summary: 'cairn: retention maintenance',
  });
  const report = await runMaintenance(opts);
  setCurrentDetails(
    `summaries: ${report.summaries.length} (${report.summaries.reduce((n, s) => n + s.episodes, 0)} episodes); ` +
      `messages archived: ${report.messagesArchived}; snapshots pruned: ${report.snapshotsPruned}`,
  );
  return report;
}
