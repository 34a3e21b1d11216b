/**
 * Agreements: "these agents must agree before any proceeds". One agreement workflow per
 * proposal collects votes from the named voter roles (an update, deduplicated by voter),
 * decides when its rule is met or can no longer be met, or times out at its deadline, then
 * records the decision in the log. Shared by the workflow, the activities and the client
 * (sandbox-safe: zod and Temporal definitions only).
 *
 * Glossary
 * - agreement id: the caller's name for one proposal, unique within its task; the workflow id
 *   and the log entity (`agreement/<task key>/<agreement id>`) derive from it.
 * - rule: `all-of` (every voter approves; one rejection rejects) or `{ quorum: n }` (n approvals
 *   approve; rejected once n approvals can no longer be reached).
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { CairnError, FAILURE_TYPES, markErrorClass } from './errors';
import { entityRefSchema, formatEntityRef, type EntityRef, type Json } from './observation';
import { jsonSchema, roleSchema, taskKeySchema } from './task';

export const agreementIdSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'agreement id must be lower-case letters, digits, . _ - (max 100)');

export const agreementRuleSchema = z.union([
  z.literal('all-of'),
  z.strictObject({ quorum: z.number().int().min(1).max(50) }),
]);
export type AgreementRule = z.infer<typeof agreementRuleSchema>;

/** Longest deadline an agreement may have (its timer lives in workflow history). */
export const MAX_AGREEMENT_DEADLINE_MS = 30 * 24 * 3600_000;
/** Proposals travel in workflow history: keep them small (claim-check anything bigger). */
export const MAX_PROPOSAL_CHARS = 16 * 1024;

export const agreementInputSchema = z
  .strictObject({
    agreementId: agreementIdSchema,
    taskKey: taskKeySchema,
    proposal: jsonSchema.refine(
      (p) => JSON.stringify(p).length <= MAX_PROPOSAL_CHARS,
      `proposal must be at most ${MAX_PROPOSAL_CHARS} characters of JSON`,
    ),
    voters: z
      .array(roleSchema)
      .min(1)
      .max(50)
      .refine((v) => new Set(v).size === v.length, 'voters must be distinct roles'),
    rule: agreementRuleSchema.default('all-of'),
    deadlineMs: z.number().int().min(1).max(MAX_AGREEMENT_DEADLINE_MS),
    /** The entity the decision is about, recorded in the decision. */
    subject: entityRefSchema.optional(),
    /** The role that proposed it. */
    proposedBy: z.string().max(63).optional(),
  })
  .refine((a) => a.rule === 'all-of' || a.rule.quorum <= a.voters.length, {
    message: 'quorum cannot exceed the number of voters',
    path: ['rule'],
  });
export type AgreementInput = z.input<typeof agreementInputSchema>;
export type ParsedAgreementInput = z.output<typeof agreementInputSchema>;

/**
 * z.guid() with zod's own GUID pattern as a copy made by this module: zod's constant regexes are
 * frozen when zod is preloaded (src/workflowBundle.ts), and zod resets a pattern's lastIndex
 * before each test. zod reads `pattern` from the params at run time; its types leave it out.
 */
const GUID_PATTERN = {
  pattern: /^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$/,
} as Parameters<typeof z.guid>[0];

export const voteSchema = z.strictObject({
  voter: roleSchema,
  approve: z.boolean(),
  reason: z.string().max(4000),
  /** The `agreement.vote` observation that records this vote. */
  voteObservationId: z.guid(GUID_PATTERN),
});
export type Vote = z.infer<typeof voteSchema>;

export interface CountedVote extends Vote {
  /** Workflow time the vote was counted. */
  at: string;
}

export type AgreementStatus = 'open' | 'approved' | 'rejected' | 'timed-out';

export interface AgreementView {
  agreementId: string;
  taskKey: string;
  status: AgreementStatus;
  rule: AgreementRule;
  voters: string[];
  votes: CountedVote[];
  deadlineAt: string;
}

export interface VoteReceipt {
  /** True when this voter's vote is among the counted ones (now or by an earlier attempt). */
  counted: boolean;
  /** `counted`: newly counted; `duplicate`: this voter had voted already (its first vote stands); `closed`: decided before it arrived. */
  disposition: 'counted' | 'duplicate' | 'closed';
  status: AgreementStatus;
  /** The vote that stands for this voter, if any. */
  vote?: CountedVote;
}

