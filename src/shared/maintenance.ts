/**
 * Retention maintenance, as the workflow, the activity and the schedule see it (sandbox-safe).
 * What it does lives in src/store/maintenance.ts; see docs/memory.md.
 */
import { z } from 'zod';

const DAY_MS = 24 * 3600_000;

export const maintenanceOptionsSchema = z.strictObject({
  /** Task episodes that ended longer ago than this are condensed into a summary episode. */
  episodeRetentionMs: z
    .number()
    .int()
    .min(0)
    .default(90 * DAY_MS),
  /** Acknowledged context messages older than this move to cairn.context_messages_archive. */
  messageRetentionMs: z
    .number()
    .int()
    .min(0)
    .default(30 * DAY_MS),
  /** Snapshots older than the newest of their entity are dropped (a cache; reads refold). */
  pruneSnapshots: z.boolean().default(true),
  /** The time maintenance measures ages from (ISO); default: now. Tests pin it. */
  now: z.iso.datetime({ offset: true }).optional(),
});
export type MaintenanceOptions = z.input<typeof maintenanceOptionsSchema>;
export type ParsedMaintenanceOptions = z.output<typeof maintenanceOptionsSchema>;

export interface MaintenanceReport {
  now: string;
  episodeCutoff: string;
  messageCutoff: string;
  /** One entry per summary episode written (older episodes are condensed in batches). */
  summaries: { summaryEpisodeId: string; observationId: string; episodes: number }[];
  messagesArchived: number;
  snapshotsPruned: number;
  /**
   * Claims whose lease has ended. Reported, never deleted: a claim row is its resource's
   * fencing-token counter (migration 004), so deleting it would let tokens restart.
   */
  claimsEnded: number | null;
}

export type { MaintenanceActivities } from './activityTypes';

export const MAINTENANCE_SCHEDULE_SUFFIX = '-maintenance';
