/**
 * Step payloads by reference (claim-check; issue 10's size limits, issue 14 item 2), on a real
 * worker, Postgres and dev server: a 2.5 MiB output and four parallel 600 KiB outputs neither
 * fail nor terminate the task; they are stored once, in the step's transaction, and pass through
 * history as small references that the dependent step and CairnClient.result() resolve. When a
 * Temporal limit is hit anyway (a 2.5 MiB context message), `cairn task result` prints the
 * cause and names the limit.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { isPayloadRef } from '../../src/shared/payloadRefs';
import { taskWorkflowId, taskWorkflowQueue, type TaskResult } from '../../src/shared/task';
import { listEpisodes } from '../../src/store/episodes';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents } from './agents';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Returns `{ blob }` of `bytes` characters; `message` bytes: also sends a context message that large. */
const big = defineAgent({
  role: 'big',
  input: z.object({
    bytes: z.number().int(),
    message: z.number().int().optional(),
    propose: z.number().optional(),
  }),
  async handle(ctx) {
    const { bytes, message, propose } = ctx.step.input;
    const fill = ctx.step.id.slice(-1);
    if (message !== undefined) ctx.send('gather', 'huge', 'm'.repeat(message));
    if (propose !== undefined)
      ctx.proposeStep({
        id: `${ctx.step.id}-next`,
        role: 'gather',
        title: 'proposed',
        input: { blob: 'p'.repeat(propose) },
      });
    return { blob: fill.repeat(bytes) };
  },
});

/** Reports what its upstream outputs and its own input look like (sizes, first character). */
const gather = defineAgent({
  role: 'gather',
  async handle(ctx) {
    const describe = (v: unknown) => {
      const blob = (v as { blob?: unknown } | null)?.blob;
      return typeof blob === 'string' ? { length: blob.length, first: blob[0] ?? '' } : { notABlob: true };
    };
    return {
      upstream: Object.fromEntries(Object.entries(ctx.step.upstream).map(([k, v]) => [k, describe(v)])),
      input: describe(ctx.step.input),
    };
  },
});

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: (await import('./agents')).testTypes,
    agents: [...testAgents, big, gather],
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

const start = (taskKey: string, task: object) =>
  stack.client.temporal.workflow.start('taskWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId: taskWorkflowId(taskKey),
    args: [{ taskQueuePrefix: stack.config.taskQueuePrefix, task: { taskKey, goal: 'payloads', ...task } }],
  });

/** The largest payload of any event in the task's history (bytes of its JSON form). */
async function largestEvent(taskKey: string): Promise<number> {
  const history = await stack.client.temporal.workflow.getHandle(taskWorkflowId(taskKey)).fetchHistory();
  return Math.max(...(history.events ?? []).map((e) => JSON.stringify(e).length));
}

