/**
 * The `cairn` command line as a user runs it: a real process, configured by environment
 * variables, against the test server and a test database.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dueDiligenceAgents } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testAgents } from './agents';
import type { TaskResult } from '../../src/shared/task';

const run = promisify(execFile);
const bin = path.join(__dirname, '..', '..', 'bin', 'cairn.js');
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

function cairn(args: string[], env: Record<string, string> = {}) {
  return run(process.execPath, [bin, ...args], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: stack.config.temporalAddress,
      TEMPORAL_NAMESPACE: stack.config.temporalNamespace,
      CAIRN_TASK_QUEUE_PREFIX: stack.config.taskQueuePrefix,
      TEMPORAL_UI_URL: stack.config.temporalUiUrl,
      ...env,
    },
  });
}

describe('cairn CLI', () => {
  it('a bad variable stops with one line naming it, not a stack trace', async () => {
    const failure = await cairn(['task', 'list'], { TEMPORAL_ADDRESS: 'nowhere' }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(failure).toMatchObject({ code: 2 });
    const stderr = (failure as { stderr: string }).stderr.trim();
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toContain('TEMPORAL_ADDRESS must be host:port');
  });

  it('starts a task from a plan file, sends it context, and shows its status and result', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cairn-cli-'));
    const release = path.join(dir, 'release');
    const plan = {
      taskKey: 'cli-plan',
      goal: 'hear from a human',
      steps: [
        { id: 'gate', role: 'slow', title: 'hold', input: { untilFile: release } },
        { id: 'read', role: 'listener', title: 'read inbox', dependsOn: ['gate'] },
      ],
    };
    const file = path.join(dir, 'plan.json');
    writeFileSync(file, JSON.stringify(plan));
    const started = await cairn(['task', 'start', '--file', file, '--json']);
    expect(JSON.parse(started.stdout)).toMatchObject({
      taskKey: 'cli-plan',
      workflowId: 'cairn-task-cli-plan',
    });

    await cairn([
      'task',
      'send',
      'cli-plan',
      '--to',
      'listener',
      '--type',
      'style',
      '--content',
      '{"tone":"brief"}',
      '--id',
      'cli-msg-1',
    ]);
    const status = await cairn(['task', 'status', 'cli-plan']);
    expect(status.stdout).toMatch(/task cli-plan: running/);
    expect(status.stdout).toMatch(/gate\s+slow\s+hold\s+running/);
    writeFileSync(release, '');

    const result = JSON.parse((await cairn(['task', 'result', 'cli-plan', '--json'])).stdout) as TaskResult;
    expect(result.status).toBe('completed');
    expect(result.steps.find((s) => s.id === 'read')?.output).toMatchObject({
      contents: [{ tone: 'brief' }],
    });
    const messages = await db.pool.query(
      "SELECT from_role, acked_by_activity_id FROM cairn.context_messages WHERE id = 'cli-msg-1'",
    );
    expect(messages.rows).toEqual([{ from_role: 'human', acked_by_activity_id: 'step-read' }]);
  });

  it('starts the example, lists it by status and role, and reads its entity', async () => {
    const started = await cairn(['task', 'start', '--example', 'due-diligence', '--key', 'cli-1', '--json']);
    expect(JSON.parse(started.stdout)).toMatchObject({ taskKey: 'cli-1' });
    expect(JSON.parse((await cairn(['task', 'result', 'cli-1', '--json'])).stdout).status).toBe('completed');

    // Visibility is eventually consistent: poll for the completed status (up to ~30 s and more,
    // each `task list` a CLI process; 10 s could pass on a loaded machine).
    let listed: { taskKey: string; status: string; roles: string[] }[] = [];
    for (let i = 0; i < 60 && !listed.some((t) => t.taskKey === 'cli-1'); i++) {
      listed = JSON.parse(
        (await cairn(['task', 'list', '--status', 'completed', '--role', 'analyst', '--json'])).stdout,
      );
      if (!listed.some((t) => t.taskKey === 'cli-1')) await new Promise((r) => setTimeout(r, 500));
    }
    expect(listed.find((t) => t.taskKey === 'cli-1')).toMatchObject({
      status: 'completed',
      roles: ['analyst', 'researcher', 'writer'],
    });

    const entity = await cairn(['entity', 'company/acme', '--json']);
    expect(JSON.parse(entity.stdout).fields.headquarters.policy).toBe('last-writer-wins');
  });
});
