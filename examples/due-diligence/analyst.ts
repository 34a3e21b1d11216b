/**
 * The analyst is model-driven: inside its agent step, a model gets Cairn's tools
 * (`cairnTools(ctx)` from the /ai entry) through the AI SDK's `generateText`, reads the company,
 * records its risk decision and tells the writer. The tools are bound to the step: the read is
 * the step's read set, the decision is buffered into the step's one transaction (refused there
 * if what it read moved on), and each observation records the model call in its `source`
 * (provider, model id, token usage, prompt hash).
 *
 * By default the model is scripted (the AI SDK's mock model, through the real tool-calling
 * path): deterministic, no network, and its first call times out like a flaky endpoint, so
 * Temporal retries the step. `cairn demo --llm` passes a real model instead.
 */
import { generateText, stepCountIs, type LanguageModel } from 'ai';
import { z } from 'zod';
import { defineAgent, type AgentContext } from '../../src/agent';
import { cairnModel, cairnTools, scriptedModel, type SeenToolResult } from '../../src/ai';
import { proposePublication } from './publication';
import { companyScopes, DILIGENCE_SCOPE } from './scopes';

const risk = z.enum(['low', 'medium', 'high']);
type Risk = z.output<typeof risk>;

/** What a model is asked for: one step's assessment. */
export interface AnalystCall {
  company: string;
  attempt: number;
  findings: number;
}

/** Picks the model of one step attempt (a scripted one replays its script from the start). */
export type AnalystModel = (call: AnalystCall) => Exclude<LanguageModel, string>;

export const ANALYST_INSTRUCTIONS = [
  'You are the analyst of a vendor due-diligence team. Cairn is the team memory; use its tools.',
  '1. Read the company with read_entity (entityType "company").',
  '2. Decide its risk: "medium" if any field lists contested values (the sources disagree), "high" if the state shows a serious problem, else "low".',
  `3. Record it with append_observations: one item { entityType: "company", entityId, type: "company.risk", kind: "decision", scope: "${DILIGENCE_SCOPE}", fields: { risk, rationale }, derivedFrom: [the observationId of each field you relied on] }.`,
  '4. Tell the writer with send_context { toRole: "writer", type: "decision", content: { company, risk, findings } }.',
  'If a tool returns an error, do what its "next" says. End with one sentence stating the risk.',
].join('\n');

export function analystPrompt(company: string, findings: readonly unknown[]): string {
  return `Assess vendor ${company}. The researchers sent ${findings.length} findings: ${JSON.stringify(findings)}`;
}

/**
 * The scripted analyst: what a model following ANALYST_INSTRUCTIONS does, decided from what
 * read_entity actually returned. Attempt 1's first call fails (a model endpoint timing out).
 */
export const scriptedAnalyst: AnalystModel = ({ company, attempt, findings }) =>
  scriptedModel(
    attempt === 1
      ? [{ fail: 'model endpoint timed out (simulated; Temporal retries the step)' }]
      : [
          { toolCalls: [{ name: 'read_entity', input: { entityType: 'company', entityId: company } }] },
          (seen) => {
            const state = lastRead(seen);
            const hq = state?.fields.headquarters;
            const contested = (hq?.contested?.length ?? 0) > 0;
            const decided: Risk = contested ? 'medium' : 'low';
            const derivedFrom = [
              ...new Set(Object.values(state?.fields ?? {}).map((f) => f.by.observationId)),
            ];
            return {
              toolCalls: [
                {
                  name: 'append_observations',
                  input: {
                    items: [
                      {
                        entityType: 'company',
                        entityId: company,
                        type: 'company.risk',
                        kind: 'decision',
                        scope: DILIGENCE_SCOPE,
                        fields: {
                          risk: decided,
                          rationale: `${findings} findings received; headquarters ${contested ? 'contested' : 'agreed'} (now ${JSON.stringify(hq?.value)})`,
                        },
                        derivedFrom,
                      },
                    ],
                  },
                },
                {
                  name: 'send_context',
                  input: {
                    toRole: 'writer',
                    type: 'decision',
                    content: { company, risk: decided, findings },
                  },
                },
              ],
            };
          },
          (seen) => {
            const refused = seen.find((r) => r.isError);
            return {
              text: refused
                ? `Could not record the decision: ${JSON.stringify(refused.output)}`
                : `Risk recorded for ${company}.`,
            };
          },
        ],
    { provider: 'scripted', modelId: 'due-diligence-analyst' },
  );

/** read_entity's compact answer, as far as the script looks at it (src/tools/compact.ts). */
const readAnswer = z.object({
  fields: z.record(
    z.string(),
    z.object({
      value: z.unknown().optional(),
      by: z.object({ observationId: z.string() }),
      contested: z.array(z.unknown()).optional(),
    }),
  ),
});

function lastRead(seen: readonly SeenToolResult[]) {
  const read = seen.filter((r) => r.toolName === 'read_entity' && !r.isError).at(-1);
  return read ? readAnswer.safeParse(read.output).data : undefined;
}

const appendInput = z.object({
  items: z.array(z.object({ type: z.string(), fields: z.object({ risk: risk.optional() }).loose() })),
});
const sendInput = z.object({ toRole: z.string(), type: z.string() });

export function createAnalyst(opts: { model?: AnalystModel } = {}) {
  const modelFor = opts.model ?? scriptedAnalyst;
  return defineAgent({
    role: 'analyst',
    description: 'A model reads the reduced company state through Cairn tools and decides on risk.',
    scopes: companyScopes,
    input: z.object({ company: z.string(), agreement: z.boolean().optional() }),
    output: z.object({ risk, model: z.string() }),
    async handle(ctx) {
      const { company, agreement } = ctx.step.input;
      const findings = ctx.inbox.map((m) => m.content);
      const model = cairnModel(modelFor({ company, attempt: ctx.step.attempt, findings: findings.length }));
      const generic = ctx as AgentContext<unknown>;
      const result = await generateText({
        model,
        tools: cairnTools(generic, { model, types: ctx.types }),
        system: ANALYST_INSTRUCTIONS,
        prompt: analystPrompt(company, findings),
        stopWhen: stepCountIs(6),
        maxRetries: 1,
      });
      const calls = result.steps.flatMap((s) => s.toolResults);
      // The decision the model's tool calls buffered (a refused call is not in toolResults).
      const decided = calls
        .filter((c) => c.toolName === 'append_observations')
        .flatMap((c) => appendInput.safeParse(c.input).data?.items ?? [])
        .find((item) => item.type === 'company.risk')?.fields.risk;
      if (decided === undefined)
        throw new Error(
          `the model recorded no company.risk decision (it said: ${result.text.slice(0, 200)})`,
        );
      const told = calls.some((c) => {
        const s = c.toolName === 'send_context' ? sendInput.safeParse(c.input).data : undefined;
        return s?.toRole === 'writer' && s.type === 'decision';
      });
      if (!told) ctx.send('writer', 'decision', { company, risk: decided, findings: findings.length });
      ctx.setMemory('risk', decided, ctx.memory.working.risk?.version ?? 0);
      if (agreement) await proposePublication(ctx, company, decided);
      return { risk: decided, model: `${model.provider}/${model.modelId}` };
    },
  });
}
