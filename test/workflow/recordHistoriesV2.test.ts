/**
 * Histories of the 0.2.0 workflow code (behind `patched('cairn-task-v2')`): continue-as-new (the
 * run that continued and the run that finished), proposed steps, an agreement, malformed and
 * valid signals and updates, and the maintenance workflow. Each must replay against the current
 * code; with CAIRN_RECORD_HISTORIES=1 the ones not stored yet are written to
 * test/replay/histories/0.2.0/. Stored files are never overwritten: they guard code in flight.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { temporal } from '@temporalio/proto';
import { dueDiligenceAgents, dueDiligenceTask } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { defineAgent } from '../../src/agent';
import { taskWorkflowId, taskWorkflowQueue } from '../../src/shared/task';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents } from './agents';

/** Proposes one extra step the first time it runs. */
const proposer = defineAgent({
  role: 'planner',
  async handle(ctx) {
    if (ctx.step.id === 'plan')
      ctx.proposeStep({ id: 'added', role: 'planner', title: 'proposed by plan', dependsOn: ['plan'] });
    return { step: ctx.step.id };
  },
});

let db: TestDatabase;
let stack: TestStack;
const dir = path.join(__dirname, '..', 'replay', 'histories', '0.2.0');

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: dueDiligenceTypes,
    agents: [...dueDiligenceAgents, ...testAgents.filter((a) => a.role !== 'echo'), proposer],
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

const gateOf = (name: string) => `/tmp/cairn-proto-record-${process.pid}-${name}`;

it('histories of 0.2.0 runs replay against the current code', async () => {
  const wf = stack.client.temporal.workflow;
  const start = (taskKey: string, task: object) =>
    wf.start('taskWorkflow', {
      taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
      workflowId: taskWorkflowId(taskKey),
      args: [{ taskQueuePrefix: stack.config.taskQueuePrefix, task: { taskKey, ...task } }],
    });

  await stack.client.startTask(dueDiligenceTask('v2-agreement', 'acme', { agreement: true }));
  await start('v2-proposed', {
    goal: 'proposed steps',
    steps: [{ id: 'plan', role: 'planner', title: 'plan' }],
  });
  const chain = Array.from({ length: 24 }, (_, i) => ({
    id: `c${i}`,
    role: 'planner',
    title: `c${i}`,
    ...(i ? { dependsOn: [`c${i - 1}`] } : {}),
  }));
  await start('v2-continue', { goal: 'continue as new', steps: chain });
  const gate = gateOf('signals');
  const signals = await start('v2-signals', {
    goal: 'signals and updates',
    steps: [
      { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate } },
      { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
    ],
  });
  await signals.signal('context', { content: 'malformed' });
  await signals.signal('context', {
    id: 's1',
    fromRole: 'human',
    toRole: 'listener',
    type: 'note',
    content: 'hi',
  });
  await signals.executeUpdate('setMemory', { args: [{ key: 'k', value: 1, expectedVersion: 0 }] });
  writeFileSync(gate, '');
  const maintenance = await wf.start('maintenanceWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId: 'v2-maintenance',
    args: [{}],
  });
  await maintenance.result();

  const histories: { name: string; workflowId: string; history: temporal.api.history.v1.IHistory }[] = [];
  for (const key of ['v2-agreement', 'v2-proposed', 'v2-signals']) {
    await stack.client.result(key);
    const handle = wf.getHandle(taskWorkflowId(key));
    histories.push({ name: key, workflowId: handle.workflowId, history: await handle.fetchHistory() });
  }
  const continued = await stack.client.result('v2-continue');
  expect(continued.continuedAsNew).toBeGreaterThan(0);
  const lastRun = wf.getHandle(
    taskWorkflowId('v2-continue'),
    (await wf.getHandle(taskWorkflowId('v2-continue')).describe()).runId,
  );
  const runs: string[] = [];
  for await (const r of wf.list({ query: `WorkflowId = '${taskWorkflowId('v2-continue')}'` }))
    runs.push(r.runId);
  expect(runs.length).toBe(continued.continuedAsNew + 1);
  // The last run (carried state in its input) and the first run (ends in continue-as-new);
  // visibility lists newest first.
  histories.push({
    name: 'v2-continue-last',
    workflowId: lastRun.workflowId,
    history: await lastRun.fetchHistory(),
  });
  const first = wf.getHandle(taskWorkflowId('v2-continue'), runs[runs.length - 1]);
  histories.push({
    name: 'v2-continue-first',
    workflowId: first.workflowId,
    history: await first.fetchHistory(),
  });
  histories.push({
    name: 'v2-maintenance',
    workflowId: 'v2-maintenance',
    history: await maintenance.fetchHistory(),
  });
  expect(
    histories.find((h) => h.name === 'v2-continue-first')!.history.events?.at(-1)
      ?.workflowExecutionContinuedAsNewEventAttributes,
  ).toBeTruthy();
  expect(
    histories
      .find((h) => h.name === 'v2-proposed')!
      .history.events?.filter(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'runAgentStep',
      ),
  ).toHaveLength(2);

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
