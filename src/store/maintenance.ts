/**
 * Retention maintenance (run by `cairn maintenance run` or the scheduled maintenance workflow).
 * Idempotent — a second run with the same clock changes nothing — and it never rewrites the
 * log or deletes an episode:
 *
 * 1. Task episodes that ended before the episode cutoff and are not summarized yet are
 *    condensed into a new summary episode (kind `summary`: counts by outcome, goals, task
 *    keys, tags) plus a `memory.episode_summary` observation; each condensed episode is linked
 *    to it in cairn.episode_summary_members. Batches of SUMMARY_BATCH, one summary each.
 * 2. Acknowledged context messages acknowledged before the message cutoff move to
 *    cairn.context_messages_archive (cairn.archive_context_messages, migration 005).
 * 3. Snapshots older than the newest of their entity are deleted (a cache: historical reads
 *    fold from further back, current reads are unaffected).
 * 4. Claims are counted, not deleted: a claim row is its resource's fencing-token counter.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from 'pg';
import { coordinationTypes } from '../shared/coordinationTypes';
import {
  maintenanceOptionsSchema,
  type MaintenanceOptions,
  type MaintenanceReport,
} from '../shared/maintenance';
import { appendObservations } from './observations/append';
import { registerObservationTypes } from './observations/registerTypes';
import { withSystemScope } from './systemScope';

/** Episodes condensed per summary. */
export const SUMMARY_BATCH = 5000;
const MAX_GOALS = 50;
const MAX_TASK_KEYS = 500;

export const MAINTENANCE_TASK_KEY = 'cairn-maintenance';

/** Who ran it: the maintenance workflow's activity, or nobody (the CLI). */
export interface MaintenanceProvenance {
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
}

export async function runMaintenance(
  pool: Pool,
  options: MaintenanceOptions = {},
  by?: MaintenanceProvenance,
): Promise<MaintenanceReport> {
  const opts = maintenanceOptionsSchema.parse(options);
  const now = opts.now ? new Date(opts.now) : new Date();
  const episodeCutoff = new Date(now.getTime() - opts.episodeRetentionMs);
  const messageCutoff = new Date(now.getTime() - opts.messageRetentionMs);
  await registerObservationTypes(pool, coordinationTypes);

  const summaries: MaintenanceReport['summaries'] = [];
  for (;;) {
    const made = await withSystemScope(pool, (client) => summarizeBatch(client, episodeCutoff, now, by));
    if (!made) break;
    summaries.push(made);
    if (made.episodes < SUMMARY_BATCH) break;
  }
  const messagesArchived = await withSystemScope(pool, async (client) => {
    const { rows } = await client.query<{ n: number }>('select cairn.archive_context_messages($1) as n', [
      messageCutoff.toISOString(),
    ]);
    return rows[0]?.n ?? 0;
  });
  const snapshotsPruned = opts.pruneSnapshots
    ? await withSystemScope(pool, async (client) => {
        const r = await client.query(
          `delete from cairn.entity_snapshots s
            where exists (select 1 from cairn.entity_snapshots n
                           where n.entity_type = s.entity_type and n.entity_id = s.entity_id and n.version > s.version)`,
        );
        return r.rowCount ?? 0;
      })
    : 0;
  const claimsEnded = await withSystemScope(pool, async (client) => {
    const exists = await client.query<{ present: boolean }>(
      "select to_regclass('cairn.claims') is not null as present",
    );
    if (!exists.rows[0]?.present) return null;
    const { rows } = await client.query<{ n: number }>(
      'select count(*)::int as n from cairn.claims where token > 0 and (released_at is not null or expires_at < $1)',
      [now.toISOString()],
    );
    return rows[0]?.n ?? 0;
  });
  return {
    now: now.toISOString(),
    episodeCutoff: episodeCutoff.toISOString(),
    messageCutoff: messageCutoff.toISOString(),
    summaries,
    messagesArchived,
    snapshotsPruned,
    claimsEnded,
  };
}

interface EpisodeRow {
  id: string;
  task_key: string;
  goal: string;
  outcome: string;
  started_at: Date;
  ended_at: Date;
  step_count: number;
  message_count: number;
  tags: string[];
  extra_tags: string[];
}

