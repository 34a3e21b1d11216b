/**
 * Continue-as-new is an ordinary path (issue #10): a task that receives 2,000 context messages
 * (hand-written signals through Temporal's own client) while it continues as new ends with one
 * episode, `completed`, every message persisted once and delivered at most once (exactly once
 * to the final reader), re-sent ids not delivered again, and no run ever labelled failed.
 *
 * Scale: the test server suggests continue-as-new after 120 events (test/setup/globalSetup.ts)
 * instead of 4,096, so a 60-step chain continues as new many times within a minute.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { listEpisodes } from '../../src/store/episodes';
import { taskWorkflowId, taskWorkflowQueue, type TaskResult } from '../../src/shared/task';
import type { TaskStatusView } from '../../src/shared/taskMessages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents, testTypes } from './agents';

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: testAgents,
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

const MESSAGES = 2000;
const CHAIN = 60;

it('2,000 messages across continue-as-new: one completed episode, each message persisted once and delivered once', async () => {
  const taskKey = 'can-2000';
  const gate = `/tmp/cairn-proto-can-${process.pid}`;
  const steps: { id: string; role: string; title: string; input?: unknown; dependsOn?: string[] }[] = [];
  for (let i = 0; i < CHAIN; i++) {
    // A listener every 20 steps reads what has arrived so far; the rest are quick echoes.
    const role = i % 20 === 19 ? 'listener' : 'echo';
    steps.push({ id: `s${i}`, role, title: `step ${i}`, ...(i > 0 ? { dependsOn: [`s${i - 1}`] } : {}) });
  }
  steps.push({
    id: 'gate',
    role: 'slow',
    title: 'hold',
    input: { untilFile: gate },
    dependsOn: [`s${CHAIN - 1}`],
  });
  steps.push({ id: 'last', role: 'listener', title: 'read the rest', dependsOn: ['gate'] });
  const handle = await stack.client.temporal.workflow.start('taskWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId: taskWorkflowId(taskKey),
    args: [
      { taskQueuePrefix: stack.config.taskQueuePrefix, task: { taskKey, goal: 'many messages', steps } },
    ],
  });
  const ids = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
  const send = (id: string) =>
    stack.client.temporal.workflow
      .getHandle(handle.workflowId)
      .signal('context', { id, fromRole: 'human', toRole: 'listener', type: 'note', content: id });
  for (let i = 0; i < ids.length; i += 20) await Promise.all(ids.slice(i, i + 20).map(send));
  // Re-sent ids (after several continue-as-new) must not reach an agent twice.
  const resent = ids.slice(0, 50);
  await Promise.all(resent.map(send));
  await expect
    .poll(
      async () =>
        (
          await db.pool.query<{ n: number }>(
            'SELECT count(*)::int AS n FROM cairn.context_messages WHERE task_key = $1',
            [taskKey],
          )
        ).rows[0]!.n,
      // Generous: admission runs a batch per workflow task and pauses while a run continues as new
      // (every ~120 events on the test server), and the whole suite shares two cores.
      { timeout: 240_000, interval: 500 },
    )
    .toBe(MESSAGES);
  writeFileSync(gate, '');
  // A raw handle's result carries large outputs (the last listener's inbox) as references.
  const result = await stack.client.resolveOutputs((await handle.result()) as TaskResult);

  expect(result.status).toBe('completed');
  expect(result.continuedAsNew).toBeGreaterThan(0);
  expect(result.messages).toBe(MESSAGES);
  const delivered = result.steps
    .filter((s) => s.role === 'listener')
    .flatMap((s) => (s.output as { inbox: string[] }).inbox);
  expect(delivered).toHaveLength(MESSAGES);
  expect(new Set(delivered).size).toBe(MESSAGES);
  const { rows } = await db.pool.query<{ n: number; acked: number }>(
    'SELECT count(*)::int AS n, count(acked_at)::int AS acked FROM cairn.context_messages WHERE task_key = $1',
    [taskKey],
  );
  expect(rows[0]).toEqual({ n: MESSAGES, acked: MESSAGES });
  const episodes = await listEpisodes(db.pool, { taskKey });
  expect(episodes.map((e) => e.outcome)).toEqual(['completed']);
  expect(episodes[0]!.stepCount).toBe(CHAIN + 2);

  // No run of the chain was labelled failed: earlier runs say running, the last completed.
  const runs: { status: string; label: unknown }[] = [];
  for await (const wf of stack.client.temporal.workflow.list({
    query: `WorkflowId = '${handle.workflowId}'`,
  })) {
    runs.push({ status: wf.status.name, label: wf.searchAttributes.CairnTaskStatus });
  }
  expect(runs.length).toBe(result.continuedAsNew + 1);
  expect(runs.filter((r) => r.status === 'FAILED')).toEqual([]);
  expect(runs.filter((r) => r.status === 'COMPLETED').map((r) => r.label)).toEqual([['completed']]);
  expect(
    runs
      .filter((r) => r.status === 'CONTINUED_AS_NEW')
      .every((r) => JSON.stringify(r.label) === '["running"]'),
  ).toBe(true);
}, 420_000);

it('the status query shows signals and updates taken by this run (per-run limits)', async () => {
  const taskKey = 'run-counters';
  const gate = `/tmp/cairn-proto-counters-${process.pid}`;
  const handle = await stack.client.temporal.workflow.start('taskWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId: taskWorkflowId(taskKey),
    args: [
      {
        taskQueuePrefix: stack.config.taskQueuePrefix,
        task: {
          taskKey,
          goal: 'g',
          steps: [{ id: 'hold', role: 'slow', title: 'hold', input: { untilFile: gate } }],
        },
      },
    ],
  });
  await handle.signal('context', {
    id: 'c1',
    fromRole: 'human',
    toRole: 'listener',
    type: 'note',
    content: 1,
  });
  await handle.executeUpdate('setMemory', { args: [{ key: 'k', value: 1, expectedVersion: 0 }] });
  const view = await handle.query<TaskStatusView>('status');
  expect(view.thisRun).toEqual({ signals: 1, updates: 1 });
  writeFileSync(gate, '');
  await handle.result();
});
