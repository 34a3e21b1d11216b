/**
 * The shapes agents see of the store: claims and work grants, max-age reads, episodes. They
 * live here, in the sandbox-safe layer, so the agent API (src/agent.ts) and users' code depend
 * on types, never on the store's modules; the store implements them and re-exports them.
 */
import type { EntityState } from './entityState';
import type { EntityRef, Json } from './observation';

// --- Claims (src/store/claims) ---

export interface Fence {
  resource: string;
  token: number;
}

/** The caller holds the claim. */
export interface ClaimGrant {
  granted: true;
  /** `renewed`: the caller already held it (same token, lease extended). */
  outcome: 'granted' | 'expired-takeover' | 'renewed';
  resource: string;
  holder: string;
  token: number;
  acquiredAt: string;
  expiresAt: string;
  checkedAt: string;
  expiresInMs: number;
  /** expired-takeover: whose lapsed lease this grant replaced. */
  previousHolder?: string;
}

/**
 * Someone else holds the claim, until `expiresAt`. When the claim belongs to a scope the caller
 * may not read (`hidden`), only that: holder, token, times and expiresInMs are null (migration
 * 017; docs/coordination.md "Scope").
 */
export interface ClaimHeld {
  granted: false;
  outcome: 'held';
  resource: string;
  holder: string | null;
  token: number | null;
  acquiredAt: string | null;
  expiresAt: string | null;
  checkedAt: string;
  expiresInMs: number | null;
  /** Held under a scope the caller may not read: the details above are null. */
  hidden: boolean;
}

export type ClaimResult = ClaimGrant | ClaimHeld;

/** A grant from nextFree: the resource is `<kind>/<id>`. */
export interface WorkGrant extends ClaimGrant {
  kind: string;
  id: string;
}

/** Where nextFree looks: candidate ids of the kind, in order, or its registered work items. */
export type NextFreeSource = readonly string[] | { workItems: true };

// --- Max-age reads (src/store/freshness.ts) ---

export interface FreshnessOptions {
  /** Fields whose winning observation is older than this are stale. */
  maxAgeMs: number;
  /** Which time an age counts from (default `observed`). */
  ageFrom?: 'observed' | 'recorded';
  /** `flag` (default) keeps stale fields in `fields`; `omit` leaves them out (their ages stay in `freshness`). */
  stale?: 'flag' | 'omit';
  /** The time ages are measured at (default now). */
  now?: Date;
}

export interface FieldAge {
  ageMs: number;
  stale: boolean;
  observationId: string;
  observedAt: string;
  recordedAt: string;
}

export interface Freshness {
  maxAgeMs: number;
  ageFrom: 'observed' | 'recorded';
  /** When the ages were measured (ISO). */
  measuredAt: string;
  fields: Record<string, FieldAge>;
  /** Names of the stale fields, sorted. */
  stale: string[];
  /** True when no field is stale. */
  fresh: boolean;
}

export interface FreshEntityState extends EntityState {
  freshness: Freshness;
}

// --- Episodic memory (src/store/episodeSearch.ts) ---

export interface EpisodeQuery {
  /** Words or a fragment of the goal: full-text (English stemming, web-search syntax) or ILIKE. */
  text?: string;
  /** Every one of these tags (the episode's own plus those added with tagEpisode). */
  tags?: readonly string[];
  /** Episodes whose task wrote observations about this entity (or that linked them). */
  entity?: EntityRef;
  outcome?: 'completed' | 'failed' | 'cancelled' | 'mixed';
  taskKey?: string;
  /** `task` episodes, `summary` episodes, or both (default). */
  kind?: 'task' | 'summary' | 'any';
  /** Leave out task episodes already condensed into a summary (default false). */
  excludeSummarized?: boolean;
  /** Default 20, at most 500. */
  limit?: number;
}

export interface FoundEpisode {
  id: string;
  kind: 'task' | 'summary';
  taskKey: string;
  workflowId: string;
  goal: string;
  outcome: string;
  startedAt: string;
  endedAt: string;
  stepCount: number;
  steps: Json;
  messageCount: number;
  observationIds: string[];
  tags: string[];
  /** For a summary episode: what it condensed (counts, goals, task keys). */
  summary: Json | null;
  /** The summary episode this one was condensed into, if any. */
  summarizedInto: string | null;
}