async function summarizeBatch(
  client: PoolClient,
  cutoff: Date,
  now: Date,
  by: MaintenanceProvenance | undefined,
): Promise<MaintenanceReport['summaries'][number] | null> {
  // One summarizer at a time: two concurrent runs must not condense the same episodes twice.
  await client.query("select pg_advisory_xact_lock(hashtextextended('cairn.maintenance.episodes', 0))");
  const { rows } = await client.query<EpisodeRow>(
    `select e.id, e.task_key, e.goal, e.outcome, e.started_at, e.ended_at, e.step_count, e.message_count, e.tags,
            array(select t.tag from cairn.episode_tags t where t.task_key = e.task_key order by t.tag) as extra_tags
       from cairn.episodes e
      where e.kind = 'task' and e.ended_at < $1
        and not exists (select 1 from cairn.episode_summary_members m where m.episode_id = e.id)
      order by e.ended_at, e.id
      limit $2`,
    [cutoff.toISOString(), SUMMARY_BATCH],
  );
  if (rows.length === 0) return null;

  const ids = rows.map((r) => r.id).sort();
  const digest = createHash('sha256').update(ids.join(',')).digest('hex').slice(0, 32);
  const outcomes: Record<string, number> = {};
  for (const r of rows) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
  const outcomeNames = Object.keys(outcomes);
  const goals = distinct(rows.map((r) => r.goal)).slice(0, MAX_GOALS);
  const taskKeys = distinct(rows.map((r) => r.task_key)).slice(0, MAX_TASK_KEYS);
  const tags = distinct(['summary', ...rows.flatMap((r) => [...r.tags, ...r.extra_tags])]).sort();
  const from = new Date(Math.min(...rows.map((r) => r.started_at.getTime())));
  const to = new Date(Math.max(...rows.map((r) => r.ended_at.getTime())));
  const summaryId = randomUUID();
  const fields = {
    summaryEpisodeId: summaryId,
    episodes: rows.length,
    from: from.toISOString(),
    to: to.toISOString(),
    outcomes,
    goals,
    taskKeys,
  };

  const [observation] = await appendObservations(
    client,
    coordinationTypes,
    [
      {
        entityType: 'episode_summary',
        entityId: digest,
        type: 'memory.episode_summary',
        kind: 'inference',
        // Goals and task keys of every scope: the maintenance task's own scope, not global.
        scope: `task:${MAINTENANCE_TASK_KEY}`,
        fields,
        idempotencyKey: `maintenance:episode-summary:${digest}`,
      },
    ],
    {
      provenance: {
        taskKey: MAINTENANCE_TASK_KEY,
        workflowId: by?.workflowId ?? '',
        runId: by?.runId ?? '',
        activityId: by?.activityId ?? '',
        attempt: by?.attempt ?? 0,
        agentId: 'cairn-maintenance',
        role: 'cairn',
      },
      idempotencyPrefix: `maintenance:${digest}`,
      observedAt: now.toISOString(),
    },
  );
  const observationId = observation!.id;
  await client.query(
    `insert into cairn.episodes (id, task_key, workflow_id, run_id, goal, outcome, kind, started_at, ended_at, step_count, steps,
                                 observation_ids, message_count, tags, summary)
     values ($1, $2, $3, $4, $5, $6, 'summary', $7, $8, $9, '[]'::jsonb, $10::uuid[], $11, $12::text[], $13::jsonb)`,
    [
      summaryId,
      MAINTENANCE_TASK_KEY,
      `cairn-episode-summary-${digest}`,
      by?.runId ?? '',
      `Summary of ${rows.length} episode${rows.length === 1 ? '' : 's'} ended ${from.toISOString().slice(0, 10)} … ${to.toISOString().slice(0, 10)}`,
      outcomeNames.length === 1 ? outcomeNames[0] : 'mixed',
      from.toISOString(),
      to.toISOString(),
      rows.reduce((n, r) => n + r.step_count, 0),
      [observationId],
      rows.reduce((n, r) => n + r.message_count, 0),
      tags,
      JSON.stringify({ ...fields, observationId, episodeIds: ids.slice(0, 1000) }),
    ],
  );
  await client.query(
    `insert into cairn.episode_summary_members (episode_id, summary_id) select u, $2 from unnest($1::uuid[]) as u`,
    [ids, summaryId],
  );
  return { summaryEpisodeId: summaryId, observationId, episodes: rows.length };
}

function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
