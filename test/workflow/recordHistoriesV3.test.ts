/**
 * Histories of the 0.3.0 workflow code: steps scheduled behind `patched('cairn-step-payload-refs')`
 * (claim-check) and the key binding and episode as local activities
 * (`patched('cairn-task-local-bookkeeping')`; the `v3-` files predate it, the `v3b-` ones have both), with a large output passed by reference to a dependent step, a proposed step
 * whose large input travels by reference, and a chain that continues as new carrying the
 * claim-check budget. Each must replay against the current code; with CAIRN_RECORD_HISTORIES=1
 * the ones not stored yet are written to test/replay/histories/0.3.0/. Stored files are never
 * overwritten: they guard code in flight.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';
import { defineAgent } from '../../src/agent';
import { isPayloadRef } from '../../src/shared/payloadRefs';
import { taskWorkflowId, taskWorkflowQueue, type TaskResult } from '../../src/shared/task';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { LOCAL_BOOKKEEPING_PATCH, PAYLOAD_REFS_PATCH } from '../../workflows/task';

/** Returns `bytes` characters; `propose`: also proposes a step with an input that large. */
const sized = defineAgent({
  role: 'sized',
  input: z
    .object({ bytes: z.number().int().optional(), propose: z.number().int().optional() })
    .nullable()
    .transform((i) => i ?? {}),
  async handle(ctx) {
    const { bytes, propose } = ctx.step.input;
    if (propose !== undefined)
      ctx.proposeStep({
        id: `${ctx.step.id}-next`,
        role: 'sized',
        title: 'proposed',
        input: { bytes: 10, pad: 'p'.repeat(propose) },
        dependsOn: [ctx.step.id],
      });
    return { blob: 'x'.repeat(bytes ?? 10), upstream: Object.keys(ctx.step.upstream) };
  },
});

let db: TestDatabase;
let stack: TestStack;
const dir = path.join(__dirname, '..', 'replay', 'histories', '0.3.0');

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({ pool: db.pool, databaseUrl: db.url, registry: testTypes, agents: [sized] });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

it('histories of 0.3.0 runs (claim-check) replay against the current code', async () => {
  const wf = stack.client.temporal.workflow;
  const start = (taskKey: string, task: object) =>
    wf.start('taskWorkflow', {
      taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
      workflowId: taskWorkflowId(taskKey),
      args: [{ taskQueuePrefix: stack.config.taskQueuePrefix, task: { taskKey, ...task } }],
    });
  const refs = await start('v3b-refs', {
    goal: 'outputs by reference',
    steps: [
      { id: 'big', role: 'sized', title: 'big output', input: { bytes: 64 * 1024, propose: 32 * 1024 } },
      { id: 'small', role: 'sized', title: 'small output' },
      { id: 'use', role: 'sized', title: 'use both', dependsOn: ['big', 'small'] },
    ],
  });
  const chain = Array.from({ length: 24 }, (_, i) => ({
    id: `c${i}`,
    role: 'sized',
    title: `c${i}`,
    input: { bytes: i % 4 === 0 ? 20 * 1024 : 100 },
    ...(i ? { dependsOn: [`c${i - 1}`] } : {}),
  }));
  await start('v3b-continue', { goal: 'continue as new with references', steps: chain });

  const refsResult = (await refs.result()) as TaskResult;
  expect(refsResult.steps.filter((s) => isPayloadRef(s.output)).map((s) => s.id)).toEqual(['big']);
  const continued = (await wf.getHandle(taskWorkflowId('v3b-continue')).result()) as TaskResult;
  expect(continued.continuedAsNew).toBeGreaterThan(0);
  expect(continued.steps.filter((s) => isPayloadRef(s.output)).length).toBe(6);

  const runs: string[] = [];
  for await (const r of wf.list({ query: `WorkflowId = '${taskWorkflowId('v3b-continue')}'` }))
    runs.push(r.runId);
  const histories: { name: string; workflowId: string; history: temporal.api.history.v1.IHistory }[] = [
    { name: 'v3b-refs', workflowId: refs.workflowId, history: await refs.fetchHistory() },
    {
      name: 'v3b-continue-first',
      workflowId: taskWorkflowId('v3b-continue'),
      // Visibility lists newest first.
      history: await wf.getHandle(taskWorkflowId('v3b-continue'), runs[runs.length - 1]).fetchHistory(),
    },
    {
      name: 'v3b-continue-last',
      workflowId: taskWorkflowId('v3b-continue'),
      history: await wf.getHandle(taskWorkflowId('v3b-continue'), runs[0]).fetchHistory(),
    },
  ];
  // The patch marker is in each history (a guard for the claim-check path, not a plain run).
  for (const h of histories)
    expect(
      [PAYLOAD_REFS_PATCH, LOCAL_BOOKKEEPING_PATCH].filter(
        (patch) =>
          !h.history.events?.some((e) =>
            e.markerRecordedEventAttributes?.details?.['patch-data']?.payloads?.some((p) =>
              Buffer.from(p.data ?? [])
                .toString('utf8')
                .includes(patch),
            ),
          ),
      ),
    ).toEqual([]);

  const results = [];
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: { codePath: inject('cairnTest').workflowBundlePath } },
    histories,
  )) {
    results.push(r.error?.message);
  }
  expect(results).toEqual(histories.map(() => undefined));
  if (process.env.CAIRN_RECORD_HISTORIES === '1') {
    for (const { name, history } of histories) {
      try {
        writeFileSync(path.join(dir, `cairn-${name}.json`), historyToJSON(history), { flag: 'wx' });
      } catch (err) {
        // Append-only: a stored history stays as recorded.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }
}, 180_000);
