/**
 * Task protocol integrity (issue #10), driven the way other clients drive it: hand-written
 * payloads through Temporal's own client (start by type name, signal 'context', update
 * 'setMemory', query 'status'), never through CairnClient. Real dev server, real Postgres.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  WorkflowFailedError,
  WorkflowIdReusePolicy,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { defineAgent } from '../../src/agent';
import { listEpisodes } from '../../src/store/episodes';
import { listMessages } from '../../src/store/messages';
import { taskWorkflowId, taskWorkflowQueue, type TaskResult } from '../../src/shared/task';
import type { TaskStatusView } from '../../src/shared/taskMessages';
import { TaskFailedError } from '../../src/client';
import { sweepEndedTasks } from '../../src/taskSweep';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents, testTypes } from './agents';

/** Writes working memory with a stale version (always loses compare-and-set). */
const staleWriter = defineAgent({
  role: 'memo',
  async handle(ctx) {
    ctx.setMemory('plan', 'fresh', 0);
    ctx.setMemory('plan', 'stale', 0);
    return null;
  },
});

let db: TestDatabase;
let stack: TestStack;
const failAfterCommit = new Map<string, number>();

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: [...testAgents, staleWriter],
    faults: {
      afterCommit: ({ stepId, attempt }) => {
        if (attempt <= (failAfterCommit.get(stepId) ?? 0))
          throw new Error(`injected crash after commit (attempt ${attempt})`);
      },
    },
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

/** A raw start, as `temporal workflow start --type taskWorkflow --input '{…}'` would do it. */
async function rawStart(
  workflowId: string,
  args: unknown,
  opts: { reuse?: WorkflowIdReusePolicy } = {},
): Promise<WorkflowHandle & { firstExecutionRunId: string }> {
  return stack.client.temporal.workflow.start('taskWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId,
    args: [args],
    ...(opts.reuse ? { workflowIdReusePolicy: opts.reuse } : {}),
  });
}

const prefix = () => stack.config.taskQueuePrefix;
const fast = { maxAttempts: 5, initialRetryMs: 50 };

async function failureOf(handle: WorkflowHandle): Promise<string> {
  const err = await handle.result().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return String((err as WorkflowFailedError).cause?.message);
}

async function count(sql: string, params: unknown[]): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
  return rows[0]!.n;
}

