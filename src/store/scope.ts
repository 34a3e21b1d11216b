/**
 * Scoped access to the store (DESIGN invariant 7). Postgres enforces scopes (migration 006):
 * row-level security hides rows outside `cairn.read_scopes`, and a trigger on the log refuses
 * appends outside `cairn.write_scopes` or outside their entity's scope. This module sets those
 * settings for one transaction and turns the database's refusals into ScopeDeniedErrors.
 *
 * Without settings the application role reads nothing and writes nothing. Engineers' tools and
 * test helpers opt into every scope explicitly (createPool's `scopes: 'all'`, set at each
 * transaction's start); a transaction run by withScope sets its grant instead, so a step is bound
 * by its grant whatever pool it runs on. All settings are transaction-local: nothing of one
 * transaction's scope survives into the next one on the same (or a PgBouncer-shared) connection.
 */
import type { Pool, PoolClient } from 'pg';
import type { EntityState, PolicyResolver } from '../shared/entityState';
import { ScopeDeniedError, VersionNotReachedError } from '../shared/errors';
import { formatEntityRef, type EntityRef } from '../shared/observation';
import { scopeListLiteral, type ScopeGrant } from '../shared/scopes';
import { waitForHeadOutside } from './headWait';
import {
  foldLatest,
  getEntityStateUntraced,
  getEntityVersion,
  inlinable,
  latestQuery,
  latestStatement,
  type EntityStateOptions,
  type LatestRow,
} from './observations/read';
import {
  beginWithScopes,
  forgetTransaction,
  pgError,
  queryInline,
  queryWithScopes,
  type Queryable,
} from './pool';
import { inReadSpan } from '../telemetry/instrument';

/** SQLSTATEs raised by migration 006's trigger. */
export const SCOPE_SQLSTATE = {
  /** The write grant does not cover the row's scope. */
  notGranted: 'CNS01',
  /** The row's entity belongs to another scope. */
  entityScope: 'CNS02',
  /** Not a scope name. */
  invalidScope: 'CNS03',
} as const;

/**
 * Runs `fn` in a transaction whose reads and writes are bounded by `grant`: BEGIN and both
 * settings in one round trip, COMMIT after, ROLLBACK if `fn` throws. A client whose ROLLBACK
 * fails is destroyed rather than returned to the pool.
 *
 * `opts.taskKey`: the transaction acts for that task (setting cairn.task_key, migration 013):
 * it may keep the task's own bookkeeping (context messages, episode, read sets) whatever its
 * grant says about the task's scope, its claims and work items belong to `task:<key>`, and
 * every append in it must name that task in its provenance (CNP01). For an agent step's
 * commit and the task workflow's own activities, never for code acting for someone else.
 */
export async function withScope<T>(
  pool: Pool,
  grant: ScopeGrant,
  fn: (client: PoolClient) => Promise<T>,
  opts: { taskKey?: string } = {},
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  let begun: Promise<Error | undefined> | undefined;
  try {
    // BEGIN, the pool's role and both settings in one simple-protocol batch (so literals:
    // scopeListLiteral quotes each name, beginWithScopes escapes the whole), not awaited: the
    // pool pipelines, so fn's first statement travels with it. A failed setup aborts the
    // transaction, so fn's statements fail too, and the setup's error is the one thrown.
    begun = beginWithScopes(pool, client, { ...scopeLists(grant), taskKey: opts.taskKey }).then(
      () => undefined,
      (err: unknown) => (err instanceof Error ? err : new Error(`BEGIN failed: ${String(err)}`)),
    );
    const result = await fn(client);
    const beginError = await begun;
    if (beginError !== undefined) throw beginError;
    await client.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
    } catch (rollbackErr) {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    }
    const beginError = await begun;
    if (beginError) throw beginError;
    throw err;
  } finally {
    forgetTransaction(client);
    client.release(broken);
  }
}

/**
 * A task's own bookkeeping, by the task workflow's activities (admitting context, recording the
 * episode): a transaction acting for the task with no grant of its own (it reads and writes no
 * observations), which row-level security lets keep that task's messages and episode only.
 */
export function withTaskBookkeeping<T>(
  pool: Pool,
  taskKey: string,
  fn: (client: PoolClient) => Promise<T>,
): Promise<T> {
  return withScope(pool, { read: [], write: [] }, fn, { taskKey });
}

/**
 * A `query` that runs each statement in its own transaction acting for `taskKey` (no grant of
 * observations): for bookkeeping that spans several short transactions, such as `ctx.once`'s
 * lease, renewals and result (cairn.effects, migration 016).
 */
export function actingFor(pool: Pool, taskKey: string): Pick<PoolClient, 'query'> {
  const query = (text: string, values?: unknown[]) =>
    withTaskBookkeeping(pool, taskKey, (client) => client.query(text, values));
  return { query: query as unknown as PoolClient['query'] };
}

function scopeLists(grant: ScopeGrant): { read: string; write: string } {
  return { read: scopeListLiteral(grant.read), write: scopeListLiteral(grant.write) };
}

