/**
 * Memory from the command line and on a schedule: `cairn inbox`, `cairn episodes` and
 * `cairn maintenance run|schedule` as a user runs them (a real process), and the Temporal
 * Schedule starting the maintenance workflow on the tasks queue.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureMaintenanceSchedule, maintenanceScheduleId } from '../../src/maintenanceSchedule';
import type { MaintenanceReport } from '../../src/shared/maintenance';
import type { FoundEpisode } from '../../src/store/episodeSearch';
import { listMessages, type StoredMessage } from '../../src/store/messages';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { fileGate, testAgents, testTypes } from './agents';

const run = promisify(execFile);
const bin = path.join(__dirname, '..', '..', 'bin', 'cairn.js');
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
  await stack?.client.temporal.schedule
    .getHandle(maintenanceScheduleId(stack.config.taskQueuePrefix))
    .delete()
    .catch(() => undefined);
  await stack?.stop();
  await db?.drop();
});

async function cairn(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [bin, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: stack.config.temporalAddress,
      TEMPORAL_NAMESPACE: stack.config.temporalNamespace,
      CAIRN_TASK_QUEUE_PREFIX: stack.config.taskQueuePrefix,
      TEMPORAL_UI_URL: stack.config.temporalUiUrl,
    },
  });
  return stdout;
}

describe('memory commands', () => {
  it('inbox shows a role’s unread context; --all adds what a step read; episodes finds the task', async () => {
    const taskKey = 'cli-inbox';
    const gate = fileGate('cli-inbox');
    await stack.client.startTask({
      taskKey,
      goal: 'Hear about the quarterly numbers',
      steps: [
        { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: gate.path } },
        { id: 'read', role: 'listener', title: 'read', dependsOn: ['gate'] },
      ],
    });
    await stack.client.sendContext(taskKey, {
      id: 'q1',
      fromRole: 'human',
      toRole: 'listener',
      type: 'note',
      content: { quarter: 1 },
    });
    // No step of this task reads the echo role's context: it stays unread (stored when the task ends).
    await stack.client.sendContext(taskKey, {
      id: 'q2',
      fromRole: 'human',
      toRole: 'echo',
      type: 'note',
      content: { quarter: 2 },
    });
    // The listener's step starts once q1 is persisted (admitted later, it would wait for a next step).
    await expect
      .poll(async () => (await listMessages(db.pool, { taskKey })).some((m) => m.id === 'q1'), {
        timeout: 20_000,
      })
      .toBe(true);
    gate.open();
    expect((await stack.client.result(taskKey)).status).toBe('completed');
    const unread = JSON.parse(await cairn(['inbox', 'echo', '--task', taskKey, '--json'])) as StoredMessage[];
    expect(unread.map((m) => [m.id, m.ackedAt])).toEqual([['q2', null]]);
    expect(await cairn(['inbox', 'listener', '--task', taskKey])).toContain('no unread messages');
    const all = JSON.parse(
      await cairn(['inbox', 'listener', '--task', taskKey, '--all', '--json']),
    ) as StoredMessage[];
    expect(all.map((m) => [m.id, m.ackedBy])).toEqual([['q1', `cairn-task-${taskKey}/step-read`]]);

    const found = JSON.parse(await cairn(['episodes', '--text', 'quarterly', '--json'])) as FoundEpisode[];
    expect(found.map((e) => [e.taskKey, e.outcome])).toEqual([[taskKey, 'completed']]);
  });

  it('maintenance run reports what it did, and a second run finds nothing to do', async () => {
    const first = JSON.parse(
      await cairn(['maintenance', 'run', '--episode-days', '0', '--message-days', '0', '--json']),
    ) as MaintenanceReport;
    expect(first.summaries.length).toBe(1);
    expect(first.summaries[0]!.episodes).toBeGreaterThanOrEqual(1);
    expect(first.messagesArchived).toBeGreaterThanOrEqual(1);
    const second = await cairn(['maintenance', 'run', '--episode-days', '0', '--message-days', '0']);
    expect(second).toContain(': 0 condensed into 0 summaries');
    expect(second).toContain(': 0 archived');
  });

  it('maintenance schedule is idempotent, and the schedule runs the maintenance workflow', async () => {
    expect(await cairn(['maintenance', 'schedule', '--every', '1d'])).toMatch(/^created schedule/);
    expect(await cairn(['maintenance', 'schedule', '--every', '12h', '--episode-days', '30'])).toMatch(
      /^updated schedule/,
    );
    const again = await ensureMaintenanceSchedule(stack.client.temporal, {
      taskQueuePrefix: stack.config.taskQueuePrefix,
      every: '12h',
      maintenance: { episodeRetentionMs: 30 * 86_400_000 },
    });
    expect(again.created).toBe(false);
    const handle = stack.client.temporal.schedule.getHandle(again.scheduleId);
    const described = await handle.describe();
    expect(described.spec.intervals?.map((i) => i.every)).toEqual([12 * 3600_000]);
    expect(described.action).toMatchObject({
      workflowType: 'maintenanceWorkflow',
      taskQueue: `${stack.config.taskQueuePrefix}-tasks`,
    });

    await handle.trigger();
    let workflowId: string | undefined;
    // Up to ~30 s for the triggered run to show (10 s could pass on a loaded machine).
    for (let i = 0; i < 300 && !workflowId; i++) {
      workflowId = (await handle.describe()).info.recentActions[0]?.action.workflow.workflowId;
      if (!workflowId) await new Promise((r) => setTimeout(r, 100));
    }
    expect(workflowId).toBeDefined();
    const report = (await stack.client.temporal.workflow
      .getHandle(workflowId!)
      .result()) as MaintenanceReport;
    // Everything old enough was handled by the CLI run above: nothing left to do.
    expect(report).toMatchObject({ summaries: [], messagesArchived: 0 });
  });
});
