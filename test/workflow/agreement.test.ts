/**
 * Agreements on the real dev server and Postgres: all-of with waiting agents released
 * together, quorum (approved with a voter missing; rejected once unreachable), timeout at the
 * deadline, a voter crashing after its vote (counted once, its first vote standing), a
 * non-voter refused by the update's validator; and ctx.once across retries and concurrent
 * steps. Each decision is in the log, derived from the vote observations.
 */
import { randomUUID } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import {
  agreementEntity,
  agreementWorkflowId,
  voteIdempotencyKey,
  voteUpdate,
  type AgreementOutcome,
  type VoteReceipt,
} from '../../src/shared/agreement';
import { withCoordinationTypes } from '../../src/shared/coordinationTypes';
import { appendObservations } from '../../src/store/observations/append';
import { FAILURE_TYPES } from '../../src/shared/errors';
import type { TaskInput } from '../../src/shared/task';
import { verifyLog } from '../../src/store/observations/verify';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { testTypes } from './agents';
import { coordinationAgents, outsideCalls, type VoterInput } from './coordinationAgents';

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: testTypes,
    agents: coordinationAgents,
  });
});

/** Gate files the tests created (gateAfterVoteOf), removed after the file's tests. */
const gateFiles: string[] = [];

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
  for (const file of gateFiles) rmSync(file, { force: true });
});

const fast = { maxAttempts: 3, initialRetryMs: 100 };
const policies = { alpha: fast, beta: fast, gamma: fast, proposer: fast, charger: fast };

function agreementTask(
  taskKey: string,
  agreement: { voters: string[]; rule?: TaskInput['steps'][number]['input']; deadlineMs?: number },
  votes: Record<string, Omit<VoterInput, 'agreementId'>>,
): TaskInput {
  return {
    taskKey,
    goal: `agree in ${taskKey}`,
    onStepFailure: 'skip',
    rolePolicies: policies,
    steps: [
      {
        id: 'propose',
        role: 'proposer',
        title: 'propose',
        input: {
          agreementId: 'publish',
          voters: agreement.voters,
          deadlineMs: agreement.deadlineMs ?? 60_000,
          ...(agreement.rule ? { rule: agreement.rule } : {}),
        },
      },
      ...Object.entries(votes).map(([role, v]) => ({
        id: `vote-${role}`,
        role,
        title: `${role} votes`,
        input: { agreementId: 'publish', ...v } as never,
      })),
    ],
  };
}

async function outcomeOf(taskKey: string): Promise<AgreementOutcome> {
  return stack.client.temporal.workflow
    .getHandle(agreementWorkflowId(taskKey, 'publish'))
    .result() as Promise<AgreementOutcome>;
}

async function logOf(taskKey: string) {
  const { rows } = await db.pool.query<{
    id: string;
    type: string;
    fields: Record<string, unknown>;
    derived_from: string[];
    attempt: number;
    role: string;
  }>(
    `select id, type, fields, derived_from, attempt, role from cairn.observations where entity_type = 'agreement' and entity_id = $1 order by entity_version`,
    [`${taskKey}/publish`],
  );
  return rows;
}

const key = (name: string) => `${name}-${randomUUID().slice(0, 8)}`;

/**
 * A gate file a voter waits for (its `untilFile`), created once `voter`'s vote is in the log: the
 * order of two voters' steps is then the test's, not the machine's (a loaded machine can start a
 * step more than a fixed delay after another).
 */
function gateAfterVoteOf(taskKey: string, voter: string): { file: string; opened: Promise<void> } {
  const file = path.join(tmpdir(), `cairn-vote-gate-${taskKey}`);
  gateFiles.push(file);
  const opened = (async () => {
    await expect
      .poll(
        async () =>
          (await logOf(taskKey)).some((o) => o.type === 'agreement.vote' && o.fields.voter === voter),
        {
          timeout: 30_000,
          interval: 50,
        },
      )
      .toBe(true);
    writeFileSync(file, '');
  })();
  return { file, opened };
}

