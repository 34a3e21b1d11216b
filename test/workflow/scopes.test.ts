/**
 * Scopes on the agent path, on the real dev server and Postgres: a step reads and writes only
 * within its grant (agent's declared scopes ∩ the task's), and a refusal fails the step for
 * good, naming the scope. The worker's pool has no session grant, so everything a step does
 * must run inside its own scoped transaction.
 */
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent, type AgentContext, type AgentDefinition } from '../../src/agent';
import { FAILURE_TYPES } from '../../src/shared/errors';
import type { Json } from '../../src/shared/observation';
import type { TaskInput } from '../../src/shared/task';
import { createPool } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { note, testTypes } from './agents';

const input = z.object({ entityId: z.string(), scope: z.string().optional(), catch: z.boolean().optional() });

/** Appends one note to note/<entityId> in `scope` (default: the task's). */
const writeNote = async (ctx: AgentContext<z.output<typeof input>>): Promise<Json> => {
  const { entityId, scope } = ctx.step.input;
  ctx.append(note, entityId, { text: ctx.task.taskKey }, scope ? { scope } : {});
  return { read: [...ctx.scopes.read], write: [...ctx.scopes.write] };
};

/** Reads note/<entityId>; with `catch`, reports the error instead of failing. */
const readNote = async (ctx: AgentContext<z.output<typeof input>>): Promise<Json> => {
  const { entityId, catch: report } = ctx.step.input;
  try {
    const state = await ctx.memory.entity(note, entityId);
    return { version: state.version, text: state.fields.text?.value ?? null };
  } catch (err) {
    if (!report) throw err;
    return { error: (err as Error).name, message: (err as Error).message };
  }
};

const team = { read: ['task', 'team:research', 'global'], write: ['task', 'team:research'] };
const agents: AgentDefinition[] = [
  defineAgent({ role: 'scribe', input, handle: writeNote }),
  defineAgent({ role: 'peek', input, handle: readNote }),
  defineAgent({ role: 'teamscribe', scopes: team, input, handle: writeNote }),
  defineAgent({ role: 'teampeek', scopes: team, input, handle: readNote }),
];

let db: TestDatabase;
let workerPool: Pool;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  workerPool = createPool(db.url, { max: 6, applicationName: 'cairn-test-worker' });
  stack = await startTestStack({ pool: workerPool, databaseUrl: db.url, registry: testTypes, agents });
});

afterAll(async () => {
  await stack?.stop();
  await workerPool?.end();
  await db?.drop();
});

const retries = { maxAttempts: 5, initialRetryMs: 50 };
const policies = { scribe: retries, peek: retries, teamscribe: retries, teampeek: retries };

async function runTask(task: Omit<TaskInput, 'goal' | 'rolePolicies' | 'onStepFailure'>) {
  await stack.client.startTask({ goal: 'scopes', rolePolicies: policies, onStepFailure: 'skip', ...task });
  return stack.client.result(task.taskKey);
}

/** How many attempts the step made, and the type and retry decision of its last failure. */
async function stepFailure(taskKey: string, stepId: string) {
  const { events } = await stack.client.handle(taskKey).fetchHistory();
  const scheduled = events!.find(
    (e) => e.activityTaskScheduledEventAttributes?.activityId === `step-${stepId}`,
  )!;
  const isOurs = (id: unknown) => String(id) === String(scheduled.eventId);
  const started = events!.filter((e) => isOurs(e.activityTaskStartedEventAttributes?.scheduledEventId));
  const failed = events!.find((e) => isOurs(e.activityTaskFailedEventAttributes?.scheduledEventId));
  const info = failed?.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo;
  return {
    attempt: started.at(-1)?.activityTaskStartedEventAttributes?.attempt,
    type: info?.type,
    nonRetryable: info?.nonRetryable,
  };
}

async function notesWrittenBy(taskKey: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ entity_id: string }>(
    'select entity_id from cairn.observations where task_key = $1 order by seq',
    [taskKey],
  );
  return rows.map((r) => r.entity_id);
}

