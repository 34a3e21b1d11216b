/**
 * The walking-skeleton slice, end to end on the real dev server and Postgres: parallel research
 * steps, a context message into the analyst's input, a retried analyst step, provenance on every
 * observation, an episode, and idempotent starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dueDiligenceAgents, dueDiligenceTask } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { listEpisodes } from '../../src/store/episodes';
import { listMessages } from '../../src/store/messages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: dueDiligenceTypes,
    agents: dueDiligenceAgents,
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

describe('due-diligence task', () => {
  it('runs the plan, routes context, retries the flaky step, and records provenance exactly once', async () => {
    const taskKey = 'dd-1';
    const first = await stack.client.startTask(dueDiligenceTask(taskKey));
    // Starting the same key again returns the running task, not a second one.
    const again = await stack.client.startTask(dueDiligenceTask(taskKey));
    expect(again.runId).toBe(first.runId);

    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.steps.map((s) => [s.id, s.status])).toEqual([
      ['registry', 'completed'],
      ['press', 'completed'],
      ['assess', 'completed'],
      ['report', 'completed'],
    ]);
    expect(result.steps.find((s) => s.id === 'report')?.output).toEqual({
      text: 'Due diligence on acme: risk medium.',
    });

    const { rows } = await db.pool.query(
      `SELECT entity_type, entity_id, type, kind, task_key, workflow_id, run_id, activity_id, attempt, agent_id, role
         FROM cairn.observations WHERE task_key = $1 ORDER BY seq`,
      [taskKey],
    );
    expect(rows).toHaveLength(4);
    for (const r of rows) {
      expect(r.workflow_id).toBe(first.workflowId);
      expect(r.run_id).toBe(first.runId);
      expect(r.activity_id).toMatch(/^step-/);
      expect(r.agent_id).toContain(r.role);
    }
    const decision = rows.find((r) => r.type === 'company.risk');
    // The analyst failed once on purpose; its observation is written once, by attempt 2.
    expect(decision).toMatchObject({
      kind: 'decision',
      role: 'analyst',
      attempt: 2,
      activity_id: 'step-assess',
    });

    const messages = await listMessages(db.pool, { taskKey });
    expect(messages.map((m) => `${m.fromRole}->${m.toRole}:${m.type}`).sort()).toEqual([
      'analyst->writer:decision',
      'researcher->analyst:finding',
      'researcher->analyst:finding',
    ]);
    expect(messages.every((m) => m.ackedAt !== null)).toBe(true);

    const [episode] = await listEpisodes(db.pool, { taskKey });
    expect(episode).toMatchObject({ outcome: 'completed', stepCount: 4, workflowId: first.workflowId });
    expect(episode!.observationIds).toHaveLength(4);

    // A finished task is not rerun: starting its key again is idempotent and says so.
    await expect(stack.client.startTask(dueDiligenceTask(taskKey))).resolves.toMatchObject({
      alreadyFinished: true,
    });
  });
});