describe('agreements', () => {
  it('all-of: waiting voters are released together when the last one approves; the decision cites the votes', async () => {
    const taskKey = key('all-of');
    const gate = gateAfterVoteOf(taskKey, 'alpha');
    await stack.client.startTask(
      agreementTask(
        taskKey,
        { voters: ['alpha', 'beta'] },
        {
          alpha: { approve: true, awaitIt: true },
          beta: { approve: true, awaitIt: true, untilFile: gate.file, delayMs: 1500 },
        },
      ),
    );
    await gate.opened;
    const result = await stack.client.result(taskKey);
    expect(result.steps.map((s) => s.status)).toEqual(['completed', 'completed', 'completed']);
    const a = result.steps.find((s) => s.id === 'vote-alpha')!.output as unknown as {
      outcome: AgreementOutcome;
      releasedAt: number;
      receipt: VoteReceipt;
    };
    const b = result.steps.find((s) => s.id === 'vote-beta')!.output as unknown as {
      outcome: AgreementOutcome;
      releasedAt: number;
    };
    expect(a.receipt).toMatchObject({ counted: true, disposition: 'counted', status: 'open' });
    expect(a.outcome).toEqual(b.outcome);
    expect(a.outcome).toMatchObject({
      status: 'approved',
      approvals: ['alpha', 'beta'],
      rejections: [],
      missing: [],
      subject: `report/${taskKey}`,
    });
    // Together: neither was released before the decision was recorded (alpha, waiting from the
    // start, was held for beta's vote 1.5 s later), and both by the same long poll. (Their release
    // times within 1 s of each other was load-dependent: beta starts its own poll after voting.)
    const { rows: decided } = await db.pool.query<{ ms: string }>(
      'select floor(extract(epoch from recorded_at) * 1000)::bigint as ms from cairn.observations where id = $1',
      [a.outcome.decisionObservationId],
    );
    expect(a.releasedAt).toBeGreaterThanOrEqual(Number(decided[0]!.ms));
    expect(b.releasedAt).toBeGreaterThanOrEqual(Number(decided[0]!.ms));
    expect(Math.abs(a.releasedAt - b.releasedAt)).toBeLessThan(10_000);

    const log = await logOf(taskKey);
    expect(log.map((o) => o.type)).toEqual(['agreement.vote', 'agreement.vote', 'agreement.decision']);
    const decision = log[2]!;
    expect(decision.id).toBe(a.outcome.decisionObservationId);
    expect(decision.fields).toMatchObject({
      status: 'approved',
      rule: 'all-of',
      approvals: ['alpha', 'beta'],
      proposal: { publish: true },
    });
    expect([...decision.derived_from].sort()).toEqual([log[0]!.id, log[1]!.id].sort());
    expect(a.outcome.votes.map((v) => v.voteObservationId).sort()).toEqual([log[0]!.id, log[1]!.id].sort());
  });

  it('all-of: one rejection rejects at once, without waiting for the others', async () => {
    const taskKey = key('all-of-reject');
    await stack.client.startTask(
      agreementTask(
        taskKey,
        { voters: ['alpha', 'beta', 'gamma'] },
        { alpha: { approve: false, awaitIt: true } },
      ),
    );
    await stack.client.result(taskKey);
    expect(await outcomeOf(taskKey)).toMatchObject({
      status: 'rejected',
      rejections: ['alpha'],
      missing: ['beta', 'gamma'],
    });
  });

  it('quorum: approved with a voter missing; rejected once the quorum is out of reach', async () => {
    const approved = key('quorum-yes');
    await stack.client.startTask(
      agreementTask(
        approved,
        { voters: ['alpha', 'beta', 'gamma'], rule: { quorum: 2 } },
        { alpha: { approve: true }, gamma: { approve: true } },
      ),
    );
    const rejected = key('quorum-no');
    await stack.client.startTask(
      agreementTask(
        rejected,
        { voters: ['alpha', 'beta', 'gamma'], rule: { quorum: 2 } },
        { alpha: { approve: false }, beta: { approve: false } },
      ),
    );
    await Promise.all([stack.client.result(approved), stack.client.result(rejected)]);
    const yes = await outcomeOf(approved);
    expect(yes).toMatchObject({ status: 'approved', missing: ['beta'], rule: { quorum: 2 } });
    // Listed in the order the votes arrived (the two voters ran concurrently).
    expect([...yes.approvals].sort()).toEqual(['alpha', 'gamma']);
    const no = await outcomeOf(rejected);
    expect(no).toMatchObject({ status: 'rejected', missing: ['gamma'] });
    expect([...no.rejections].sort()).toEqual(['alpha', 'beta']);
    expect((await logOf(rejected)).at(-1)?.fields).toMatchObject({ status: 'rejected', rule: 'quorum 2' });
  });

  it('times out at the deadline (a workflow timer) and records the timeout', async () => {
    const taskKey = key('timeout');
    const started = Date.now();
    await stack.client.startTask(
      agreementTask(
        taskKey,
        { voters: ['alpha', 'beta'], deadlineMs: 2000 },
        { alpha: { approve: true, awaitIt: true } },
      ),
    );
    const result = await stack.client.result(taskKey);
    const out = result.steps.find((s) => s.id === 'vote-alpha')!.output as unknown as {
      outcome: AgreementOutcome;
    };
    expect(out.outcome).toMatchObject({ status: 'timed-out', approvals: ['alpha'], missing: ['beta'] });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    const log = await logOf(taskKey);
    expect(log.at(-1)).toMatchObject({
      type: 'agreement.decision',
      fields: { status: 'timed-out', missing: ['beta'] },
    });
    const history = await stack.client.temporal.workflow
      .getHandle(agreementWorkflowId(taskKey, 'publish'))
      .fetchHistory();
    expect(history.events!.some((e) => e.timerFiredEventAttributes)).toBe(true);
  });

  it('a voter crashing after its vote is counted once; its first vote stands on retry', async () => {
    const taskKey = key('crash');
    const gate = gateAfterVoteOf(taskKey, 'alpha');
    await stack.client.startTask(
      agreementTask(
        taskKey,
        { voters: ['alpha', 'beta'] },
        {
          alpha: { approve: true, reason: 'first', crashAfterVote: true },
          beta: { approve: true, untilFile: gate.file, delayMs: 1500 },
        },
      ),
    );
    await gate.opened;
    const result = await stack.client.result(taskKey);
    const alphaStep = result.steps.find((s) => s.id === 'vote-alpha')!;
    expect(alphaStep.status).toBe('completed');
    // The retry (attempt 2) would have voted "no" with another reason: the stored vote stands.
    expect((alphaStep.output as unknown as { receipt: VoteReceipt }).receipt).toMatchObject({
      counted: true,
      disposition: 'duplicate',
      vote: { voter: 'alpha', approve: true, reason: 'first' },
    });
    const outcome = await outcomeOf(taskKey);
    expect(outcome.status).toBe('approved');
    expect(outcome.votes.filter((v) => v.voter === 'alpha')).toHaveLength(1);
    const votes = (await logOf(taskKey)).filter((o) => o.type === 'agreement.vote');
    expect(votes.map((v) => [v.role, v.attempt, v.fields.reason])).toEqual([
      ['alpha', 1, 'first'],
      ['beta', 1, 'beta says yes'],
    ]);
    // Two votes and the decision: the retry wrote nothing.
    expect(
      (
        await db.pool.query('select count(*)::int as n from cairn.observations where task_key = $1', [
          taskKey,
        ])
      ).rows[0].n,
    ).toBe(3);
  });

  it('a voter that crashed between writing its vote and sending it sends the stored vote on retry', async () => {
    const taskKey = key('crash-window');
    // What the crashed attempt left behind: its vote in the log, never delivered.
    await appendObservations(
      db.pool,
      withCoordinationTypes(testTypes),
      [
        {
          ...agreementEntity(taskKey, 'publish'),
          type: 'agreement.vote',
          kind: 'decision',
          scope: `task:${taskKey}`,
          fields: { voter: 'alpha', approve: false, reason: 'written before the crash' },
          idempotencyKey: voteIdempotencyKey(taskKey, 'publish', 'alpha'),
        },
      ],
      {
        provenance: {
          taskKey,
          workflowId: stack.client.handle(taskKey).workflowId,
          runId: 'r0',
          activityId: 'step-vote-alpha',
          attempt: 1,
          agentId: 'alpha@dead',
          role: 'alpha',
        },
        idempotencyPrefix: 'crashed',
        observedAt: new Date().toISOString(),
      },
    );
    await stack.client.startTask(
      agreementTask(taskKey, { voters: ['alpha', 'beta'] }, { alpha: { approve: true, delayMs: 500 } }),
    );
    await stack.client.result(taskKey);
    expect(await outcomeOf(taskKey)).toMatchObject({
      status: 'rejected',
      rejections: ['alpha'],
      votes: [{ voter: 'alpha', approve: false, reason: 'written before the crash' }],
    });
    expect((await logOf(taskKey)).map((o) => o.type)).toEqual(['agreement.vote', 'agreement.decision']);
  });

  it("the vote update's validator refuses a non-voter; a non-voter agent fails without retries", async () => {
    const taskKey = key('non-voter');
    await stack.client.startTask(
      // The outsider's vote must reach the agreement before its deadline: 6 s leaves a loaded
      // machine room for the proposal, the poll below and the update (3 s might not).
      agreementTask(taskKey, { voters: ['alpha'], deadlineMs: 6000 }, { gamma: { approve: true } }),
    );
    const handle = stack.client.temporal.workflow.getHandle(agreementWorkflowId(taskKey, 'publish'));
    // Wait for the proposal, then vote as an outsider directly.
    for (let i = 0; i < 300; i++) {
      if (
        await handle.describe().then(
          () => true,
          () => false,
        )
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const err = await handle
      .executeUpdate(voteUpdate, {
        args: [{ voter: 'mallory', approve: true, reason: 'x', voteObservationId: randomUUID() }],
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    const cause = (err as WorkflowUpdateFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe(FAILURE_TYPES.AgreementRefused);

    const result = await stack.client.result(taskKey);
    const gamma = result.steps.find((s) => s.id === 'vote-gamma')!;
    expect(gamma.status).toBe('failed');
    expect(gamma.error).toMatch(/gamma is not a voter/);
    const history = await stack.client.handle(taskKey).fetchHistory();
    const attempts = history
      .events!.filter((e) => e.activityTaskStartedEventAttributes)
      .map((e) => e.activityTaskStartedEventAttributes!.attempt);
    expect(Math.max(...attempts.map(Number))).toBe(1);
    // Nothing was written for the refused vote; the agreement timed out with no votes.
    expect(await outcomeOf(taskKey)).toMatchObject({ status: 'timed-out', votes: [] });
  });
});

describe('agreement histories', () => {
  it('replay against the current code (CAIRN_RECORD_HISTORIES=1 stores them for the replay tier)', async () => {
    const decided = key('replay-decided');
    const timedOut = key('replay-timeout');
    await stack.client.startTask(
      agreementTask(
        decided,
        { voters: ['alpha', 'beta'], rule: { quorum: 2 } },
        { alpha: { approve: true, awaitIt: true }, beta: { approve: true } },
      ),
    );
    await stack.client.startTask(
      agreementTask(timedOut, { voters: ['alpha', 'beta'], deadlineMs: 1500 }, { alpha: { approve: true } }),
    );
    const histories = [];
    for (const [name, taskKey] of [
      ['cairn-agreement-replay-decided', decided],
      ['cairn-agreement-replay-timeout', timedOut],
    ] as const) {
      await stack.client.result(taskKey);
      await outcomeOf(taskKey);
      histories.push({
        name,
        workflowId: agreementWorkflowId(taskKey, 'publish'),
        history: await stack.client.temporal.workflow
          .getHandle(agreementWorkflowId(taskKey, 'publish'))
          .fetchHistory(),
      });
    }
    const results = [];
    for await (const r of Worker.runReplayHistories(
      { workflowBundle: { codePath: inject('cairnTest').workflowBundlePath } },
      histories,
    ))
      results.push(r.error);
    expect(results).toEqual([undefined, undefined]);
    if (process.env.CAIRN_RECORD_HISTORIES === '1') {
      for (const h of histories)
        writeFileSync(
          path.join(__dirname, '..', 'replay', 'histories', `${h.name}.json`),
          historyToJSON(h.history),
        );
    }
  });
});

describe('once', () => {
  it('calls the outside system once across a retried step and across concurrent steps', async () => {
    const taskKey = key('once');
    const charge = key('charge');
    const shared = key('shared');
    await stack.client.startTask({
      taskKey,
      goal: 'charge once',
      rolePolicies: policies,
      steps: [
        {
          id: 'retried',
          role: 'charger',
          title: 'charge, then fail once',
          input: { key: charge, failFirstAttempt: true },
        },
        ...[1, 2, 3].map((i) => ({
          id: `par-${i}`,
          role: 'charger',
          title: `concurrent ${i}`,
          input: { key: shared },
        })),
      ],
    });
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(outsideCalls.get(charge)).toBe(1);
    expect(result.steps.find((s) => s.id === 'retried')?.output).toEqual({ chargeId: `ch-${charge}-1` });
    expect(outsideCalls.get(shared)).toBe(1);
    expect(
      new Set(result.steps.filter((s) => s.id.startsWith('par-')).map((s) => JSON.stringify(s.output))),
    ).toEqual(new Set([JSON.stringify({ chargeId: `ch-${shared}-1` })]));
    const { rows } = await db.pool.query<{ key: string; attempt: number; activity_id: string }>(
      'select key, attempt, activity_id from cairn.effects where task_key = $1 order by key',
      [taskKey],
    );
    expect(rows.map((r) => r.key).sort()).toEqual(
      [`task:${taskKey}/${charge}`, `task:${taskKey}/${shared}`].sort(),
    );
    expect(rows.find((r) => r.key.endsWith(charge))).toMatchObject({
      attempt: 1,
      activity_id: 'step-retried',
    });
  });

  it('the log stays intact', async () => {
    expect((await verifyLog(db.pool)).problems).toEqual([]);
  });
});
