/** Agents for the coordination workflow tests: a proposer, voters, and an outside-call maker. */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAgent, type AgentDefinition } from '../../src/agent';
import { agreementRuleSchema } from '../../src/shared/agreement';

/** Proposes the agreement described by its input. */
export const proposer = defineAgent({
  role: 'proposer',
  input: z.object({
    agreementId: z.string(),
    voters: z.array(z.string()),
    rule: agreementRuleSchema.optional(),
    deadlineMs: z.number(),
    awaitIt: z.boolean().optional(),
  }),
  async handle(ctx) {
    const input = ctx.step.input;
    const started = await ctx.propose({
      agreementId: input.agreementId,
      proposal: { publish: true },
      voters: input.voters,
      ...(input.rule ? { rule: input.rule } : {}),
      deadlineMs: input.deadlineMs,
      subject: { entityType: 'report', entityId: ctx.task.taskKey },
    });
    // Proposing again (as a retry would) finds the same agreement.
    const again = await ctx.propose({
      agreementId: input.agreementId,
      proposal: { publish: true },
      voters: input.voters,
      deadlineMs: input.deadlineMs,
    });
    if (again.workflowId !== started.workflowId)
      throw new Error('a second proposal started a second agreement');
    if (input.awaitIt) return await ctx.awaitAgreement(input.agreementId);
    return started;
  },
});

const voterInput = z.object({
  agreementId: z.string(),
  approve: z.boolean(),
  reason: z.string().optional(),
  /** Wait until this file exists before voting (the test creates it: an order, not a guess). */
  untilFile: z.string().optional(),
  /** Wait this long before voting (after untilFile). */
  delayMs: z.number().optional(),
  /** Fail the first attempt right after voting (a crash between vote and completion). */
  crashAfterVote: z.boolean().optional(),
  /** Wait for the decision and return it. */
  awaitIt: z.boolean().optional(),
});
export type VoterInput = z.input<typeof voterInput>;

function voter(role: string): AgentDefinition {
  return defineAgent({
    role,
    input: voterInput,
    async handle(ctx) {
      const input = ctx.step.input;
      if (input.untilFile)
        while (!existsSync(input.untilFile)) await sleep(50, undefined, { signal: ctx.signal });
      if (input.delayMs) await sleep(input.delayMs);
      // A retry may "change its mind": the first vote written stands.
      const reason =
        ctx.step.attempt === 1
          ? (input.reason ?? `${role} says ${input.approve ? 'yes' : 'no'}`)
          : 'second thoughts';
      const approve = ctx.step.attempt === 1 ? input.approve : !input.approve;
      const receipt = await ctx.vote(input.agreementId, approve, reason);
      if (input.crashAfterVote && ctx.step.attempt === 1) throw new Error('crashed after voting (injected)');
      if (!input.awaitIt) return { receipt };
      const outcome = await ctx.awaitAgreement(input.agreementId);
      return { receipt, outcome, releasedAt: Date.now() };
    },
  });
}

export const alpha = voter('alpha');
export const beta = voter('beta');
export const gamma = voter('gamma');

/** Counts its outside calls in `calls` (per key); `once` makes a retried step call only once. */
export const outsideCalls = new Map<string, number>();
export const charger = defineAgent({
  role: 'charger',
  input: z.object({
    key: z.string(),
    failFirstAttempt: z.boolean().optional(),
    global: z.boolean().optional(),
  }),
  async handle(ctx) {
    const { key, failFirstAttempt, global } = ctx.step.input;
    const result = await ctx.once(
      key,
      async () => {
        const n = (outsideCalls.get(key) ?? 0) + 1;
        outsideCalls.set(key, n);
        await sleep(200);
        return { chargeId: `ch-${key}-${n}` };
      },
      global ? { global: true } : undefined,
    );
    if (failFirstAttempt && ctx.step.attempt === 1)
      throw new Error('failed after the outside call (injected)');
    return result;
  },
});

export const coordinationAgents: AgentDefinition[] = [proposer, alpha, beta, gamma, charger];
