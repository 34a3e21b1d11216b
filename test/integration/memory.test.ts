/**
 * Long-term memory on the real server: max-age reads flag stale fields with their age;
 * episodes are found by goal text, tags, entity and outcome; retention maintenance condenses
 * old episodes into a summary (+ a summary observation), archives old acknowledged context and
 * prunes superseded snapshots — idempotently, leaving the log intact.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { EpisodeInput } from '../../activities/types';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import { findEpisodes, tagEpisode } from '../../src/store/episodeSearch';
import { recordEpisode } from '../../src/store/episodes';
import { getFreshEntityState } from '../../src/store/freshness';
import { runMaintenance } from '../../src/store/maintenance';
import { acknowledgeMessages, listMessages, persistMessages } from '../../src/store/messages';
import { appendObservations, type AppendItem } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { verifyLog } from '../../src/store/observations/verify';
import { pgError } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'vendor.profile',
  version: 1,
  entity: 'vendor',
  fields: {
    hq: z.string().optional(),
    employees: z.number().int().optional(),
    certified: z.boolean().optional(),
  },
});
const registry = new ObservationTypeRegistry([profile]);
const policyOf = policyResolverFor(registry);

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

const HOUR = 3600_000;
const DAY = 24 * HOUR;

async function append(taskKey: string, items: AppendItem[]) {
  return appendObservations(db.pool, registry, items, {
    provenance: {
      taskKey,
      workflowId: `cairn-task-${taskKey}`,
      runId: 'r',
      activityId: 'step-x',
      attempt: 1,
      agentId: 'a@1',
      role: 'researcher',
    },
    idempotencyPrefix: `mem:${randomUUID()}`,
    observedAt: new Date().toISOString(),
  });
}

function episode(
  taskKey: string,
  goal: string,
  outcome: EpisodeInput['outcome'],
  endedAt: Date,
  observationIds: string[] = [],
): EpisodeInput {
  return {
    taskKey,
    workflowId: `cairn-task-${taskKey}`,
    runId: 'r',
    goal,
    outcome,
    startedAt: new Date(endedAt.getTime() - 60_000).toISOString(),
    endedAt: endedAt.toISOString(),
    steps: [{ id: 's', role: 'researcher', status: 'completed' }],
    observationIds,
    messages: 1,
  };
}

describe('max-age reads', () => {
  it('flags each field older than maxAgeMs with its age instead of serving it as fresh', async () => {
    const ref = { entityType: 'vendor', entityId: `v-${randomUUID().slice(0, 8)}` };
    const now = new Date();
    // Two tasks write one entity: it lives in a team scope (an entity has one scope, migration 006).
    await append('fresh-1', [
      {
        ...ref,
        scope: 'team:vendors',
        type: 'vendor.profile',
        fields: { hq: 'Berlin', employees: 10 },
        observedAt: new Date(now.getTime() - 3 * HOUR).toISOString(),
      },
    ]);
    await append('fresh-2', [
      {
        ...ref,
        scope: 'team:vendors',
        type: 'vendor.profile',
        fields: { employees: 12, certified: true },
        observedAt: new Date(now.getTime() - 5 * 60_000).toISOString(),
      },
    ]);

    const state = await getFreshEntityState(db.pool, policyOf, ref, { maxAgeMs: HOUR, now });
    expect(state.fields.hq?.value).toBe('Berlin');
    expect(state.freshness.stale).toEqual(['hq']);
    expect(state.freshness.fresh).toBe(false);
    expect(state.freshness.fields.hq).toMatchObject({ stale: true, ageMs: 3 * HOUR });
    expect(state.freshness.fields.employees).toMatchObject({ stale: false, ageMs: 5 * 60_000 });

    // Omitted rather than flagged; ages from recorded_at (just now) make every field fresh.
    const omitted = await getFreshEntityState(db.pool, policyOf, ref, { maxAgeMs: HOUR, now, stale: 'omit' });
    expect(Object.keys(omitted.fields).sort()).toEqual(['certified', 'employees']);
    const byRecord = await getFreshEntityState(db.pool, policyOf, ref, {
      maxAgeMs: HOUR,
      ageFrom: 'recorded',
      now: new Date(),
    });
    expect(byRecord.freshness.stale).toEqual([]);
  });
});

describe('episodic memory', () => {
  const run = randomUUID().slice(0, 6);
  const vendor = { entityType: 'vendor', entityId: `acme-${run}` };
  const now = Date.now();

  beforeAll(async () => {
    const [obs] = await append(`onboard-acme-${run}`, [
      { ...vendor, type: 'vendor.profile', fields: { hq: 'Berlin' } },
    ]);
    await recordEpisode(
      db.pool,
      episode(
        `onboard-acme-${run}`,
        `Onboard vendor Acme ${run} before signing`,
        'completed',
        new Date(now - 3 * DAY),
        [obs!.id],
      ),
    );
    await recordEpisode(
      db.pool,
      episode(
        `audit-acme-${run}`,
        `Audit vendors' security questionnaires ${run}`,
        'failed',
        new Date(now - 2 * DAY),
      ),
    );
    await recordEpisode(
      db.pool,
      episode(`renew-${run}`, `Renew the hosting contract ${run}`, 'completed', new Date(now - DAY)),
    );
    await tagEpisode(db.pool, `audit-acme-${run}`, ['security', `batch-${run}`]);
    await tagEpisode(db.pool, `renew-${run}`, [`batch-${run}`]);
  });

  it('finds episodes by goal text (stemmed words or a fragment), newest first', async () => {
    const byWords = await findEpisodes(db.pool, { text: `vendor ${run}` });
    expect(byWords.map((e) => e.taskKey).sort()).toEqual([`audit-acme-${run}`, `onboard-acme-${run}`]);
    const fragment = await findEpisodes(db.pool, { text: `hosting contract ${run}` });
    expect(fragment.map((e) => e.taskKey)).toEqual([`renew-${run}`]);
    const recent = await findEpisodes(db.pool, { tags: [`batch-${run}`] });
    expect(recent.map((e) => e.taskKey)).toEqual([`renew-${run}`, `audit-acme-${run}`]);
  });

  it('finds episodes by tags, entity and outcome', async () => {
    expect(
      (await findEpisodes(db.pool, { tags: ['security', `batch-${run}`] })).map((e) => e.taskKey),
    ).toEqual([`audit-acme-${run}`]);
    const aboutAcme = await findEpisodes(db.pool, { entity: vendor });
    expect(aboutAcme.map((e) => e.taskKey)).toEqual([`onboard-acme-${run}`]);
    const failed = await findEpisodes(db.pool, { text: run, outcome: 'failed' });
    expect(failed.map((e) => [e.taskKey, e.tags])).toEqual([
      [`audit-acme-${run}`, [`batch-${run}`, 'security']],
    ]);
    expect(await findEpisodes(db.pool, { text: `no such goal ${run}` })).toEqual([]);
  });

  it('refuses malformed tags and limits', async () => {
    await expect(tagEpisode(db.pool, 'x', ['has space'])).rejects.toThrow(RangeError);
    await expect(findEpisodes(db.pool, { limit: 0 })).rejects.toThrow(RangeError);
  });
});

describe('retention maintenance', () => {
  it('condenses old episodes, archives old acknowledged context, prunes snapshots — idempotently, log intact', async () => {
    const mdb = await createTestDatabase();
    try {
      await registerObservationTypes(mdb.pool, registry);
      const real = Date.now();
      const now = new Date(real + 100 * DAY);
      // Two episodes ended long before the cutoff (now − 90 days), one after it.
      const [o] = await appendObservations(
        mdb.pool,
        registry,
        [{ entityType: 'vendor', entityId: 'old', type: 'vendor.profile', fields: { hq: 'Oslo' } }],
        {
          provenance: {
            taskKey: 'old-1',
            workflowId: 'cairn-task-old-1',
            runId: 'r',
            activityId: 'step-a',
            attempt: 1,
            agentId: 'a',
            role: 'researcher',
          },
          idempotencyPrefix: 'maint:1',
          observedAt: new Date().toISOString(),
        },
      );
      await recordEpisode(
        mdb.pool,
        episode('old-1', 'Assess vendor Oslo', 'completed', new Date(real), [o!.id]),
      );
      await recordEpisode(mdb.pool, episode('old-2', 'Assess vendor Bergen', 'failed', new Date(real + DAY)));
      await recordEpisode(
        mdb.pool,
        episode('recent', 'Assess vendor Tromsø', 'completed', new Date(real + 50 * DAY)),
      );
      await tagEpisode(mdb.pool, 'old-2', ['vendors']);
      // Context: one acknowledged (archived by the run), one still unread (kept).
      await persistMessages(
        mdb.pool,
        [
          { id: 'm-read', fromRole: 'a', toRole: 'b', type: 't', content: { n: 1 } },
          { id: 'm-unread', fromRole: 'a', toRole: 'b', type: 't', content: { n: 2 } },
        ],
        { taskKey: 'old-1' },
      );
      await acknowledgeMessages(mdb.pool, 'old-1', ['m-read'], { workflowId: 'wf', activityId: 'step-b' });
      // Snapshots: only the newest per entity survives.
      await mdb.adminPool.query(
        `insert into cairn.entity_snapshots (entity_type, entity_id, version, state)
         values ('vendor', 'snap', 500, '{}'), ('vendor', 'snap', 1000, '{}'), ('vendor', 'other', 500, '{}')`,
      );

      const first = await runMaintenance(mdb.pool, { now: now.toISOString() });
      expect(first.summaries).toHaveLength(1);
      expect(first.summaries[0]!.episodes).toBe(2);
      expect(first.messagesArchived).toBe(1);
      expect(first.snapshotsPruned).toBe(1);
      expect(first.claimsEnded).toBe(0);

      const [summary] = await findEpisodes(mdb.pool, { kind: 'summary' });
      expect(summary).toMatchObject({
        id: first.summaries[0]!.summaryEpisodeId,
        outcome: 'mixed',
        kind: 'summary',
        stepCount: 2,
        messageCount: 2,
      });
      expect(summary!.tags).toEqual(['summary', 'vendors']);
      expect(summary!.summary).toMatchObject({
        episodes: 2,
        outcomes: { completed: 1, failed: 1 },
        goals: ['Assess vendor Oslo', 'Assess vendor Bergen'],
        taskKeys: ['old-1', 'old-2'],
      });
      // The old episodes are still there, linked to their summary; the summary is findable by
      // their goals and by the entities their tasks observed.
      const all = await findEpisodes(mdb.pool, { kind: 'task' });
      expect(all.map((e) => [e.taskKey, e.summarizedInto])).toEqual([
        ['recent', null],
        ['old-2', summary!.id],
        ['old-1', summary!.id],
      ]);
      expect((await findEpisodes(mdb.pool, { text: 'Bergen', kind: 'summary' })).map((e) => e.id)).toEqual([
        summary!.id,
      ]);
      expect(
        (await findEpisodes(mdb.pool, { entity: { entityType: 'vendor', entityId: 'old' } }))
          .map((e) => e.taskKey)
          .sort(),
      ).toEqual(['cairn-maintenance', 'old-1']);
      expect(
        (await findEpisodes(mdb.pool, { kind: 'task', excludeSummarized: true })).map((e) => e.taskKey),
      ).toEqual(['recent']);

      const { rows: obs } = await mdb.pool.query(
        `select type, kind, scope, fields from cairn.observations where id = $1`,
        [first.summaries[0]!.observationId],
      );
      expect(obs[0]).toMatchObject({
        type: 'memory.episode_summary',
        kind: 'inference',
        // Goals of every scope: the maintenance task's scope, not global (migration 013).
        scope: 'task:cairn-maintenance',
        fields: { episodes: 2 },
      });

      expect((await listMessages(mdb.pool, {})).map((m) => m.id)).toEqual(['m-unread']);
      const { rows: archived } = await mdb.pool.query(
        'select id, content, acked_by_activity_id from cairn.context_messages_archive',
      );
      expect(archived).toEqual([{ id: 'm-read', content: { n: 1 }, acked_by_activity_id: 'step-b' }]);
      const { rows: snaps } = await mdb.pool.query(
        'select entity_id, version from cairn.entity_snapshots order by 1, 2',
      );
      expect(snaps).toEqual([
        { entity_id: 'other', version: 500 },
        { entity_id: 'snap', version: 1000 },
      ]);

      const counts = async () =>
        (
          await mdb.adminPool.query<Record<string, number>>(
            `select (select count(*) from cairn.episodes)::int as episodes, (select count(*) from cairn.observations)::int as observations,
                  (select count(*) from cairn.context_messages)::int as messages, (select count(*) from cairn.entity_snapshots)::int as snapshots`,
          )
        ).rows[0];
      const before = await counts();
      const second = await runMaintenance(mdb.pool, { now: now.toISOString() });
      expect(second).toMatchObject({ summaries: [], messagesArchived: 0, snapshotsPruned: 0 });
      expect(await counts()).toEqual(before);

      const verified = await verifyLog(mdb.pool);
      expect(verified.problems).toEqual([]);
      expect(verified.checked).toBe(2);
    } finally {
      await mdb.drop();
    }
  });

  it('the application cannot delete context messages, archived ones or summary links', async () => {
    for (const sql of [
      "delete from cairn.context_messages where id = 'x'",
      'delete from cairn.context_messages_archive',
      'delete from cairn.episode_summary_members',
      'update cairn.episode_tags set tag = tag',
    ]) {
      const err = await db.pool.query(sql).catch((e: unknown) => e);
      expect(pgError(err)?.code, sql).toBe('42501');
    }
    // Even the owner cannot delete an acknowledged message outside the archiving function.
    await persistMessages(db.pool, [{ id: 'guarded', fromRole: 'a', toRole: 'b', type: 't', content: 1 }], {
      taskKey: 'g',
    });
    await acknowledgeMessages(db.pool, 'g', ['guarded'], { workflowId: 'wf', activityId: 's' });
    await expect(
      db.adminPool.query("delete from cairn.context_messages where id = 'guarded'"),
    ).rejects.toThrow(/never deleted/);
  });
});
