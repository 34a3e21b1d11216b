/**
 * A 1,500-step task at Temporal's default continue-as-new thresholds (issue #10: such a task
 * used to end with an episode "failed, 683 steps"). Plans are capped at 500 steps, so 500 plan
 * steps each propose two more (maxAddedSteps 1,000). Real worker and Postgres, because the
 * point is persistence: every step's observation is stored, the task continues as new at least
 * once, and it ends with one episode, `completed`, counting all 1,500 steps.
 *
 * The shared test server suggests continue-as-new after 120 events; this file starts its own
 * dev server with the defaults (4,096 events / 4 MB), in memory, for the few seconds it runs.
 */
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { defineAgent } from '../../src/agent';
import { getFreePort } from '../../src/dev/ports';
import { ensureTemporalServer, type TemporalServer } from '../../src/dev/temporalServer';
import { taskWorkflowId, taskWorkflowQueue, type TaskResult } from '../../src/shared/task';
import { listEpisodes } from '../../src/store/episodes';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, testConfig, type TestStack } from '../helpers/temporal';
import { note, testTypes } from './agents';

const PLANNED = 500;
const PROPOSED_EACH = 2;
const TOTAL = PLANNED * (1 + PROPOSED_EACH);
const CHAINS = 50;

/** Appends one note per step; a planned step proposes two more. */
const fanout = defineAgent({
  role: 'fanout',
  async handle(ctx) {
    ctx.append(note, ctx.step.id, { text: ctx.step.id });
    if (!ctx.step.id.includes('-'))
      for (let i = 0; i < PROPOSED_EACH; i++)
        ctx.proposeStep({ id: `${ctx.step.id}-${i}`, role: 'fanout', title: `${ctx.step.id}/${i}` });
    return null;
  },
});

let db: TestDatabase;
let server: TemporalServer;
let dataDir: string;
let stack: TestStack;

beforeAll(async () => {
  const port = await getFreePort();
  const address = `127.0.0.1:${port}`;
  const env = inject('cairnTest');
  // SQLite on tmpfs when there is one: this server's history is thrown away anyway.
  dataDir = path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `cairn-temporal-defaults-${port}`);
  [db, server] = await Promise.all([
    createTestDatabase(),
    ensureTemporalServer({
      address,
      namespace: env.namespace,
      dataDir,
      headless: true,
      freshDatabase: true,
      log: () => {},
    }),
  ]);
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: [fanout],
    config: { ...testConfig(db.url), temporalAddress: address },
  });
});

afterAll(async () => {
  await stack?.stop();
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  await db?.drop();
});

it('1,500 steps at the default thresholds: one completed episode, every observation stored', async () => {
  const taskKey = 'fifteen-hundred';
  // 50 chains of 10: the plan unfolds in waves, so steps are still pending when the history
  // passes 4,096 events and the run must continue as new (all at once, it would not need to).
  const steps = Array.from({ length: PLANNED }, (_, i) => ({
    id: `s${i}`,
    role: 'fanout',
    title: `s${i}`,
    ...(i >= CHAINS ? { dependsOn: [`s${i - CHAINS}`] } : {}),
  }));
  const handle = await stack.client.temporal.workflow.start('taskWorkflow', {
    taskQueue: taskWorkflowQueue(stack.config.taskQueuePrefix),
    workflowId: taskWorkflowId(taskKey),
    args: [
      {
        taskQueuePrefix: stack.config.taskQueuePrefix,
        task: { taskKey, goal: '1,500 steps', steps, maxAddedSteps: PLANNED * PROPOSED_EACH },
      },
    ],
  });
  const result = (await handle.result()) as TaskResult;

  expect(result.status).toBe('completed');
  expect(result.steps).toHaveLength(TOTAL);
  expect(result.steps.filter((s) => s.status !== 'completed')).toEqual([]);
  expect(result.observations).toBe(TOTAL);
  // At the defaults (4,096 events), 1,500 steps take more than one run.
  expect(result.continuedAsNew).toBeGreaterThan(0);

  const { rows } = await db.pool.query<{ entity_id: string }>(
    'select entity_id from cairn.observations where task_key = $1',
    [taskKey],
  );
  const stepIds = result.steps.map((s) => s.id).sort();
  expect(rows.map((r) => r.entity_id).sort()).toEqual(stepIds);
  const episodes = await listEpisodes(db.pool, { taskKey });
  expect(episodes.map((e) => [e.outcome, e.stepCount])).toEqual([['completed', TOTAL]]);
}, 180_000);
