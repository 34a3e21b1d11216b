/**
 * Task workflow behaviour on the real dev server and Postgres: exactly-once effects across
 * retries, dedup of context messages, compare-and-set on working memory, failure policies,
 * cross-task context, cancellation with an episode, and continue-as-new losing nothing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WorkflowFailedError } from '@temporalio/client';
import { listEpisodes } from '../../src/store/episodes';
import { listMessages } from '../../src/store/messages';
import { taskWorkflowId, type TaskInput } from '../../src/shared/task';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { fileGate, testAgents, testTypes } from './agents';

let db: TestDatabase;
let stack: TestStack;
const failAfterCommit = new Map<string, number>();

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: testAgents,
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

const fast = { maxAttempts: 5, initialRetryMs: 50 };

async function notesOf(taskKey: string) {
  const { rows } = await db.pool.query(
    'SELECT entity_id, attempt, fields FROM cairn.observations WHERE task_key = $1 ORDER BY seq',
    [taskKey],
  );
  return rows as { entity_id: string; attempt: number; fields: { text: string } }[];
}

describe('task workflow', () => {
  it('a step that fails twice after committing writes its observation exactly once', async () => {
    failAfterCommit.set('flaky', 2);
    const taskKey = 'retry-after-commit';
    await stack.client.startTask({
      taskKey,
      goal: 'retry',
      steps: [{ id: 'flaky', role: 'echo', title: 'write once' }],
      rolePolicies: { echo: fast },
    });
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    const notes = await notesOf(taskKey);
    expect(notes).toHaveLength(1);
    // The row is the first attempt's; attempts 2 and 3 replayed it by idempotency key.
    expect(notes[0]!.attempt).toBe(1);
  });

  it('runs independent steps in parallel and feeds dependency outputs forward', async () => {
    const taskKey = 'parallel';
    const [gateA, gateB] = [fileGate('parallel-a'), fileGate('parallel-b')];
    await stack.client.startTask({
      taskKey,
      goal: 'fan out and in',
      steps: [
        { id: 'a', role: 'slow', title: 'wait a', input: { untilFile: gateA.path } },
        { id: 'b', role: 'slow', title: 'wait b', input: { untilFile: gateB.path } },
        { id: 'join', role: 'echo', title: 'join', dependsOn: ['a', 'b'] },
      ],
    });
    // Both steps are running at once while neither may finish: sequential execution would
    // never have both pending (an observation, not a wall-clock bound).
    const handle = stack.client.temporal.workflow.getHandle(taskWorkflowId(taskKey));
    await expect
      .poll(
        async () =>
          ((await handle.describe()).raw.pendingActivities ?? []).map((a) => a.activityId ?? '').sort(),
        { timeout: 20_000 },
      )
      .toEqual(['step-a', 'step-b']);
    gateA.open();
    gateB.open();
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.steps.find((s) => s.id === 'a')?.output).toEqual({ waited: gateA.path });
    expect(result.steps.map((s) => [s.id, s.status])).toEqual([
      ['a', 'completed'],
      ['b', 'completed'],
      ['join', 'completed'],
    ]);
  });

  it('deduplicates context by id, delivers it to the role’s next step and acknowledges it', async () => {
    const taskKey = 'dedup';
    const gate = fileGate('dedup');
    await stack.client.startTask({
      taskKey,
      goal: 'dedup',
      steps: [
        { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate.path } },
        { id: 'read', role: 'listener', title: 'read inbox', dependsOn: ['gate'] },
      ],
    });
    const msg = { id: 'm1', fromRole: 'human', toRole: 'listener', type: 'note', content: { n: 1 } };
    await stack.client.sendContext(taskKey, msg);
    await stack.client.sendContext(taskKey, msg);
    await stack.client.sendContext(taskKey, { ...msg, id: 'm2', content: { n: 2 } });
    // The reading step starts once both messages are persisted: a message admitted after its
    // role's step started belongs to that role's next step, by design.
    await expect
      .poll(async () => (await listMessages(db.pool, { taskKey })).length, { timeout: 20_000 })
      .toBe(2);
    gate.open();
    const result = await stack.client.result(taskKey);
    const read = result.steps.find((s) => s.id === 'read')!.output as { inbox: string[] };
    expect(read.inbox).toEqual(['m1', 'm2']);
    const { rows } = await db.pool.query(
      'SELECT id, acked_by_activity_id FROM cairn.context_messages WHERE task_key = $1 ORDER BY id',
      [taskKey],
    );
    expect(rows).toEqual([
      { id: 'm1', acked_by_activity_id: 'step-read' },
      { id: 'm2', acked_by_activity_id: 'step-read' },
    ]);
  });

  it('working memory: a writer reads its own write and a stale compare-and-set is refused with the current version', async () => {
    const taskKey = 'memory';
    const gate = fileGate('memory');
    await stack.client.startTask({
      taskKey,
      goal: 'memory',
      steps: [
        { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate.path } },
        { id: 'read', role: 'listener', title: 'read memory', dependsOn: ['gate'] },
      ],
    });
    const first = await stack.client.updateWorkingMemory(taskKey, {
      key: 'plan',
      value: 'v1',
      expectedVersion: 0,
    });
    expect(first.version).toBe(1);
    expect((await stack.client.getWorkingMemory(taskKey)).entries.plan?.value).toBe('v1');
    await expect(
      stack.client.updateWorkingMemory(taskKey, { key: 'plan', value: 'stale', expectedVersion: 0 }),
    ).rejects.toMatchObject({
      name: 'WorkingMemoryConflictError',
      currentVersion: 1,
      message: 'working memory "plan": expected version 0 but the current version is 1',
    });
    await stack.client.updateWorkingMemory(taskKey, { key: 'plan', value: 'v2', expectedVersion: 1 });
    gate.open();
    const result = await stack.client.result(taskKey);
    const read = result.steps.find((s) => s.id === 'read')!.output as {
      memory: Record<string, { value: string; version: number }>;
    };
    expect(read.memory.plan).toEqual({ value: 'v2', version: 2 });
  });

  it('invalid agent output fails the step without retries, naming the field; skip policy skips dependants', async () => {
    const taskKey = 'invalid-skip';
    await stack.client.startTask({
      taskKey,
      goal: 'bad output',
      onStepFailure: 'skip',
      rolePolicies: { echo: fast },
      steps: [
        { id: 'bad', role: 'echo', title: 'write garbage', input: { invalid: true } },
        { id: 'after', role: 'echo', title: 'depends on bad', dependsOn: ['bad'] },
        { id: 'other', role: 'echo', title: 'independent' },
      ],
    });
    const result = await stack.client.result(taskKey);
    const bad = result.steps.find((s) => s.id === 'bad')!;
    expect(bad.status).toBe('failed');
    expect(bad.error).toMatch(/fields\.text/);
    expect(result.steps.find((s) => s.id === 'after')!.status).toBe('skipped');
    expect(result.steps.find((s) => s.id === 'other')!.status).toBe('completed');
    const history = await stack.client.handle(taskKey).fetchHistory();
    const badScheduled = history.events!.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityId === 'step-bad',
    )!;
    const badStarted = history.events!.find(
      (e) =>
        e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() ===
        badScheduled.eventId?.toString(),
    );
    // Non-retryable: 'bad' ran exactly once (retries would show attempt > 1); it wrote nothing.
    expect(badStarted?.activityTaskStartedEventAttributes?.attempt).toBe(1);
    expect((await notesOf(taskKey)).map((n) => n.entity_id)).toEqual(['other']);
  });

  it('typed agents: bad input and bad output fail the step once, naming the field; nothing is written', async () => {
    const taskKey = 'typed-io';
    await stack.client.startTask({
      taskKey,
      goal: 'typed input and output',
      onStepFailure: 'skip',
      rolePolicies: { typed: fast },
      steps: [
        { id: 'good', role: 'typed', title: 'good', input: { company: 'acme' } },
        { id: 'bad-input', role: 'typed', title: 'bad input', input: { company: 42 } },
        {
          id: 'bad-output',
          role: 'typed',
          title: 'bad output',
          input: { company: 'initech', verdict: 'bogus' },
        },
      ],
    });
    const result = await stack.client.result(taskKey);
    const step = (id: string) => result.steps.find((s) => s.id === id)!;
    // The input schema's default filled in `verdict`; the output is the parsed one.
    expect(step('good')).toMatchObject({ status: 'completed', output: { company: 'acme', verdict: 'ok' } });
    expect(step('bad-input').status).toBe('failed');
    expect(step('bad-input').error).toMatch(/step input\.company: .*expected string/);
    expect(step('bad-output').status).toBe('failed');
    expect(step('bad-output').error).toMatch(/step output\.verdict: /);
    const history = await stack.client.handle(taskKey).fetchHistory();
    for (const id of ['step-bad-input', 'step-bad-output']) {
      const scheduled = history.events!.find(
        (e) => e.activityTaskScheduledEventAttributes?.activityId === id,
      )!;
      const started = history.events!.find(
        (e) =>
          e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() ===
          scheduled.eventId?.toString(),
      );
      // Non-retryable: one attempt each.
      expect(started?.activityTaskStartedEventAttributes?.attempt).toBe(1);
    }
    // The bad output's append was buffered but never committed.
    expect((await notesOf(taskKey)).map((n) => n.entity_id)).toEqual(['acme']);
  });

  it('fail policy fails the task with the step’s error and records a failed episode', async () => {
    const taskKey = 'invalid-fail';
    await stack.client.startTask({
      taskKey,
      goal: 'bad output',
      steps: [{ id: 'bad', role: 'echo', title: 'garbage', input: { invalid: true } }],
    });
    const err = await stack.client.result(taskKey).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /step bad \(echo\) failed: .*fields\.text/,
    );
    const [episode] = await listEpisodes(db.pool, { taskKey });
    expect(episode?.outcome).toBe('failed');
  });

  it('an agent in one task can send context to a role of another task', async () => {
    const senderDone = path.join(mkdtempSync(path.join(tmpdir(), 'cairn-gate-')), 'sender-done');
    await stack.client.startTask({
      taskKey: 'receiver',
      goal: 'receive',
      steps: [
        { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: senderDone } },
        { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
      ],
    });
    await stack.client.startTask({
      taskKey: 'sender',
      goal: 'send',
      steps: [
        { id: 'say', role: 'echo', title: 'say hello', input: { sendTo: 'listener', toTask: 'receiver' } },
      ],
    });
    expect((await stack.client.result('sender')).status).toBe('completed');
    // The receiver reads only after the sender's step (and its cross-task signal) completed.
    writeFileSync(senderDone, '');
    const received = await stack.client.result('receiver');
    const read = received.steps.find((s) => s.id === 'read')!.output as { contents: unknown[] };
    expect(read.contents).toEqual([{ from: 'say' }]);
  });

  it('cancellation cancels the running step and records a cancelled episode', async () => {
    const taskKey = 'cancel-me';
    await stack.client.startTask({
      taskKey,
      goal: 'to be cancelled',
      steps: [{ id: 'wait', role: 'slow', title: 'wait forever' }],
      rolePolicies: { slow: { heartbeatMs: 2000 } },
    });
    // Cancel once the step is really running (a worker started its attempt), not after a guessed delay.
    const started = async () => {
      const { raw } = await stack.client.handle(taskKey).describe();
      // PENDING_ACTIVITY_STATE_STARTED (2)
      return (raw.pendingActivities ?? []).some(
        (a) => Number(a.state) === 2 || String(a.state).endsWith('STARTED'),
      );
    };
    await expect.poll(started, { timeout: 30_000 }).toBe(true);
    await stack.client.cancel(taskKey);
    await expect(stack.client.result(taskKey)).rejects.toThrow();
    const [episode] = await listEpisodes(db.pool, { taskKey });
    expect(episode?.outcome).toBe('cancelled');
  });

  it('continues as new when Temporal suggests it, losing no step, message or memory version', async () => {
    const taskKey = 'long';
    const chain = 30;
    const steps: TaskInput['steps'] = Array.from({ length: chain }, (_, i) => ({
      id: `s${i}`,
      role: 'echo',
      title: `step ${i}`,
      dependsOn: i === 0 ? [] : [`s${i - 1}`],
    }));
    // The gate holds the reader until every message below has been sent (the test opens it).
    const allSent = path.join(mkdtempSync(path.join(tmpdir(), 'cairn-gate-')), 'all-sent');
    steps.push({ id: 'gate', role: 'slow', title: 'hold the reader', input: { untilFile: allSent } });
    steps.push({
      id: 'read',
      role: 'listener',
      title: 'read everything',
      dependsOn: [`s${chain - 1}`, 'gate'],
    });
    await stack.client.startTask({ taskKey, goal: 'a long chain', steps });
    // Messages and memory writes arrive while the task runs and switches runs.
    const sent: string[] = [];
    let version = 0;
    for (let i = 0; i < 12; i++) {
      const id = `ctx-${i}`;
      await stack.client.sendContext(taskKey, {
        id,
        fromRole: 'human',
        toRole: 'listener',
        type: 'tick',
        content: i,
      });
      sent.push(id);
      const entry = await stack.client
        .updateWorkingMemory(taskKey, { key: 'counter', value: i, expectedVersion: version })
        .catch(() => undefined);
      if (entry) version = entry.version;
      await new Promise((r) => setTimeout(r, 150)); // spread the sends over the runs
    }
    writeFileSync(allSent, '');
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.continuedAsNew).toBeGreaterThan(0);
    expect(result.steps.filter((s) => s.status === 'completed')).toHaveLength(chain + 2);
    const read = result.steps.find((s) => s.id === 'read')!.output as {
      inbox: string[];
      memory: Record<string, { version: number }>;
    };
    expect(read.inbox).toEqual(sent);
    expect(read.memory.counter?.version).toBe(version);
    expect(await notesOf(taskKey)).toHaveLength(chain);
  });
});
