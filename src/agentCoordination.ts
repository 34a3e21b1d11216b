/**
 * What agents get for coordination and long-term memory, on top of their step's memory view
 * (the implementation is activities/coordination.ts). Types only.
 */
import type { AgreementOutcome, AgreementRule, VoteReceipt } from './shared/agreement';
import type { EntityRef, Json } from './shared/observation';
import type { EpisodeQuery, FoundEpisode } from './shared/agentTypes';

export interface ProposalSpec {
  /** Unique within the task: `publish`, `merge-pr-12`… */
  agreementId: string;
  /** What is being agreed on (small JSON; it travels in workflow history). */
  proposal: Json;
  /** Roles that vote; one vote per role. */
  voters: string[];
  /** Default `all-of`. */
  rule?: AgreementRule;
  /** Undecided after this long (from the proposal), it times out. */
  deadlineMs: number;
  /** The entity the decision is about (named in the decision). */
  subject?: EntityRef;
}

export interface AgentCoordination {
  /**
   * Proposes an agreement among `voters` (starts its workflow; proposing the same id again —
   * e.g. on a retry — returns the existing one, and the first proposal stands).
   */
  propose(spec: ProposalSpec): Promise<{ agreementId: string; workflowId: string }>;
  /**
   * Votes as this agent's role. Appends an `agreement.vote` observation (one per role and
   * agreement: a retried step reuses it) and sends it to the agreement. Waits (up to
   * `waitForProposalMs`, default 60 s) for the agreement to be proposed. A role that is not a
   * voter fails with AgreementRefusedError (non-retryable).
   */
  vote(
    agreementId: string,
    approve: boolean,
    reason: string,
    opts?: { waitForProposalMs?: number },
  ): Promise<VoteReceipt>;
  /**
   * Waits until the agreement decides (or times out at its deadline) and returns the outcome;
   * everyone waiting is released at the same moment. The step keeps heartbeating meanwhile;
   * its timeout must outlast the wait. Do not wait in a step other voters' steps depend on.
   */
  awaitAgreement(
    agreementId: string,
    opts?: { timeoutMs?: number; waitForProposalMs?: number },
  ): Promise<AgreementOutcome>;
  /**
   * Runs `fn` (a call to an outside system) once per key: the first completed result is stored
   * and every retry, replay or concurrent caller gets it back without calling again. A failed
   * `fn` stores nothing. The key is the task's unless `global`.
   */
  once<T extends Json>(
    key: string,
    fn: () => Promise<T>,
    opts?: { global?: boolean; leaseMs?: number },
  ): Promise<T>;
}

export interface AgentEpisodicMemory {
  /**
   * Past episodes ("what happened last time"), newest first: of tasks whose scope the step's
   * grant may read (an episode belongs to its task's scope). An `entity` query counts only
   * observations in the step's read scopes.
   */
  episodes(query?: EpisodeQuery): Promise<FoundEpisode[]>;
}
