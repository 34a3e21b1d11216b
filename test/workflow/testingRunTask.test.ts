/**
 * The /testing entry's runTask, used as a user would: a whole task of two typed agents on the
 * dev server and Postgres, with a worker and a client it starts and stops itself.
 */
import { inject } from 'vitest';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { runTask } from '../../src/testing';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

const finding = defineObservationType({
  name: 'review.finding',
  version: 1,
  entity: 'pr',
  fields: {
    severity: z.number().int().min(1).max(3),
    note: z.string(),
    reviewers: z.array(z.string()).optional(),
  },
  policies: { severity: 'max', reviewers: 'set-union' },
});
const types = new ObservationTypeRegistry([finding]);

const reviewer = defineAgent({
  role: 'reviewer',
  input: z.object({ pr: z.string(), severity: z.number().int() }),
  async handle(ctx) {
    const { pr, severity } = ctx.step.input;
    ctx.append(finding, pr, { severity, note: `${ctx.step.id} says ${severity}`, reviewers: [ctx.step.id] });
    return { severity };
  },
});
const judge = defineAgent({
  role: 'judge',
  input: z.object({ pr: z.string() }),
  output: z.object({ verdict: z.enum(['merge', 'block']), reviewers: z.array(z.string()) }),
  async handle(ctx) {
    const state = await ctx.memory.entity(finding, ctx.step.input.pr);
    const verdict = (state.fields.severity?.value ?? 0) >= 3 ? 'block' : 'merge';
    return { verdict, reviewers: state.fields.reviewers?.value ?? [] };
  },
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

it('runs two reviewers in parallel and a judge that reads their reduced findings', async () => {
  const env = inject('cairnTest');
  const result = await runTask({
    agents: [reviewer, judge],
    types,
    databaseUrl: db.url,
    temporalAddress: env.temporalAddress,
    namespace: env.namespace,
    // Optional: the test setup bundled the workflows once already.
    workflowBundle: { codePath: env.workflowBundlePath },
    task: {
      taskKey: 'testing-run-task',
      goal: 'review PR 7',
      steps: [
        { id: 'alice', role: 'reviewer', title: 'review', input: { pr: '7', severity: 1 } },
        { id: 'bob', role: 'reviewer', title: 'review', input: { pr: '7', severity: 3 } },
        { id: 'decide', role: 'judge', title: 'judge', input: { pr: '7' }, dependsOn: ['alice', 'bob'] },
      ],
    },
  });
  expect(result.status).toBe('completed');
  const decide = result.steps.find((s) => s.id === 'decide');
  // severity is 'max' (3 beats 1 whatever the commit order); reviewers a set-union of both.
  expect(decide?.output).toMatchObject({ verdict: 'block' });
  expect((decide?.output as { reviewers: string[] }).reviewers.sort()).toEqual(['alice', 'bob']);
  expect(result.observations).toBe(2);
});