export interface AgreementOutcome {
  agreementId: string;
  taskKey: string;
  status: Exclude<AgreementStatus, 'open'>;
  rule: AgreementRule;
  voters: string[];
  votes: CountedVote[];
  approvals: string[];
  rejections: string[];
  /** Voters who had not voted when it was decided. */
  missing: string[];
  subject: string | null;
  decisionObservationId: string;
  decidedAt: string;
}

/** A vote from a voter role; deduplicated by voter. The validator refuses non-voters. */
export const voteUpdate = defineUpdate<VoteReceipt, [Vote]>('vote');
export const agreementQuery = defineQuery<AgreementView>('agreement');

export const AGREEMENT_WORKFLOW_ID_PREFIX = 'cairn-agreement-';

/** `<task key>/<agreement id>`: the agreement's log entity id (agreement ids cannot hold '/'). */
export function agreementKey(taskKey: string, agreementId: string): string {
  return `${taskKeySchema.parse(taskKey)}/${agreementIdSchema.parse(agreementId)}`;
}

export function agreementWorkflowId(taskKey: string, agreementId: string): string {
  return AGREEMENT_WORKFLOW_ID_PREFIX + agreementKey(taskKey, agreementId);
}

export function agreementEntity(taskKey: string, agreementId: string): EntityRef {
  return { entityType: 'agreement', entityId: agreementKey(taskKey, agreementId) };
}

/** The idempotency key of a voter's vote: one per voter and agreement, whatever the attempt. */
export function voteIdempotencyKey(taskKey: string, agreementId: string, voter: string): string {
  return `agreement:${agreementKey(taskKey, agreementId)}:vote:${voter}`;
}

export function decisionIdempotencyKey(taskKey: string, agreementId: string): string {
  return `agreement:${agreementKey(taskKey, agreementId)}:decision`;
}

export function formatRule(rule: AgreementRule): string {
  return rule === 'all-of' ? 'all-of' : `quorum ${rule.quorum}`;
}

/**
 * Where the votes leave the agreement (pure; the workflow calls it after every vote). Decided
 * as soon as the outcome cannot change any more: all-of rejects on the first rejection.
 */
export function evaluateAgreement(
  rule: AgreementRule,
  voters: readonly string[],
  votes: readonly Pick<Vote, 'voter' | 'approve'>[],
): AgreementStatus {
  const counted = votes.filter((v) => voters.includes(v.voter));
  const approvals = counted.filter((v) => v.approve).length;
  const rejections = counted.length - approvals;
  const pending = voters.length - counted.length;
  if (rule === 'all-of') {
    if (rejections > 0) return 'rejected';
    return approvals === voters.length ? 'approved' : 'open';
  }
  if (approvals >= rule.quorum) return 'approved';
  return approvals + pending < rule.quorum ? 'rejected' : 'open';
}

/** What the workflow's activity records; the votes are the decision's derivedFrom. */
export interface AgreementDecisionInput {
  agreementId: string;
  taskKey: string;
  status: AgreementOutcome['status'];
  rule: AgreementRule;
  voters: string[];
  votes: CountedVote[];
  subject: EntityRef | null;
  proposal: Json;
  decidedAt: string;
}

export type { AgreementActivities } from './activityTypes';

export function subjectText(subject: EntityRef | null | undefined): string | null {
  return subject ? formatEntityRef(subject) : null;
}

/** A vote from a role that is not a voter of the agreement (non-retryable). */
export class AgreementRefusedError extends CairnError {
  override readonly name = 'AgreementRefusedError';
  readonly code = FAILURE_TYPES.AgreementRefused;
  constructor(
    readonly agreement: string,
    readonly problem: string,
  ) {
    super(`agreement ${agreement}: ${problem}`);
  }
  details() {
    return { agreement: this.agreement, problem: this.problem };
  }
}

/** The agreement has not been proposed (yet): retryable, the proposer may still be on its way. */
export class AgreementNotFoundError extends CairnError {
  override readonly name = 'AgreementNotFoundError';
  readonly code = FAILURE_TYPES.AgreementNotFound;
  constructor(
    readonly agreement: string,
    readonly waitedMs: number,
  ) {
    super(`agreement ${agreement} has not been proposed (waited ${waitedMs} ms)`);
  }
  details() {
    return { agreement: this.agreement, waitedMs: this.waitedMs };
  }
}

markErrorClass(AgreementRefusedError, 'AgreementRefusedError');
markErrorClass(AgreementNotFoundError, 'AgreementNotFoundError');
