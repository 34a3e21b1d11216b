/**
 * The agreement workflow: one per proposal. Votes arrive by the `vote` update (one per voter
 * role: a voter that crashes and votes again is counted once, its first vote standing); the
 * workflow decides as soon as the rule is met or can no longer be met, or times out at the
 * deadline (a workflow timer), records the decision in the log through an activity, and
 * returns the outcome — which releases every agent waiting on it at the same moment.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  agreementInputSchema,
  agreementQuery,
  evaluateAgreement,
  formatRule,
  subjectText,
  voteSchema,
  voteUpdate,
  type AgreementActivities,
  type AgreementInput,
  type AgreementOutcome,
  type AgreementStatus,
  type AgreementView,
  type CountedVote,
  type Vote,
  type VoteReceipt,
} from '../src/shared/agreement';
import { FAILURE_TYPES } from '../src/shared/errors';

export async function agreementWorkflow(input: AgreementInput): Promise<AgreementOutcome> {
  const parsed = agreementInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.AgreementRefused,
      nonRetryable: true,
      message: `invalid agreement: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    });
  }
  const a = parsed.data;
  const deadlineAt = new Date(Date.now() + a.deadlineMs).toISOString();
  const votes: CountedVote[] = [];
  let timedOut = false;

  // Decided means no vote changes anything any more; checked in the handler too, so a vote that
  // arrives in the same activation as the deciding one is not counted after the fact.
  const status = (): AgreementStatus => {
    const s = evaluateAgreement(a.rule, a.voters, votes);
    return s === 'open' && timedOut ? 'timed-out' : s;
  };
  const view = (): AgreementView => ({
    agreementId: a.agreementId,
    taskKey: a.taskKey,
    status: status(),
    rule: a.rule,
    voters: a.voters,
    votes: [...votes],
    deadlineAt,
  });
  const publish = () => {
    const lines = a.voters.map((v) => {
      const vote = votes.find((x) => x.voter === v);
      return `| ${v} | ${vote ? (vote.approve ? 'approve' : 'reject') : '…'} | ${vote?.reason.replace(/\|/g, '/').slice(0, 80) ?? ''} |`;
    });
    setCurrentDetails(
      [
        `**${status()}** — ${formatRule(a.rule)}, deadline ${deadlineAt}`,
        '',
        '| voter | vote | reason |',
        '|---|---|---|',
        ...lines,
      ].join('\n'),
    );
  };

  setHandler(agreementQuery, view);
  setHandler(
    voteUpdate,
    (vote: Vote): VoteReceipt => {
      const existing = votes.find((v) => v.voter === vote.voter);
      if (existing) return { counted: true, disposition: 'duplicate', status: status(), vote: existing };
      if (status() !== 'open') return { counted: false, disposition: 'closed', status: status() };
      const counted: CountedVote = { ...vote, at: new Date().toISOString() };
      votes.push(counted);
      publish();
      return { counted: true, disposition: 'counted', status: status(), vote: counted };
    },
    {
      // Synchronous, so a refusal really rejects the update (an async validator's would not).
      validator: (vote: Vote) => {
        const ok = voteSchema.safeParse(vote);
        if (!ok.success) {
          const issue = ok.error.issues[0];
          throw ApplicationFailure.create({
            type: FAILURE_TYPES.AgreementRefused,
            nonRetryable: true,
            message: `invalid vote: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
          });
        }
        if (!a.voters.includes(vote.voter)) {
          throw ApplicationFailure.create({
            type: FAILURE_TYPES.AgreementRefused,
            nonRetryable: true,
            message: `${vote.voter} is not a voter of agreement ${a.agreementId} (voters: ${a.voters.join(', ')})`,
            details: [{ voter: vote.voter, voters: a.voters }],
          });
        }
      },
    },
  );

  publish();
  const decided = await condition(() => status() !== 'open', a.deadlineMs);
  if (!decided) timedOut = true;
  const final = status() as AgreementOutcome['status'];
  const decidedAt = new Date().toISOString();
  publish();

  const { recordAgreementDecision } = proxyActivities<AgreementActivities>({
    taskQueue: workflowInfo().taskQueue,
    startToCloseTimeout: '1 minute',
    retry: { maximumAttempts: 20, initialInterval: '500ms' },
    summary: `cairn: record agreement ${a.agreementId}: ${final}`,
  });
  const counted = [...votes];
  const { observationId } = await recordAgreementDecision({
    agreementId: a.agreementId,
    taskKey: a.taskKey,
    status: final,
    rule: a.rule,
    voters: a.voters,
    votes: counted,
    subject: a.subject ?? null,
    proposal: a.proposal,
    decidedAt,
  });
  // Late votes get their answer ("closed") before the run ends.
  await condition(allHandlersFinished);
  return {
    agreementId: a.agreementId,
    taskKey: a.taskKey,
    status: final,
    rule: a.rule,
    voters: a.voters,
    votes: counted,
    approvals: counted.filter((v) => v.approve).map((v) => v.voter),
    rejections: counted.filter((v) => !v.approve).map((v) => v.voter),
    missing: a.voters.filter((v) => !counted.some((c) => c.voter === v)),
    subject: subjectText(a.subject),
    decisionObservationId: observationId,
    decidedAt,
  };
}
