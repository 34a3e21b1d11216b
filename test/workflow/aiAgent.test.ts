/**
 * A model-driven agent: an agent step runs generateText with cairnTools(ctx) and a scripted
 * model (the AI SDK's mock, through the real tool-calling loop). Its tool calls read through the
 * step's view (the read set), append a decision and send context; the observations carry the
 * model call (provider, model id, usage, prompt hash); a retry of the committed step returns
 * its recorded result and writes nothing twice.
 */
import { generateText, stepCountIs } from 'ai';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { cairnModel, cairnTools } from '../../src/ai/cairnTools';
import { scriptedModel } from '../../src/ai/scripted';
import { parseModelSource } from '../../src/shared/modelSource';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { appendObservations } from '../../src/store/observations/append';
import { readSetOfObservation } from '../../src/store/readSets';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { startTestStack, type TestStack } from '../helpers/temporal';

const profile = defineObservationType({
  name: 'vendor.profile',
  version: 1,
  entity: 'vendor',
  fields: { name: z.string(), employees: z.number().int() },
});
const verdict = defineObservationType({
  name: 'vendor.verdict',
  version: 1,
  entity: 'vendor',
  fields: { approve: z.boolean(), reason: z.string() },
});
const types = new ObservationTypeRegistry([profile, verdict]);

const toolResults: unknown[] = [];
const analyst = defineAgent({
  role: 'llm-analyst',
  scopes: { read: ['task', 'global'], write: ['task'] },
  async handle(ctx) {
    const id = (ctx.step.input as { vendor: string }).vendor;
    const model = cairnModel(
      scriptedModel(
        [
          {
            toolCalls: [
              { name: 'list_types', input: {} },
              { name: 'read_entity', input: { entityType: 'vendor', entityId: id } },
            ],
          },
          {
            toolCalls: [
              {
                name: 'append_observations',
                input: {
                  items: [
                    {
                      entityType: 'vendor',
                      entityId: id,
                      type: 'vendor.verdict',
                      kind: 'decision',
                      fields: { approve: true, reason: 'small and known' },
                    },
                  ],
                },
              },
              {
                name: 'send_context',
                input: { toRole: 'reviewer', type: 'verdict', content: { vendor: id, approve: true } },
              },
            ],
          },
          { text: `approved ${id}` },
        ],
        { provider: 'mock-provider', modelId: 'scripted-analyst' },
      ),
    );
    const result = await generateText({
      model,
      tools: cairnTools(ctx, { model, types }),
      prompt: `Assess vendor ${id}.`,
      stopWhen: stepCountIs(6),
    });
    toolResults.push(
      ...result.steps.flatMap((s) =>
        s.toolResults.map((r) => ({ tool: r.toolName, output: r.output as unknown })),
      ),
    );
    return { text: result.text };
  },
});

/** Decides on vendor/beta; on its first attempt another writer changes beta before the step commits. */
const racer = defineAgent({
  role: 'llm-racer',
  async handle(ctx) {
    const model = cairnModel(
      scriptedModel(
        [
          { toolCalls: [{ name: 'read_entity', input: { entityType: 'vendor', entityId: 'beta' } }] },
          {
            toolCalls: [
              {
                name: 'append_observations',
                input: {
                  items: [
                    {
                      entityType: 'vendor',
                      entityId: 'beta',
                      type: 'vendor.verdict',
                      kind: 'decision',
                      fields: { approve: false, reason: 'too big' },
                    },
                  ],
                },
              },
            ],
          },
          { text: 'rejected beta' },
        ],
        { provider: 'mock-provider', modelId: 'scripted-racer' },
      ),
    );
    const result = await generateText({
      model,
      tools: cairnTools(ctx, { model }),
      prompt: 'Assess vendor beta.',
      stopWhen: stepCountIs(4),
    });
    if (ctx.step.attempt === 1) await seed('beta', { name: 'Beta', employees: 9000 }, 'concurrent');
    return { text: result.text, attempt: ctx.step.attempt };
  },
});

async function seed(id: string, fields: Record<string, unknown>, key: string) {
  await appendObservations(
    db.pool,
    types,
    [{ entityType: 'vendor', entityId: id, type: 'vendor.profile', fields, scope: 'task:ai-beta' }],
    {
      provenance: {
        taskKey: '',
        workflowId: '',
        runId: '',
        activityId: key,
        attempt: 0,
        agentId: 'other-writer',
        role: 'other',
      },
      idempotencyPrefix: `seed-${id}-${key}`,
      observedAt: new Date().toISOString(),
    },
  );
}