describe('the workflow is the gatekeeper', () => {
  it('refuses misspelt plan keys at start, naming each, and writes nothing', async () => {
    const h = await rawStart('cairn-task-misspelt', {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'misspelt',
        goal: 'g',
        rolePolicy: { echo: { maxAttempts: 1 } },
        onStepFailur: 'skip',
        steps: [{ id: 'a', role: 'echo', title: 'a', dependson: ['b'] }],
      },
    });
    const message = await failureOf(h);
    expect(message).toContain('task.rolePolicy: unknown key (did you mean "rolePolicies"?)');
    expect(message).toContain('task.onStepFailur: unknown key (did you mean "onStepFailure"?)');
    expect(message).toContain('task.steps.0.dependson: unknown key (did you mean "dependsOn"?)');
    expect(await count('cairn.observations WHERE task_key = $1', ['misspelt'])).toBe(0);
    expect(await count('cairn.task_keys WHERE task_key = $1', ['misspelt'])).toBe(0);
  });

  it('refuses a plan with unknown dependencies, cycles and duplicate ids, one line each', async () => {
    const h = await rawStart('cairn-task-bad-plan', {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'bad-plan',
        goal: 'g',
        steps: [
          { id: 'a', role: 'echo', title: 'a', dependsOn: ['c'] },
          { id: 'c', role: 'echo', title: 'c', dependsOn: ['a'] },
          { id: 'e', role: 'echo', title: 'e' },
          { id: 'e', role: 'echo', title: 'e again' },
          { id: 'd', role: 'echo', title: 'd', dependsOn: ['typo'] },
        ],
      },
    });
    const message = await failureOf(h);
    expect(message).toContain('duplicate step id "e"');
    expect(message).toContain('step "d" depends on unknown step "typo"');
    expect(message).toMatch(/steps form a cycle: a -> c -> a/);
    expect(await count('cairn.observations WHERE task_key = $1', ['bad-plan'])).toBe(0);
  });

  it('fails fast without taskQueuePrefix instead of scheduling on undefined-role-…', async () => {
    const h = await rawStart('cairn-task-no-prefix', {
      task: { taskKey: 'no-prefix', goal: 'g', steps: [{ id: 'a', role: 'echo', title: 'a' }] },
    });
    expect(await failureOf(h)).toContain('taskQueuePrefix is required');
  });

  it('drops a malformed context signal, counts it and shows why; the task completes with a truthful status', async () => {
    const gate = `/tmp/cairn-proto-gate-${process.pid}-malformed`;
    const h = await rawStart(taskWorkflowId('malformed'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'malformed',
        goal: 'g',
        steps: [
          { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate } },
          { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
        ],
      },
    });
    await h.signal('context', { content: 'no id, no toRole' });
    await h.signal('context', {
      id: 'ok-1',
      fromRole: 'human',
      toRole: 'listener',
      type: 'note',
      content: 'hi',
    });
    const view = await h.query<TaskStatusView>('status');
    expect(view.rejectedSignals?.count).toBe(1);
    expect(view.rejectedSignals?.recent[0]).toMatch(/id: .*; .*toRole/s);
    // Persisted when it arrived, before any step read it: the inbox shows it unread.
    await expect
      .poll(async () =>
        (await listMessages(db.pool, { taskKey: 'malformed', unreadOnly: true })).map((m) => m.id),
      )
      .toEqual(['ok-1']);
    const desc = await h.describe();
    expect(desc.searchAttributes.CairnTaskStatus).toEqual(['running']);
    await import('node:fs').then((fs) => fs.writeFileSync(gate, ''));
    const result = (await h.result()) as TaskResult;
    expect(result.status).toBe('completed');
    expect(result.steps.find((s) => s.id === 'read')?.output).toMatchObject({ inbox: ['ok-1'] });
    expect((await listEpisodes(db.pool, { taskKey: 'malformed' })).map((e) => e.outcome)).toEqual([
      'completed',
    ]);
    expect((await h.describe()).searchAttributes.CairnTaskStatus).toEqual(['completed']);
  });

  it('sets CairnTaskKey and CairnRoles itself, so a raw start is listed by key and role', async () => {
    const h = await rawStart(taskWorkflowId('listed'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'listed',
        goal: 'g',
        steps: [
          { id: 'a', role: 'echo', title: 'a' },
          { id: 'b', role: 'listener', title: 'b' },
        ],
      },
    });
    await h.result();
    const sa = (await h.describe()).searchAttributes;
    expect(sa.CairnTaskKey).toEqual(['listed']);
    expect(sa.CairnRoles).toEqual(['echo', 'listener']);
  });

  it('rejects malformed updates with one clear, non-retryable message naming the field', async () => {
    const gate = `/tmp/cairn-proto-gate-${process.pid}-updates`;
    const h = await rawStart(taskWorkflowId('updates'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'updates',
        goal: 'g',
        steps: [{ id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate } }],
      },
    });
    const refusal = async (args: unknown[]) => {
      const err = await h.executeUpdate('setMemory', { args: args as [unknown] }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
      const cause = (err as WorkflowUpdateFailedError).cause;
      expect(cause).toBeInstanceOf(ApplicationFailure);
      expect((cause as ApplicationFailure).nonRetryable).toBe(true);
      return (cause as ApplicationFailure).message;
    };
    expect(await refusal([{ key: 'k', value: 1 }])).toMatch(
      /^setMemory refused: expectedVersion: expectedVersion must be a number/,
    );
    expect(await refusal([{ key: 'k', value: 1, expectedVersion: '0' }])).toMatch(
      /expectedVersion: expectedVersion must be a number/,
    );
    expect(await refusal([])).toBe(
      'setMemory refused: setMemory takes one argument: { key, value, expectedVersion }',
    );
    expect(await refusal([{ key: 'k', value: 1, expectedVersion: 0, extra: true }])).toContain(
      'extra: unknown key',
    );
    await expect(
      h.executeUpdate('setMemory', { args: [{ key: 'k', value: 1, expectedVersion: 0 }] }),
    ).resolves.toMatchObject({ version: 1 });
    await import('node:fs').then((fs) => fs.writeFileSync(gate, ''));
    await h.result();
  });
});

