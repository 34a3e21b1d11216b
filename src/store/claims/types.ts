/**
 * Claims: exclusive, expiring leases on named resources, with fencing tokens.
 *
 * Glossary
 * - resource: any name (1–512 characters); units of work are named `<kind>/<id>`.
 * - holder: who holds a claim; an agent step is `<workflow id>/<activity id>#<attempt>`, so a
 *   retry of a step is a new holder and an earlier attempt cannot write with the new grant.
 * - token: the fencing token of a grant. Per resource it only grows, by one per grant, across
 *   releases and takeovers; a renewal keeps it.
 * - fence: `{ resource, token }` attached to a write; the write is refused unless that token is
 *   still the resource's current, unreleased, unexpired grant when the write's transaction
 *   checks it (and no takeover can happen before that transaction commits).
 * All times are the database's clock (ISO 8601 UTC with microseconds); `checkedAt` is the
 * database time of the decision, so "expires in" never depends on a client's clock.
 */

// The shapes agents see live in the sandbox-safe layer (src/shared/agentTypes.ts).
import type { ClaimGrant } from '../../shared/agentTypes';
export type { ClaimGrant, ClaimHeld, ClaimResult, Fence, WorkGrant } from '../../shared/agentTypes';

export interface ClaimOptions {
  holder: string;
  /** Lease length from the database's now, 1 ms to 7 days. */
  ttlMs: number;
}

/** A claim row as it stands (null fields: the resource was never granted). */
export interface ClaimState {
  resource: string;
  holder: string | null;
  token: number;
  acquiredAt: string | null;
  expiresAt: string | null;
  releasedAt: string | null;
  checkedAt: string;
}

/**
 * Why a renewal, release or fenced write was refused: the token was superseded by a later
 * grant, the lease expired or was released, the caller is not the holder, or that token was
 * never granted.
 */
export type ClaimRefusal = 'superseded' | 'expired' | 'released' | 'not-holder' | 'never-granted';

/**
 * A refusal's `current` is null when the resource has no claim, or (reason `not-holder`) when
 * its claim belongs to a scope the caller may not read: the database hides it (migration 017).
 */
export type RenewResult =
  { renewed: true; grant: ClaimGrant } | { renewed: false; reason: ClaimRefusal; current: ClaimState | null };

export type ReleaseResult =
  | { released: true; state: ClaimState }
  | { released: false; reason: ClaimRefusal; current: ClaimState | null };

export const CLAIM_LIMITS = {
  maxNameLength: 512,
  maxTtlMs: 7 * 24 * 3600 * 1000,
  maxCandidates: 10_000,
  maxWorkItemIdLength: 300,
} as const;

/** Work kinds: no `/`, so `<kind>/<id>` splits unambiguously at the first slash. */
export const WORK_KIND = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

export function workResource(kind: string, id: string): string {
  return `${kind}/${id}`;
}

export function checkName(what: string, value: string): void {
  if (typeof value !== 'string' || value.length < 1 || value.length > CLAIM_LIMITS.maxNameLength)
    throw new RangeError(`claim ${what} must be 1 to ${CLAIM_LIMITS.maxNameLength} characters`);
}

export function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > CLAIM_LIMITS.maxTtlMs)
    throw new RangeError(
      `claim ttlMs must be a whole number from 1 to ${CLAIM_LIMITS.maxTtlMs}, got ${ttlMs}`,
    );
}

export function checkKind(kind: string): void {
  if (!WORK_KIND.test(kind))
    throw new RangeError(
      `work kind "${kind}" must be letters, digits, . _ : - (no "/"), at most 200 characters`,
    );
}

export function checkToken(token: number): void {
  if (!Number.isSafeInteger(token) || token < 1)
    throw new RangeError(`fencing token must be a whole number >= 1, got ${token}`);
}
