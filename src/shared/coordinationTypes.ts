/**
 * Observation types Cairn itself writes for coordination and memory upkeep. Sandbox-safe (zod
 * only). Every worker registers them (createWorker merges them into its registry), so votes,
 * decisions and summaries are schema-checked like any agent's observation.
 *
 * - `agreement.vote` — one voter's vote on an agreement (entity `agreement/<task key>/<id>`),
 *   appended by `ctx.vote` with a key per voter, so a retried voter writes it once.
 * - `agreement.decision` — the agreement's outcome, appended by the agreement workflow's
 *   activity, derived from the counted votes.
 * - `memory.episode_summary` — what retention maintenance condensed old episodes into.
 */
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from './observationTypes';

const text = (max: number) => z.string().max(max);

export const agreementVoteType = defineObservationType({
  name: 'agreement.vote',
  version: 1,
  entity: 'agreement',
  description: "A voter role's vote on an agreement; the first vote a role writes stands.",
  fields: {
    voter: z.string().min(1).max(63),
    approve: z.boolean(),
    reason: text(4000),
  },
});

export const agreementDecisionType = defineObservationType({
  name: 'agreement.decision',
  version: 1,
  entity: 'agreement',
  description: 'The outcome of an agreement: approved, rejected, or timed out at its deadline.',
  fields: {
    status: z.enum(['approved', 'rejected', 'timed-out']),
    /** `type/id` of the entity the agreement was about, when one was named. */
    subject: z.string().max(400).nullable(),
    rule: z.string().max(100),
    voters: z.array(z.string().max(63)).max(50),
    approvals: z.array(z.string().max(63)).max(50),
    rejections: z.array(z.string().max(63)).max(50),
    missing: z.array(z.string().max(63)).max(50),
    proposal: z.unknown(),
  },
});

export const episodeSummaryType = defineObservationType({
  name: 'memory.episode_summary',
  version: 1,
  entity: 'episode_summary',
  description: 'Episodes older than the retention period, condensed by maintenance (the episodes stay).',
  fields: {
    summaryEpisodeId: z.string(),
    episodes: z.number().int().nonnegative(),
    from: z.string(),
    to: z.string(),
    outcomes: z.record(z.string(), z.number().int().nonnegative()),
    goals: z.array(text(2000)).max(50),
    taskKeys: z.array(text(200)).max(500),
  },
});

export const COORDINATION_TYPES = [agreementVoteType, agreementDecisionType, episodeSummaryType] as const;

export const coordinationTypes = new ObservationTypeRegistry(COORDINATION_TYPES);

/** A registry with the caller's types plus Cairn's coordination types (a new registry). */
export function withCoordinationTypes(registry: ObservationTypeRegistry): ObservationTypeRegistry {
  const merged = new ObservationTypeRegistry(registry.all());
  for (const t of COORDINATION_TYPES) {
    // The same definition already present (a registry merged twice) is fine.
    if (merged.get(t.name, t.version) !== t) merged.register(t);
  }
  return merged;
}
