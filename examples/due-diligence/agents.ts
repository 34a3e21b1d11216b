/**
 * A small due-diligence team: two researchers gather facts in parallel (and disagree), an
 * analyst — a model with Cairn's tools (analyst.ts) — reads the reduced state and decides, a
 * writer reports. The analyst's first model call times out like a flaky endpoint would;
 * Temporal retries the step and nothing is written twice. No LLM is needed: by default the
 * analyst's model is scripted (the AI SDK's mock model), so the demo is repeatable;
 * `createDueDiligenceAgents({ analystModel })` gives it a real one.
 *
 * Scopes (scopes.ts): company entities live in the team scope `team:diligence`; the report is
 * the task's own.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAgent, type AgentContext, type AgentDefinition } from '../../src/agent';
import type { TaskInput } from '../../src/shared/task';
import { createAnalyst, type AnalystModel } from './analyst';
import { agreeToPublish } from './publication';
import { companyScopes, DILIGENCE_SCOPE } from './scopes';
import { companyProfile, complianceReview, reportSummary, riskAssessment } from './types';

export { DILIGENCE_SCOPE };

const SOURCES: Record<string, { headquarters: string; employees: number; url: string }> = {
  registry: { headquarters: 'Berlin', employees: 120, url: 'https://registry.example/acme' },
  press: { headquarters: 'Munich', employees: 150, url: 'https://news.example/acme-expands' },
  filings: { headquarters: 'Berlin', employees: 135, url: 'https://filings.example/acme-2024' },
};

/** The sources researchers can race for (`sourceRaceTask`). */
export const SOURCE_IDS = Object.keys(SOURCES);

const researcherInput = z.object({
  company: z.string(),
  source: z.string().optional(),
  /** Race mode: take the next free source of this work kind… */
  workKind: z.string().optional(),
  /** …registering these as its work items first (idempotent: every racer may). */
  sources: z.array(z.string()).optional(),
});

export const researcher = defineAgent({
  role: 'researcher',
  description: 'Gathers company facts from one source.',
  scopes: companyScopes,
  input: researcherInput,
  async handle(ctx) {
    const { company, source, workKind, sources } = ctx.step.input;
    if (workKind !== undefined) return scout(ctx, company, workKind, sources ?? []);
    if (source === undefined) throw new Error('a researcher step needs a source or a workKind');
    const found = SOURCES[source];
    if (!found) throw new Error(`unknown source ${source}`);
    ctx.append(
      companyProfile,
      company,
      {
        name: 'ACME GmbH',
        headquarters: found.headquarters,
        employees: found.employees,
        sources: [found.url],
      },
      { scope: DILIGENCE_SCOPE, source: { kind: 'url', ref: found.url } },
    );
    ctx.send('analyst', 'finding', { source, headquarters: found.headquarters, employees: found.employees });
    return { source, headquarters: found.headquarters };
  },
});

/**
 * Race mode (`sourceRaceTask`): several researchers start at once and each takes the next source
 * nobody holds or has finished, with ctx.nextFree over the kind's registered work items — one
 * winner per source. The finding is appended under the claim's fence and the item completed in
 * the same transaction, so a researcher whose lease lapsed writes nothing.
 */
async function scout(
  ctx: AgentContext<z.output<typeof researcherInput>>,
  company: string,
  workKind: string,
  sources: string[],
) {
  // The agents register the work themselves: the orchestrator needs no database pool.
  await ctx.registerWorkItems(workKind, sources);
  const grant = await ctx.nextFree(workKind, { workItems: true }, { ttlMs: 10_000 });
  if (!grant) return { source: null, token: null };
  const found = SOURCES[grant.id];
  if (!found) throw new Error(`unknown source ${grant.id}`);
  await sleep(300, undefined, { signal: ctx.signal }); // fetching the source (simulated), so the racers overlap
  ctx.append(
    companyProfile,
    company,
    { headquarters: found.headquarters, employees: found.employees, sources: [found.url] },
    { scope: DILIGENCE_SCOPE, source: { kind: 'url', ref: found.url }, fence: grant.resource },
  );
  ctx.completeWorkItem(grant.resource);
  return { source: grant.id, token: grant.token };
}

/** The model-driven analyst (analyst.ts), with the scripted model unless told otherwise. */
export const analyst = createAnalyst();

/**
 * Decides how deep the compliance review goes, from the headcount and the analyst's risk (only
 * in `dueDiligenceTask(…, { review: true })`, as `cairn demo` runs it). Its first attempt is a
 * slow model call (simulated): it ends only once the analyst has decided meanwhile, so what it
 * read is stale and its decision is refused (StaleReadError); Temporal retries the step, which
 * re-reads and decides on the analyst's risk. See docs/read-receipts.md.
 */