describe('scoped agent steps', () => {
  it('a step cannot read another task’s entity: a clear ScopeDenied, and uncaught it fails the step for good', async () => {
    const written = await runTask({
      taskKey: 'sc-owner',
      steps: [{ id: 'w', role: 'scribe', title: 'write', input: { entityId: 'private' } }],
    });
    expect(written.steps[0]).toMatchObject({
      status: 'completed',
      output: { read: ['global', 'task:sc-owner'], write: ['task:sc-owner'] },
    });

    const result = await runTask({
      taskKey: 'sc-other',
      steps: [
        { id: 'own', role: 'scribe', title: 'write own', input: { entityId: 'other-own' } },
        { id: 'look', role: 'peek', title: 'read theirs', input: { entityId: 'private', catch: true } },
        { id: 'mine', role: 'peek', title: 'read own', input: { entityId: 'other-own' }, dependsOn: ['own'] },
        { id: 'stare', role: 'peek', title: 'read theirs, uncaught', input: { entityId: 'private' } },
      ],
    });
    const step = (id: string) => result.steps.find((s) => s.id === id)!;
    expect(step('look').output).toEqual({
      error: 'ScopeDeniedError',
      message:
        'role peek may not read note/private: it belongs to scope task:sc-owner (granted: global, task:sc-other)',
    });
    expect(step('mine').output).toEqual({ version: 1, text: 'sc-other' });
    expect(step('stare')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/may not read note\/private: it belongs to scope task:sc-owner/),
    });
    expect(await stepFailure('sc-other', 'stare')).toEqual({
      attempt: 1,
      type: FAILURE_TYPES.ScopeDenied,
      nonRetryable: true,
    });
  });

  it('a step writing outside its scopes fails without retries, naming the scope, and writes nothing', async () => {
    const result = await runTask({
      taskKey: 'sc-write',
      steps: [
        {
          id: 'leak',
          role: 'scribe',
          title: 'write to finance',
          input: { entityId: 'leak', scope: 'team:finance' },
        },
      ],
    });
    expect(result.steps[0]).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('role scribe may not write scope team:finance (granted: task:sc-write)'),
    });
    expect(await stepFailure('sc-write', 'leak')).toEqual({
      attempt: 1,
      type: FAILURE_TYPES.ScopeDenied,
      nonRetryable: true,
    });
    expect(await notesWrittenBy('sc-write')).toEqual([]);
  });

  it('a team scope is shared by the roles that declare it in tasks that allow it, and by no one else', async () => {
    const scopes = ['task', 'team:research'];
    const wrote = await runTask({
      taskKey: 'sc-team-1',
      scopes,
      steps: [
        {
          id: 'w',
          role: 'teamscribe',
          title: 'write team',
          input: { entityId: 'shared', scope: 'team:research' },
        },
      ],
    });
    expect(wrote.steps[0]).toMatchObject({
      status: 'completed',
      output: {
        read: ['global', 'task:sc-team-1', 'team:research'],
        write: ['task:sc-team-1', 'team:research'],
      },
    });

    const result = await runTask({
      taskKey: 'sc-team-2',
      scopes,
      steps: [
        { id: 'member', role: 'teampeek', title: 'read as member', input: { entityId: 'shared' } },
        {
          id: 'outsider',
          role: 'peek',
          title: 'read undeclared',
          input: { entityId: 'shared', catch: true },
        },
      ],
    });
    expect(result.steps.find((s) => s.id === 'member')!.output).toEqual({ version: 1, text: 'sc-team-1' });
    expect(result.steps.find((s) => s.id === 'outsider')!.output).toMatchObject({
      error: 'ScopeDeniedError',
      message: expect.stringContaining('belongs to scope team:research'),
    });

    // A task that does not allow the team: the declaring role cannot read it either.
    const closed = await runTask({
      taskKey: 'sc-team-3',
      steps: [{ id: 'member', role: 'teampeek', title: 'read', input: { entityId: 'shared', catch: true } }],
    });
    expect(closed.steps[0]!.output).toMatchObject({
      error: 'ScopeDeniedError',
      message: expect.stringContaining('(granted: global, task:sc-team-3)'),
    });
  });

  it('per-role grants of the task narrow a role; an entity keeps its scope', async () => {
    const narrowed = await runTask({
      taskKey: 'sc-role',
      scopes: ['task', 'team:research'],
      roleScopes: { teamscribe: { write: ['task'] } },
      steps: [
        {
          id: 'w',
          role: 'teamscribe',
          title: 'write team',
          input: { entityId: 'narrow', scope: 'team:research' },
        },
      ],
    });
    expect(narrowed.steps[0]).toMatchObject({
      status: 'failed',
      error: expect.stringContaining(
        'role teamscribe may not write scope team:research (granted: task:sc-role)',
      ),
    });

    // note/shared is a team:research entity; appending to it in the task's scope is refused.
    const moved = await runTask({
      taskKey: 'sc-move',
      scopes: ['task', 'team:research'],
      steps: [
        { id: 'w', role: 'teamscribe', title: 'write shared in task scope', input: { entityId: 'shared' } },
      ],
    });
    expect(moved.steps[0]).toMatchObject({
      status: 'failed',
      error: expect.stringContaining(
        'note/shared belongs to scope team:research; role teamscribe cannot append to it in scope task:sc-move',
      ),
    });
    expect(await stepFailure('sc-move', 'w')).toEqual({
      attempt: 1,
      type: FAILURE_TYPES.ScopeDenied,
      nonRetryable: true,
    });
  });

  it('a malformed scope in an append is bad input, refused before anything is written', async () => {
    const result = await runTask({
      taskKey: 'sc-bad',
      steps: [{ id: 'w', role: 'scribe', title: 'write', input: { entityId: 'bad', scope: 'everyone' } }],
    });
    expect(result.steps[0]).toMatchObject({
      status: 'failed',
      error: expect.stringContaining('observation [0] scope: "everyone" is not a scope'),
    });
    expect(await stepFailure('sc-bad', 'w')).toEqual({
      attempt: 1,
      type: FAILURE_TYPES.ValidationFailed,
      nonRetryable: true,
    });
    await expect(
      stack.client.startTask({
        taskKey: 'sc-bad-task',
        goal: 'g',
        scopes: ['teams'],
        steps: [{ id: 'w', role: 'scribe', title: 't' }],
      }),
    ).rejects.toThrow(/scopes\[0\]: "teams" is not a scope/);
  });
});
