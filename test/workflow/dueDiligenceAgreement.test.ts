/**
 * The due-diligence example as `cairn demo` runs it, section by section:
 * - the agreement: the analyst proposes publishing and votes, the writer votes and waits; the
 *   report is published once both agree, and the demo prints the decision and the votes;
 * - the model-driven analyst (generateText + cairnTools with the scripted model, the real AI SDK
 *   path) and the reviewer agent in another process (`cairn mcp` over stdio, driven by the
 *   official MCP client): model provenance, exactly one stale refusal then success, provenance
 *   showing both the step and the MCP session, and a retried analyst step that writes nothing twice.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dueDiligenceAgents, dueDiligenceTask } from '../../examples/due-diligence/agents';
import { dueDiligenceTypes } from '../../examples/due-diligence/types';
import { showAgreement } from '../../src/cli/demoAgreement';
import { MCP_REVIEWER, showMcpAgent } from '../../src/cli/demoMcpAgent';
import { showModelDecision } from '../../src/cli/demoModelAgent';
import { policyResolverFor } from '../../src/shared/reducer';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, testConfig, type TestStack } from '../helpers/temporal';

let db: TestDatabase;
let stack: TestStack;
/** Set by a test: the analyst's next commit "crashes" before the activity reports (once). */
let crashAnalystAfterCommit = false;
let analystCrashes = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: dueDiligenceTypes,
    agents: dueDiligenceAgents,
    faults: {
      afterCommit: ({ role }) => {
        if (role !== 'analyst' || !crashAnalystAfterCommit) return;
        crashAnalystAfterCommit = false;
        analystCrashes++;
        throw new Error('injected: worker lost after the analyst step committed');
      },
    },
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

describe('the model-driven analyst and the MCP reviewer in another process', () => {
  it('model provenance on the decision, one stale refusal then a sign-off, both step and MCP session in its trace', async () => {
    const taskKey = 'dd-model';
    const company = 'globex';
    crashAnalystAfterCommit = true;
    await stack.client.startTask(dueDiligenceTask(taskKey, company));
    const result = await stack.client.result(taskKey);
    expect(result.status).toBe('completed');
    expect(result.steps.find((s) => s.id === 'assess')?.output).toEqual({
      risk: 'medium',
      model: 'scripted/due-diligence-analyst',
    });

    // Attempt 1's model call failed; attempt 2 committed and was "lost"; attempt 3 found the
    // step's completion and returned it: one decision, one message to the writer.
    expect(analystCrashes).toBe(1);
    const decisions = await db.pool.query<{ id: string; attempt: number; source: unknown }>(
      "select id, attempt, source from cairn.observations where task_key = $1 and type = 'company.risk'",
      [taskKey],
    );
    expect(decisions.rows).toHaveLength(1);
    expect(decisions.rows[0]).toMatchObject({
      attempt: 2,
      source: { kind: 'tool-call', ref: 'model:scripted/due-diligence-analyst' },
    });
    const toWriter = await db.pool.query(
      "select 1 from cairn.context_messages where task_key = $1 and from_role = 'analyst' and to_role = 'writer'",
      [taskKey],
    );
    expect(toWriter.rows).toHaveLength(1);

    const lines: string[] = [];
    const out = (l = '') => lines.push(l);
    const step = (t: string) => lines.push(`» ${t}`);
    const shown = await showModelDecision({ pool: db.pool, taskKey, out, step });
    expect(shown?.observation.id).toBe(decisions.rows[0]!.id);
    expect(shown?.call).toMatchObject({
      provider: 'scripted',
      modelId: 'due-diligence-analyst',
      toolCallId: 'call-1-0',
      usage: { inputTokens: 110, outputTokens: 21, totalTokens: 131 },
    });
    expect(shown?.call.promptHash).toMatch(/^[0-9a-f]{64}$/);
    // The model read company/globex at version 2 (both researchers) through read_entity.
    expect(lines.join('\n')).toContain(`(read_entity → the step's read set): company/${company}@2`);

    const config = testConfig(db.url);
    const mcp = await showMcpAgent({
      client: stack.client,
      pool: db.pool,
      policyOf: policyResolverFor(dueDiligenceTypes),
      root: path.resolve(__dirname, '..', '..'),
      databaseUrl: db.url,
      taskKey,
      company,
      out,
      step,
      ui: { uiUrl: config.temporalUiUrl, namespace: config.temporalNamespace },
    });
    expect(mcp.pid).not.toBeNull();
    expect(mcp.pid).not.toBe(process.pid);
    expect(mcp.tools).toEqual(expect.arrayContaining(['read_entity', 'append_observations', 'trace_field']));
    // Read at 3 (the analyst's decision), the late filing made it 4: refused once, naming both.
    expect(mcp.refusals).toBe(1);
    expect(mcp.refusal).toEqual({ entity: `company/${company}`, versionRead: 3, currentVersion: 4 });
    const refused = await db.pool.query<{ role: string; agent_id: string; activity_id: string }>(
      `select r.role, r.agent_id, r.activity_id from cairn.stale_refusals s
         join cairn.read_sets r on r.id = s.read_set_id where r.task_key = $1`,
      [taskKey],
    );
    expect(refused.rows).toEqual([
      { role: 'reviewer', agent_id: MCP_REVIEWER.agentId, activity_id: expect.stringMatching(/^mcp\//) },
    ]);

    const signoff = await db.pool.query(
      'select type, kind, entity_version, agent_id, role, task_key, activity_id, source, fields, derived_from from cairn.observations where id = $1',
      [mcp.decisionId],
    );
    expect(signoff.rows[0]).toMatchObject({
      type: 'company.signoff',
      kind: 'decision',
      entity_version: 5,
      agent_id: MCP_REVIEWER.agentId,
      role: 'reviewer',
      task_key: taskKey,
      activity_id: expect.stringMatching(/^mcp\/[0-9a-f-]{36}\/\d+$/),
      source: { kind: 'tool-call', ref: 'mcp:cairn-demo-reviewer', detail: 'version 1.0.0' },
      fields: { approve: true, conditions: 'risk medium; 150 employees on record at version 4' },
      derived_from: [decisions.rows[0]!.id],
    });
    expect(mcp.sessionActivityId).toBe(signoff.rows[0].activity_id);
    const signoffs = await db.pool.query(
      "select 1 from cairn.observations where entity_id = $1 and type = 'company.signoff'",
      [company],
    );
    expect(signoffs.rows).toHaveLength(1);

    // The printed trace: the sign-off by the MCP session, beneath it the model-driven step's decision.
    const text = lines.join('\n');
    expect(text).toContain(
      'refused: stale read: company/globex was read at version 3 but is now at version 4',
    );
    expect(text).toContain(`activity ${mcp.sessionActivityId}`);
    expect(text).toContain('source tool-call mcp:cairn-demo-reviewer (version 1.0.0)');
    expect(text).toMatch(/↳ .*decision company\.risk@1 {2}company\/globex@3/);
    expect(text).toContain('activity step-assess');
    expect(text).toContain('source tool-call model:scripted/due-diligence-analyst');
  }, 240_000);
});
