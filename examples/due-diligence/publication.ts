/**
 * The agreement in the due-diligence example (only in `dueDiligenceTask(…, { agreement: true })`,
 * as `cairn demo` runs it): the analyst and the writer must both approve publishing the report.
 * The analyst proposes and votes as it decides; the writer votes when it has written the
 * report and waits for the decision (immediate, as it is the last voter). Both votes and the
 * decision are observations of `agreement/<task key>/publish`.
 */
import type { AgentContext } from '../../src/agent';
import type { AgreementOutcome } from '../../src/shared/agreement';

export const PUBLISH_AGREEMENT = 'publish';
export const PUBLISH_VOTERS = ['analyst', 'writer'];

type Risk = 'low' | 'medium' | 'high';

/** The analyst's part: propose publishing (idempotent on retry) and vote on it. */
export async function proposePublication(
  ctx: AgentContext<unknown>,
  company: string,
  risk: Risk,
): Promise<void> {
  await ctx.propose({
    agreementId: PUBLISH_AGREEMENT,
    proposal: { action: 'publish report', report: ctx.task.taskKey, company, risk },
    voters: PUBLISH_VOTERS,
    rule: 'all-of',
    deadlineMs: 10 * 60_000,
    subject: { entityType: 'company', entityId: company },
  });
  await ctx.vote(PUBLISH_AGREEMENT, risk !== 'high', `risk assessed as ${risk}`);
}

/** The writer's part: vote, then wait for the decision. */
export async function agreeToPublish(
  ctx: AgentContext<unknown>,
  risk: Risk | undefined,
): Promise<AgreementOutcome> {
  const ok = risk !== undefined && risk !== 'high';
  await ctx.vote(
    PUBLISH_AGREEMENT,
    ok,
    ok ? 'report written; nothing blocks publication' : `not publishable with risk ${risk ?? 'unknown'}`,
  );
  return ctx.awaitAgreement(PUBLISH_AGREEMENT, { timeoutMs: 60_000 });
}