/** The ScopeDeniedError a database refusal stands for, or undefined when it is none. */
export function scopeErrorFrom(err: unknown): ScopeDeniedError | undefined {
  const pg = pgError(err);
  if (!pg) return undefined;
  const reason =
    pg.code === SCOPE_SQLSTATE.notGranted
      ? 'not-granted'
      : pg.code === SCOPE_SQLSTATE.entityScope
        ? 'entity-scope'
        : pg.code === SCOPE_SQLSTATE.invalidScope
          ? 'invalid-scope'
          : undefined;
  if (reason === undefined) return undefined;
  const d = parseDetail(pg.detail);
  const text = (v: unknown) => (typeof v === 'string' ? v : undefined);
  const entity = text(d.entity);
  const entityScope = text(d.entityScope);
  return new ScopeDeniedError({
    reason,
    access: 'write',
    role: text(d.role) ?? '',
    scope: text(d.scope) ?? null,
    granted: Array.isArray(d.granted) ? d.granted.filter((g): g is string => typeof g === 'string') : [],
    ...(entity !== undefined ? { entity } : {}),
    ...(entityScope !== undefined ? { entityScope } : {}),
    message: err instanceof Error ? err.message : String(err),
  });
}

/** The scope an entity belongs to, whoever may read it; null when it has no observations. */
export async function entityScope(db: Queryable, ref: EntityRef): Promise<string | null> {
  const { rows } = await db.query<{ scope: string | null }>('select cairn.entity_scope($1, $2) as scope', [
    ref.entityType,
    ref.entityId,
  ]);
  return rows[0]?.scope ?? null;
}

/**
 * An entity's state as `role` may see it under `grant`. An entity of a scope the grant cannot
 * read is refused with a ScopeDeniedError naming its scope, rather than read as empty (which
 * would invite the agent to start a second entity of the same name).
 */
export function readEntityInScope(
  pool: Pool,
  grant: ScopeGrant,
  role: string,
  policyOf: PolicyResolver,
  ref: EntityRef,
  opts?: EntityStateOptions,
): Promise<EntityState> {
  // One `cairn.read` span whichever path answers (the one-statement read or the general fold).
  return inReadSpan(ref, opts, () => readInScope(pool, grant, role, policyOf, ref, opts));
}

async function readInScope(
  pool: Pool,
  grant: ScopeGrant,
  role: string,
  policyOf: PolicyResolver,
  ref: EntityRef,
  opts?: EntityStateOptions,
): Promise<EntityState> {
  // A read-after-write wait happens before the read's transaction, not inside it: no connection
  // idles in a transaction while the writer has yet to commit (src/store/headWait.ts).
  const required = Math.max(opts?.minVersion ?? 0, opts?.asOfVersion ?? 0);
  let readOpts = opts;
  if (required > 0 && (opts?.waitMs ?? 0) > 0) {
    try {
      await waitForHeadOutside(pool, ref, required, opts?.waitMs ?? 0, () =>
        withScope(pool, grant, (c) => getEntityVersion(c, ref)),
      );
    } catch (err) {
      if (err instanceof VersionNotReachedError && err.currentVersion === 0)
        await withScope(pool, grant, (c) => refuseIfOutOfScope(c, grant, role, ref));
      throw err;
    }
    readOpts = { ...opts, waitMs: 0 };
  }
  // The everyday read: one statement sent with the role and the grant in one message, which
  // Postgres runs as one implicit transaction (queryInline: no BEGIN / COMMIT); the general path
  // below when it cannot answer alone (see foldLatest). Only the read grant is sent: the statement
  // (cairn.read_current) reads observations, entity_heads and entity_snapshots, whose policies
  // consult cairn.read_scopes alone (migration 006), and it writes nothing the write grant governs.
  if (
    readOpts?.asOfVersion === undefined &&
    readOpts?.asOfTime === undefined &&
    readOpts?.without === undefined
  ) {
    const { rows } = inlinable(ref)
      ? await queryInline<LatestRow>(pool, latestStatement(ref), { read: scopeListLiteral(grant.read) })
      : await queryWithScopes<LatestRow>(pool, scopeLists(grant), latestQuery(ref));
    const fast = await foldLatest(pool, policyOf, ref, rows[0], readOpts);
    if (fast) return fast;
  }
  return withScope(pool, grant, async (client) => {
    let state: EntityState;
    try {
      state = await getEntityStateUntraced(client, policyOf, ref, readOpts);
    } catch (err) {
      if (err instanceof VersionNotReachedError && err.currentVersion === 0)
        await refuseIfOutOfScope(client, grant, role, ref);
      throw err;
    }
    if (state.version === 0) await refuseIfOutOfScope(client, grant, role, ref);
    return state;
  });
}

async function refuseIfOutOfScope(
  db: Queryable,
  grant: ScopeGrant,
  role: string,
  ref: EntityRef,
): Promise<void> {
  const scope = await entityScope(db, ref);
  if (scope === null || grant.read.includes(scope)) return;
  const entity = formatEntityRef(ref);
  throw new ScopeDeniedError({
    reason: 'not-granted',
    access: 'read',
    role,
    scope,
    granted: grant.read,
    entity,
    entityScope: scope,
    message: `role ${role} may not read ${entity}: it belongs to scope ${scope} (granted: ${grant.read.join(', ') || 'none'})`,
  });
}

function parseDetail(detail: string | undefined): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(detail ?? '{}');
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