describe('messages are keyed by task', () => {
  it('two tasks with the same message id each get their own, and one task’s step acknowledges only its own', async () => {
    const gate = `/tmp/cairn-proto-gate-${process.pid}-dup`;
    const gateB = `${gate}-b`;
    const plan = (taskKey: string, hold: boolean) => ({
      taskQueuePrefix: prefix(),
      task: {
        taskKey,
        goal: 'g',
        steps: [
          { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: hold ? gate : gateB } },
          { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
        ],
      },
    });
    const a = await rawStart(taskWorkflowId('dup-a'), plan('dup-a', true));
    await a.signal('context', {
      id: 'dup-2',
      fromRole: 'human',
      toRole: 'listener',
      type: 'note',
      content: 'for A',
    });
    const b = await rawStart(taskWorkflowId('dup-b'), plan('dup-b', false));
    await b.signal('context', {
      id: 'dup-2',
      fromRole: 'human',
      toRole: 'listener',
      type: 'note',
      content: 'for B',
    });
    // Admission is an activity: on a loaded machine it can take longer than poll's default second.
    // B's step reads only once B's message is persisted (a gate, not a guessed delay: a message
    // admitted after its role's step started goes to the next step of that role).
    for (const taskKey of ['dup-a', 'dup-b'])
      await expect
        .poll(async () => (await listMessages(db.pool, { taskKey, unreadOnly: true })).length, {
          timeout: 20_000,
        })
        .toBe(1);
    await import('node:fs').then((fs) => fs.writeFileSync(gateB, ''));
    const rb = (await b.result()) as TaskResult;
    expect(rb.steps.find((s) => s.id === 'read')?.output).toMatchObject({ contents: ['for B'] });
    // A's message is still unread after B's step acknowledged B's.
    expect(
      (await listMessages(db.pool, { taskKey: 'dup-a', unreadOnly: true })).map((m) => m.content),
    ).toEqual(['for A']);
    await import('node:fs').then((fs) => fs.writeFileSync(gate, ''));
    const ra = (await a.result()) as TaskResult;
    expect(ra.steps.find((s) => s.id === 'read')?.output).toMatchObject({ contents: ['for A'] });
    const { rows } = await db.pool.query(
      "SELECT task_key, content, acked_by_workflow_id FROM cairn.context_messages WHERE id = 'dup-2' ORDER BY task_key",
    );
    expect(rows).toEqual([
      { task_key: 'dup-a', content: 'for A', acked_by_workflow_id: taskWorkflowId('dup-a') },
      { task_key: 'dup-b', content: 'for B', acked_by_workflow_id: taskWorkflowId('dup-b') },
    ]);
  });
});

describe('one task key, one task', () => {
  it('a new run of a finished key returns the recorded result and writes nothing', async () => {
    const args = {
      taskQueuePrefix: prefix(),
      task: { taskKey: 'once', goal: 'g', steps: [{ id: 'once-a', role: 'echo', title: 'a' }] },
    };
    const first = await rawStart(taskWorkflowId('once'), args);
    const r1 = (await first.result()) as TaskResult;
    const before = await count('cairn.observations WHERE task_key = $1', ['once']);
    // What `temporal workflow start` does with its default policies.
    const again = await rawStart(taskWorkflowId('once'), args, {
      reuse: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    });
    expect(again.firstExecutionRunId).not.toBe(first.firstExecutionRunId);
    expect(await again.result()).toEqual(r1);
    expect(await count('cairn.observations WHERE task_key = $1', ['once'])).toBe(before);
    expect(await count('cairn.episodes WHERE task_key = $1', ['once'])).toBe(1);
    expect((await again.describe()).searchAttributes.CairnTaskStatus).toEqual(['completed']);
    // And through CairnClient: re-running a finished key is idempotent, not an error.
    await expect(stack.client.startTask(args.task)).resolves.toMatchObject({ alreadyFinished: true });
  });

  it('a second workflow id for the same key fails fast, naming the holder, and runs nothing', async () => {
    const gate = `/tmp/cairn-proto-gate-${process.pid}-twice`;
    const task = {
      taskKey: 'twice',
      goal: 'g',
      steps: [{ id: 'a', role: 'slow', title: 'hold', input: { untilFile: gate } }],
    };
    const first = await rawStart(taskWorkflowId('twice'), { taskQueuePrefix: prefix(), task });
    await expect
      .poll(() => count('cairn.task_keys WHERE task_key = $1', ['twice']), { timeout: 30_000 })
      .toBe(1);
    const other = await rawStart('someone-elses-id', { taskQueuePrefix: prefix(), task });
    const message = await failureOf(other);
    expect(message).toContain(`task key "twice" belongs to workflow ${taskWorkflowId('twice')}`);
    expect(message).toContain('ran nothing');
    const history = await other.fetchHistory();
    expect(
      history.events?.filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runAgentStep',
      ),
    ).toHaveLength(0);
    await import('node:fs').then((fs) => fs.writeFileSync(gate, ''));
    await first.result();
    expect(await count('cairn.episodes WHERE task_key = $1', ['twice'])).toBe(1);
  });
});