describe('step outputs by reference', () => {
  it('a 2.5 MiB output completes the task; it is stored once and resolved for the dependent step and the result', async () => {
    const h = await start('big-output', {
      steps: [
        { id: 'b', role: 'big', title: 'big', input: { bytes: 2.5 * MiB } },
        { id: 'g', role: 'gather', title: 'gather', dependsOn: ['b'] },
      ],
    });
    const raw = (await h.result()) as TaskResult;
    expect(raw.status).toBe('completed');
    // Through Temporal: a reference.
    expect(isPayloadRef(raw.steps[0]!.output)).toBe(true);
    expect(await largestEvent('big-output')).toBeLessThan(16 * KiB);
    // The dependent step got the value.
    expect(raw.steps[1]!.output).toEqual({
      upstream: { b: { length: 2.5 * MiB, first: 'b' } },
      input: { notABlob: true },
    });
    // CairnClient.result() resolves it.
    const resolved = await stack.client.result('big-output');
    expect((resolved.steps[0]!.output as { blob: string }).blob).toHaveLength(2.5 * MiB);
    const { rows } = await db.pool.query<{ part: string; bytes: number; scope: string }>(
      'select part, bytes, scope from cairn.step_payloads where task_key = $1',
      ['big-output'],
    );
    expect(rows).toEqual([
      { part: 'output', bytes: 2.5 * MiB + '{"blob":""}'.length, scope: 'task:big-output' },
    ]);
    expect((await listEpisodes(db.pool, { taskKey: 'big-output' })).map((e) => e.outcome)).toEqual([
      'completed',
    ]);
  });

  it('four parallel 600 KiB outputs feed one step; small outputs stay inline', async () => {
    const parts = ['p1', 'p2', 'p3', 'p4'];
    const h = await start('four-parallel', {
      steps: [
        ...parts.map((id) => ({ id, role: 'big', title: id, input: { bytes: 600 * KiB } })),
        { id: 'small', role: 'big', title: 'small', input: { bytes: 100 } },
        { id: 'g', role: 'gather', title: 'gather', dependsOn: [...parts, 'small'] },
      ],
    });
    const raw = (await h.result()) as TaskResult;
    expect(raw.status).toBe('completed');
    expect(raw.steps.filter((s) => isPayloadRef(s.output)).map((s) => s.id)).toEqual(parts);
    expect(raw.steps.find((s) => s.id === 'small')!.output).toEqual({ blob: 'l'.repeat(100) });
    expect(raw.steps.find((s) => s.id === 'g')!.output).toEqual({
      upstream: {
        ...Object.fromEntries(parts.map((p) => [p, { length: 600 * KiB, first: p.slice(-1) }])),
        small: { length: 100, first: 'l' },
      },
      input: { notABlob: true },
    });
    expect(await largestEvent('four-parallel')).toBeLessThan(16 * KiB);
    const resolved = await stack.client.result('four-parallel');
    for (const p of parts)
      expect((resolved.steps.find((s) => s.id === p)!.output as { blob: string }).blob).toBe(
        p.slice(-1).repeat(600 * KiB),
      );
  });

  it("a proposed step's large input travels by reference and reaches its agent whole", async () => {
    const h = await start('proposed-input', {
      steps: [{ id: 'b', role: 'big', title: 'big', input: { bytes: 10, propose: 300 * KiB } }],
    });
    const raw = (await h.result()) as TaskResult;
    expect(raw.status).toBe('completed');
    expect(raw.steps.find((s) => s.id === 'b-next')!.output).toEqual({
      upstream: {},
      input: { length: 300 * KiB, first: 'p' },
    });
    expect(await largestEvent('proposed-input')).toBeLessThan(16 * KiB);
  });
});

describe('a Temporal limit hit anyway', () => {
  it('`cairn task result` prints the cause and names the limit', async () => {
    const h = await start('huge-message', {
      rolePolicies: { big: { maxAttempts: 1 } },
      steps: [{ id: 'b', role: 'big', title: 'big', input: { bytes: 10, message: 2.5 * MiB } }],
    });
    await h.result().catch(() => undefined);
    const failure = await promisify(execFile)(
      process.execPath,
      [path.join(__dirname, '..', '..', 'bin', 'cairn.js'), 'task', 'result', 'huge-message'],
      {
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: db.url,
          TEMPORAL_ADDRESS: stack.config.temporalAddress,
          TEMPORAL_NAMESPACE: stack.config.temporalNamespace,
          CAIRN_TASK_QUEUE_PREFIX: stack.config.taskQueuePrefix,
        },
      },
    ).catch((e: { code: number; stdout: string }) => e);
    expect(failure).toMatchObject({ code: 1 });
    const out = (failure as { stdout: string }).stdout;
    expect(out).toContain('task huge-message: failed');
    expect(out).toMatch(/step b \(big\) failed/);
    expect(out).toMatch(/exceeds size limit/i);
    expect(out).toMatch(/limit: Temporal's payload limit/);
    expect((await listEpisodes(db.pool, { taskKey: 'huge-message' })).map((e) => e.outcome)).toEqual([
      'failed',
    ]);
  });
});
