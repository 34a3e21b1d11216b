/**
 * Runs representative tasks and checks their histories replay against the current workflow code.
 * With CAIRN_RECORD_HISTORIES=1 it also stores them under test/replay/histories/, which the
 * replay tier replays on every run without a server — the guard against non-determinism when
 * workflow code changes.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Worker } from '@temporalio/worker';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { inject } from 'vitest';
import { dueDiligenceAgents, dueDiligenceTask } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents } from './agents';

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: dueDiligenceTypes,
    agents: [...dueDiligenceAgents, ...testAgents.filter((a) => a.role !== 'echo')],
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

it('histories of representative runs replay against the current code', async () => {
  await stack.client.startTask(dueDiligenceTask('replay-dd'));
  await stack.client.startTask({
    taskKey: 'replay-memory',
    goal: 'memory and context',
    steps: [
      { id: 'gate', role: 'slow', title: 'hold', input: { ms: 1500 } },
      { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
    ],
  });
  await stack.client.sendContext('replay-memory', {
    id: 'r1',
    fromRole: 'human',
    toRole: 'listener',
    type: 'note',
    content: 'hi',
  });
  await stack.client.updateWorkingMemory('replay-memory', { key: 'k', value: 1, expectedVersion: 0 });
  const histories = [];
  for (const key of ['replay-dd', 'replay-memory']) {
    await stack.client.result(key);
    const handle = stack.client.handle(key);
    histories.push({ workflowId: handle.workflowId, history: await handle.fetchHistory() });
  }
  const results = [];
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: { codePath: inject('cairnTest').workflowBundlePath } },
    histories,
  )) {
    results.push(r);
  }
  expect(results.map((r) => r.error)).toEqual([undefined, undefined]);
  if (process.env.CAIRN_RECORD_HISTORIES === '1') {
    for (const { workflowId, history } of histories) {
      // Append-only (flag wx): 0.1.0's stored histories guard runs in flight; never re-record them.
      try {
        writeFileSync(
          path.join(__dirname, '..', 'replay', 'histories', `${workflowId}.json`),
          historyToJSON(history),
          { flag: 'wx' },
        );
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }
});