describe('truthful steps', () => {
  it('a role no worker serves fails its step naming the queue (schedule-to-start limit)', async () => {
    const h = await rawStart(taskWorkflowId('unserved'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'unserved',
        goal: 'g',
        onStepFailure: 'skip',
        rolePolicies: { nobody: { scheduleToStartMs: 1000, maxAttempts: 1 } },
        steps: [{ id: 'a', role: 'nobody', title: 'a' }],
      },
    });
    await expect
      .poll(async () => (await h.query<TaskStatusView>('status')).steps[0])
      .toMatchObject({ status: 'scheduled', queue: `${prefix()}-role-nobody` });
    const result = (await h.result()) as TaskResult;
    expect(result.steps[0]?.status).toBe('failed');
    expect(result.steps[0]?.error).toContain(
      `no worker picked the step up on task queue ${prefix()}-role-nobody within 1000 ms`,
    );
  });

  it('runs counts activity attempts, not schedules', async () => {
    failAfterCommit.set('flaky', 1);
    const h = await rawStart(taskWorkflowId('attempts'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'attempts',
        goal: 'g',
        rolePolicies: { echo: fast },
        steps: [{ id: 'flaky', role: 'echo', title: 'a' }],
      },
    });
    const result = (await h.result()) as TaskResult;
    // Attempt 1 commits, then fails before reporting; attempt 2 finds the step committed and
    // returns its recorded result (the fault fires only after a real commit). One schedule, two runs.
    expect(result.steps[0]).toMatchObject({ status: 'completed', attempts: 2 });
  });

  it('a committed step stays completed when its cross-task message cannot be delivered; the loss is recorded', async () => {
    const h = await rawStart(taskWorkflowId('sender-to-nowhere'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'sender-to-nowhere',
        goal: 'g',
        steps: [
          { id: 'say', role: 'echo', title: 'say', input: { sendTo: 'listener', toTask: 'no-such-task' } },
          { id: 'next', role: 'echo', title: 'next', dependsOn: ['say'] },
        ],
      },
    });
    const result = (await h.result()) as TaskResult;
    expect(result.status).toBe('completed');
    const say = result.steps.find((s) => s.id === 'say')!;
    expect(say.status).toBe('completed');
    expect(say.undeliverable).toEqual([
      expect.objectContaining({ toTask: 'no-such-task', toRole: 'listener', stepId: 'say' }),
    ]);
    const { rows } = await db.pool.query<{ steps: TaskResult['steps'] }>(
      'SELECT steps FROM cairn.episodes WHERE task_key = $1',
      ['sender-to-nowhere'],
    );
    expect(rows[0]!.steps.find((s) => s.id === 'say')?.undeliverable).toHaveLength(1);
  });

  it('reports working-memory writes that lose compare-and-set in the step result', async () => {
    const h = await rawStart(taskWorkflowId('lost-cas'), {
      taskQueuePrefix: prefix(),
      task: { taskKey: 'lost-cas', goal: 'g', steps: [{ id: 'w', role: 'memo', title: 'write' }] },
    });
    const result = (await h.result()) as TaskResult;
    expect(result.steps[0]?.lostMemoryWrites).toEqual([
      'plan: working memory "plan": expected version 0 but the current version is 1',
    ]);
  });

  it('a failed task’s result carries its cause chain', async () => {
    const h = await rawStart(taskWorkflowId('fails'), {
      taskQueuePrefix: prefix(),
      task: {
        taskKey: 'fails',
        goal: 'g',
        rolePolicies: { echo: { maxAttempts: 1 } },
        steps: [{ id: 'bad', role: 'echo', title: 'bad', input: { invalid: true } }],
      },
    });
    await h.result().catch(() => undefined);
    const err = await stack.client.result('fails').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).causes.join(' | ')).toMatch(/step bad \(echo\) failed: .*fields\.text/);
  });
});

describe('a task the server ends', () => {
  it('is recorded by the sweep as a failed episode with the reason, once; its key is not run again', async () => {
    const task = {
      taskKey: 'terminated',
      goal: 'stuck',
      steps: [{ id: 'hold', role: 'slow', title: 'hold', input: { untilFile: '/nonexistent/never' } }],
    };
    const h = await rawStart(taskWorkflowId('terminated'), { taskQueuePrefix: prefix(), task });
    await expect
      .poll(() => count('cairn.task_keys WHERE task_key = $1', ['terminated']), { timeout: 30_000 })
      .toBe(1);
    await h.terminate('operator: stuck');
    const err = await stack.client.result('terminated').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskFailedError);
    expect((err as TaskFailedError).causes.join(' ')).toContain('operator: stuck');
    expect((err as TaskFailedError).hint).toContain('cairn task sweep');

    const swept = await sweepEndedTasks(stack.client.temporal, db.pool);
    expect(swept.filter((t) => t.taskKey === 'terminated')).toEqual([
      expect.objectContaining({ status: 'terminated', reason: 'operator: stuck' }),
    ]);
    const episodes = await listEpisodes(db.pool, { taskKey: 'terminated' });
    expect(episodes.map((e) => [e.outcome, e.goal])).toEqual([['failed', 'stuck']]);
    expect(
      (await sweepEndedTasks(stack.client.temporal, db.pool)).filter((t) => t.taskKey === 'terminated'),
    ).toEqual([]);
    const again = await rawStart(
      taskWorkflowId('terminated'),
      { taskQueuePrefix: prefix(), task },
      { reuse: WorkflowIdReusePolicy.ALLOW_DUPLICATE },
    );
    expect(await failureOf(again)).toContain('ended failed');
  });
});
