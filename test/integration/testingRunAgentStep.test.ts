/**
 * The /testing entry's runAgentStep, used as a user would: one agent handler against a real
 * Postgres database, no Temporal. Its appends are really committed (read back by the next
 * step), bad input fails naming the field with nothing written, claims and work items are real.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { AgentValidationError, CairnError, FAILURE_TYPES } from '../../src/shared/errors';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { runAgentStep } from '../../src/testing';
import { analyst, researcher, SOURCE_IDS, sourceRaceTask } from '../../examples/due-diligence/agents';
import { companyProfile, dueDiligenceTypes, riskAssessment } from '../../examples/due-diligence/types';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('runAgentStep', () => {
  it('runs the example researcher then analyst: typed observations written, read back, derived from', async () => {
    const taskKey = 'unit-acme';
    const found = await runAgentStep(researcher, {
      databaseUrl: db.url,
      types: dueDiligenceTypes,
      taskKey,
      stepId: 'registry',
      input: { company: 'acme-unit', source: 'registry' },
    });
    expect(found.output).toEqual({ source: 'registry', headquarters: 'Berlin' });
    const [profile] = found.observationsOf(companyProfile);
    // Typed by the handle: `headquarters` is a string field of company.profile.
    const hq: string | undefined = profile?.fields.headquarters;
    expect(hq).toBe('Berlin');
    expect(profile).toMatchObject({ entityType: 'company', entityId: 'acme-unit', scope: 'team:diligence' });
    expect(profile?.provenance).toMatchObject({ role: 'researcher', taskKey, workflowId: found.workflowId });
    expect(found.messages).toEqual([expect.objectContaining({ toRole: 'analyst', type: 'finding' })]);

    // The analyst is model-driven (scripted model, real AI SDK tool path); its first attempt's
    // model call fails on purpose (a flaky endpoint); run its retry.
    const assessed = await runAgentStep(analyst, {
      databaseUrl: db.url,
      types: dueDiligenceTypes,
      taskKey,
      stepId: 'assess',
      attempt: 2,
      input: { company: 'acme-unit' },
      inbox: [{ type: 'finding', content: { source: 'registry' }, fromRole: 'researcher' }],
    });
    expect(assessed.output).toEqual({ risk: 'low', model: 'scripted/due-diligence-analyst' });
    const [risk] = assessed.observationsOf(riskAssessment);
    expect(risk?.kind).toBe('decision');
    expect(risk?.fields.risk).toBe('low');
    // It read the researcher's committed observation and says so.
    expect(risk?.provenance.derivedFrom).toEqual([profile?.id]);
    expect(risk?.provenance.source).toMatchObject({
      kind: 'tool-call',
      ref: 'model:scripted/due-diligence-analyst',
    });
    expect(assessed.result.acknowledged).toHaveLength(1);
  });

  it('the example researcher in race mode registers the sources itself; each step wins a different one', async () => {
    const race = sourceRaceTask('unit-race', 'race-co', 2);
    const won: unknown[] = [];
    for (const step of race.steps) {
      const run = await runAgentStep(researcher, {
        databaseUrl: db.url,
        types: dueDiligenceTypes,
        taskKey: race.taskKey,
        stepId: step.id,
        input: step.input,
      });
      won.push(run.output);
      expect(run.observationsOf(companyProfile)).toHaveLength(1);
    }
    expect(won).toEqual([
      { source: SOURCE_IDS[0], token: 1 },
      { source: SOURCE_IDS[1], token: 1 },
    ]);
  });

  it('bad input fails for good, naming the field; nothing is written', async () => {
    const err = await runAgentStep(researcher, {
      databaseUrl: db.url,
      types: dueDiligenceTypes,
      input: { company: 42, source: 'registry' },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgentValidationError);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe(FAILURE_TYPES.ValidationFailed);
    expect((err as Error).message).toMatch(/^step input\.company: .*expected string/);
    const { rows } = await db.pool.query(
      "select count(*)::int as n from cairn.observations where entity_type = 'company' and entity_id = '42'",
    );
    expect(rows[0].n).toBe(0);
  });

  const task = defineObservationType({
    name: 'unit.task',
    version: 1,
    entity: 'job',
    fields: { done: z.boolean(), by: z.string().optional() },
  });
  const types = new ObservationTypeRegistry([task]);
  /** Registers the jobs (idempotently) and takes the next free one, fenced by its claim. */
  const worker = defineAgent({
    role: 'jobber',
    input: z.object({ kind: z.string(), jobs: z.array(z.string()) }),
    output: z.object({ job: z.string().nullable() }),
    async handle(ctx) {
      await ctx.registerWorkItems(ctx.step.input.kind, ctx.step.input.jobs);
      const grant = await ctx.nextFree(ctx.step.input.kind, { workItems: true }, { ttlMs: 10_000 });
      if (!grant) return { job: null };
      ctx.append(task, grant.id, { done: true, by: ctx.step.id }, { fence: grant.resource });
      ctx.completeWorkItem(grant.resource);
      return { job: grant.id };
    },
  });

  it('claims and work items are real: each run takes the next job, then none is left', async () => {
    const input = { kind: 'unit-jobs', jobs: ['a', 'b'] };
    // A kind's work items belong to the task that registered them (migration 017): a step of
    // another task does not get them, whoever registers the same ids again.
    const other = await runAgentStep(worker, {
      databaseUrl: db.url,
      types,
      taskKey: 'jobs-elsewhere',
      stepId: 'x',
      input,
    });
    expect(other.output.job).toBe('a');
    const taken: (string | null)[] = [];
    for (const stepId of ['one', 'two', 'three']) {
      const run = await runAgentStep(worker, {
        databaseUrl: db.url,
        types,
        taskKey: 'jobs',
        stepId,
        input: { kind: 'unit-jobs2', jobs: ['c', 'd'] },
      });
      taken.push(run.output.job);
      expect(run.observationsOf(task).map((o) => o.fields.by)).toEqual(run.output.job ? [stepId] : []);
    }
    expect(taken).toEqual(['c', 'd', null]);
    const outsider = await runAgentStep(worker, {
      databaseUrl: db.url,
      types,
      taskKey: 'jobs-outsider',
      stepId: 'y',
      input: { kind: 'unit-jobs2', jobs: ['c', 'd', 'e'] },
    });
    // It registered e (new, its own) and gets that, never c or d.
    expect(outsider.output.job).toBe('e');
    const { rows } = await db.pool.query(
      "select count(*)::int as n from cairn.claims where resource like 'unit-jobs%' and released_at is null and expires_at > now()",
    );
    // Every claim was released when its step ended.
    expect(rows[0].n).toBe(0);
  });

  it('a misspelt field or a wrong value type is a compile error (checked by tsc on this file)', () => {
    const check = defineAgent({
      role: 'checker',
      async handle(ctx) {
        // @ts-expect-error -- `headquarter` is not a field of company.profile
        ctx.append(companyProfile, 'x', { headquarter: 'Berlin' });
        // @ts-expect-error -- employees is a number
        ctx.append(companyProfile, 'x', { employees: 'many' });
        const state = await ctx.memory.entity(companyProfile, 'x');
        // @ts-expect-error -- reads are typed too: no such field
        void state.fields.headquarter;
        return null;
      },
    });
    expect(check.role).toBe('checker');
  });
});
