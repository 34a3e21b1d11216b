/**
 * The due-diligence example with its agreement (as `cairn demo` runs it): the analyst proposes
 * publishing and votes, the writer votes and waits; the report is published once both agree,
 * and the demo's agreement section prints the decision and the votes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dueDiligenceAgents, dueDiligenceTask } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { showAgreement } from '../../src/cli/demoAgreement';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: dueDiligenceTypes,
    agents: dueDiligenceAgents,
  });
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

describe('due diligence with a publishing agreement', () => {
  it('analyst and writer agree; the report says published; the demo prints decision and votes', async () => {
    const taskKey = 'dd-agree';
    await stack.client.startTask(dueDiligenceTask(taskKey, 'acme', { agreement: true }));
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.steps.find((s) => s.id === 'report')?.output).toEqual({
      text: 'Due diligence on acme: risk medium.',
      published: true,
    });

    const lines: string[] = [];
    const outcome = await showAgreement({
      client: stack.client,
      pool: db.pool,
      taskKey,
      out: (l = '') => lines.push(l),
      step: (t) => lines.push(`» ${t}`),
    });
    expect(outcome).toMatchObject({
      status: 'approved',
      approvals: ['analyst', 'writer'],
      subject: 'company/acme',
    });
    const text = lines.join('\n');
    expect(text).toContain('» agreement "publish": approved (all-of of analyst, writer; about company/acme)');
    expect(text).toMatch(/analyst\s+approve\s+risk assessed as medium/);
    expect(text).toMatch(/writer\s+approve\s+report written/);
    expect(text).toContain(
      `decision ${outcome.decisionObservationId} on agreement/${taskKey}/publish, derived from 2 vote(s)`,
    );

    // The analyst's vote was cast by its retried attempt (the first one failed before voting).
    const { rows } = await db.pool.query(
      `select type, role, attempt from cairn.observations where entity_type = 'agreement' and entity_id = $1 order by entity_version`,
      [`${taskKey}/publish`],
    );
    expect(rows).toEqual([
      { type: 'agreement.vote', role: 'analyst', attempt: 2 },
      { type: 'agreement.vote', role: 'writer', attempt: 1 },
      { type: 'agreement.decision', role: 'cairn', attempt: 1 },
    ]);
  });
});