export const compliance = defineAgent({
  role: 'compliance',
  description: 'Decides the depth of the compliance review from headcount and risk.',
  scopes: companyScopes,
  input: z.object({ company: z.string() }),
  async handle(ctx) {
    const { company } = ctx.step.input;
    // Fields of two types of the same entity: the profile's headcount, the analyst's risk.
    const state = await ctx.memory.entity([companyProfile, riskAssessment], company);
    const employees = state.fields.employees;
    const risk = state.fields.risk?.value;
    if (ctx.step.attempt === 1)
      await ctx.memory.entity(companyProfile, company, { minVersion: state.version + 1, waitMs: 15_000 });
    const headcount = employees?.value ?? 0;
    const review = headcount > 100 || risk !== 'low' ? 'enhanced' : 'standard';
    ctx.append(
      complianceReview,
      company,
      { review, basis: `${headcount} employees, risk ${risk ?? 'not assessed yet'}` },
      {
        scope: DILIGENCE_SCOPE,
        kind: 'decision',
        derivedFrom: employees ? [employees.winner.observationId] : [],
      },
    );
    return { review };
  },
});

export const writer = defineAgent({
  role: 'writer',
  description: 'Writes the report from the analyst’s decision.',
  input: z.object({ company: z.string(), agreement: z.boolean().optional() }),
  async handle(ctx) {
    const decision = ctx.inbox.find((m) => m.type === 'decision');
    // Messages are JSON from another agent: parsed like any outside input.
    const content = decisionMessage.safeParse(decision?.content).data ?? {};
    const text = `Due diligence on ${content.company ?? '?'}: risk ${content.risk ?? 'unknown'}.`;
    ctx.append(reportSummary, ctx.task.taskKey, { text, risk: content.risk ?? 'high' });
    if (ctx.step.input.agreement) {
      const outcome = await agreeToPublish(ctx, content.risk);
      return { text, published: outcome.status === 'approved' };
    }
    return { text };
  },
});

const decisionMessage = z.object({
  company: z.string().optional(),
  risk: z.enum(['low', 'medium', 'high']).optional(),
});

export const dueDiligenceAgents: AgentDefinition[] = [researcher, analyst, compliance, writer];

/** The same team with the analyst asking `analystModel` (a real model: `cairn demo --llm`). */
export function createDueDiligenceAgents(opts: { analystModel?: AnalystModel } = {}): AgentDefinition[] {
  const model = opts.analystModel;
  return [researcher, model ? createAnalyst({ model }) : analyst, compliance, writer];
}

/**
 * `review`: a compliance step decides alongside the analyst (and is refused once as stale).
 * `agreement`: the analyst and the writer must agree on publishing the report (publication.ts).
 */
export function dueDiligenceTask(
  taskKey: string,
  company = 'acme',
  opts: { review?: boolean; agreement?: boolean } = {},
): TaskInput {
  const review = opts.review === true;
  const agree = opts.agreement === true ? { agreement: true } : {};
  return {
    taskKey,
    goal: `Assess vendor ${company} before signing`,
    steps: [
      {
        id: 'registry',
        role: 'researcher',
        title: 'gather registry facts',
        input: { company, source: 'registry' },
      },
      { id: 'press', role: 'researcher', title: 'gather press facts', input: { company, source: 'press' } },
      {
        id: 'assess',
        role: 'analyst',
        title: 'assess risk',
        input: { company, ...agree },
        dependsOn: ['registry', 'press'],
      },
      ...(review
        ? [
            {
              id: 'review',
              role: 'compliance',
              title: 'decide review depth',
              input: { company },
              dependsOn: ['registry', 'press'],
            },
          ]
        : []),
      {
        id: 'report',
        role: 'writer',
        title: 'write report',
        input: { company, ...agree },
        dependsOn: review ? ['assess', 'review'] : ['assess'],
      },
    ],
    rolePolicies: {
      analyst: { maxAttempts: 3, initialRetryMs: 200 },
      ...(review ? { compliance: { maxAttempts: 3, initialRetryMs: 200 } } : {}),
    },
    // Each role may write the task's own scope and the team's (and read those plus global).
    scopes: ['task', DILIGENCE_SCOPE],
  };
}

/** One researcher step reading one more source: a fact that lands while others decide. */
export function lateSourceTask(taskKey: string, company = 'acme', source = 'filings'): TaskInput {
  return {
    taskKey,
    goal: `Add the ${source} facts on ${company}`,
    steps: [{ id: source, role: 'researcher', title: `gather ${source} facts`, input: { company, source } }],
    scopes: ['task', DILIGENCE_SCOPE],
  };
}

/** The work kind a race task's sources are registered under (`registerWorkItems`). */
export function sourceWorkKind(taskKey: string): string {
  return `sources.${taskKey.replace(/[^A-Za-z0-9._:-]/g, '_')}`;
}

/**
 * `racers` researcher steps at once, each taking the next free source of `sourceWorkKind(taskKey)`
 * (each registers SOURCE_IDS there first, idempotently). With more racers than sources, the extra ones get none.
 */
export function sourceRaceTask(taskKey: string, company = 'acme', racers = 4): TaskInput {
  const workKind = sourceWorkKind(taskKey);
  return {
    taskKey,
    goal: `Gather facts on ${company}: ${racers} researchers, one source each`,
    steps: Array.from({ length: racers }, (_, i) => ({
      id: `scout-${i + 1}`,
      role: 'researcher',
      title: 'take the next free source',
      input: { company, workKind, sources: SOURCE_IDS },
    })),
    scopes: ['task', DILIGENCE_SCOPE],
  };
}