let db: TestDatabase;
let stack: TestStack;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({
    pool: db.pool,
    databaseUrl: db.url,
    registry: types,
    agents: [analyst, racer],
    // The first attempt commits, then "crashes" before reporting: the retry must not ask the model again.
    faults: {
      afterCommit: ({ attempt, role }) => {
        if (attempt === 1 && role === 'llm-analyst') throw new Error('injected: crash after commit');
      },
    },
  });
  await appendObservations(
    db.pool,
    types,
    [
      {
        entityType: 'vendor',
        entityId: 'acme',
        type: 'vendor.profile',
        fields: { name: 'Acme', employees: 40 },
        scope: 'task:ai-acme',
      },
    ],
    {
      provenance: {
        taskKey: '',
        workflowId: '',
        runId: '',
        activityId: 'seed',
        attempt: 0,
        agentId: 'seed',
        role: 'seed',
      },
      idempotencyPrefix: 'seed',
      observedAt: new Date().toISOString(),
    },
  );
});

afterAll(async () => {
  await stack?.stop();
  await db?.drop();
});

it('a scripted model decides through cairnTools: model provenance recorded, read set linked, retry writes nothing twice', async () => {
  const taskKey = 'ai-acme';
  await stack.client.startTask({
    taskKey,
    goal: 'assess acme with a model',
    steps: [{ id: 'assess', role: 'llm-analyst', title: 'assess the vendor', input: { vendor: 'acme' } }],
    rolePolicies: { 'llm-analyst': { initialRetryMs: 100, maxAttempts: 3 } },
  });
  const result = await stack.client.result(taskKey);
  expect(result.status).toBe('completed');
  expect(result.steps[0]?.output).toEqual({ text: 'approved acme' });

  // The handler ran once: attempt 1 committed then failed; attempt 2 found the step's
  // completion record and returned its result without asking the model again.
  const appends = toolResults.filter((r) => (r as { tool: string }).tool === 'append_observations');
  expect(appends).toHaveLength(1);
  expect(toolResults.find((r) => (r as { tool: string }).tool === 'read_entity')).toMatchObject({
    output: { entity: 'vendor/acme', version: 1, fields: { employees: { value: 40 } } },
  });

  const { rows } = await db.pool.query<{
    id: string;
    kind: string;
    attempt: number;
    agent_id: string;
    role: string;
    source: { kind: 'tool-call'; ref: string; detail?: string };
  }>(
    'select id, kind, attempt, agent_id, role, source from cairn.observations where task_key = $1 order by seq',
    [taskKey],
  );
  expect(rows).toHaveLength(1);
  const decision = rows[0]!;
  expect(decision).toMatchObject({ kind: 'decision', attempt: 1, role: 'llm-analyst' });
  const call = parseModelSource(decision.source);
  expect(call).toMatchObject({
    provider: 'mock-provider',
    modelId: 'scripted-analyst',
    toolCallId: 'call-1-0',
    usage: { inputTokens: 110, outputTokens: 21, totalTokens: 131 },
  });
  expect(call?.promptHash).toMatch(/^[0-9a-f]{64}$/);

  const readSet = await readSetOfObservation(db.pool, decision.id);
  expect(readSet?.entries).toEqual([{ entityType: 'vendor', entityId: 'acme', version: 1, fields: null }]);

  const msgs = await db.pool.query<{ from_role: string; to_role: string; content: unknown }>(
    'select from_role, to_role, content from cairn.context_messages where task_key = $1',
    [taskKey],
  );
  expect(msgs.rows).toEqual([
    { from_role: 'llm-analyst', to_role: 'reviewer', content: { vendor: 'acme', approve: true } },
  ]);
}, 120_000);

it('a model decision on moved-on reads is refused at commit, and the retried step re-reads and decides', async () => {
  await seed('beta', { name: 'Beta', employees: 50 }, 'initial');
  const taskKey = 'ai-beta';
  await stack.client.startTask({
    taskKey,
    goal: 'assess beta with a model',
    steps: [{ id: 'assess', role: 'llm-racer', title: 'assess beta', input: null }],
    rolePolicies: { 'llm-racer': { initialRetryMs: 100, maxAttempts: 3 } },
  });
  const result = await stack.client.result(taskKey);
  expect(result.steps[0]).toMatchObject({
    status: 'completed',
    output: { text: 'rejected beta', attempt: 2 },
  });
  const refusals = await db.pool.query<{ conflicts: { versionRead: number; currentVersion: number }[] }>(
    'select s.conflicts from cairn.stale_refusals s join cairn.read_sets r on r.id = s.read_set_id where r.task_key = $1',
    [taskKey],
  );
  expect(refusals.rows).toHaveLength(1);
  expect(refusals.rows[0]!.conflicts[0]).toMatchObject({
    entityType: 'vendor',
    entityId: 'beta',
    versionRead: 1,
    currentVersion: 2,
  });
  const { rows } = await db.pool.query<{ id: string; entity_version: number; attempt: number }>(
    "select id, entity_version, attempt from cairn.observations where entity_id = 'beta' and kind = 'decision'",
  );
  expect(rows).toEqual([expect.objectContaining({ entity_version: 3, attempt: 2 })]);
  const readSet = await readSetOfObservation(db.pool, rows[0]!.id);
  expect(readSet?.entries).toEqual([{ entityType: 'vendor', entityId: 'beta', version: 2, fields: null }]);
}, 120_000);
