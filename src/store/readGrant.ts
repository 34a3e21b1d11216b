/**
 * Reads without any grant. Row-level security (migration 006) shows the application role
 * nothing unless the transaction or session names the scopes it may read; a pool made with
 * `createPool(url)` and used outside a step would therefore read every entity as empty
 * (version 0) — indistinguishable from "nobody has written it yet". An entity read that finds
 * nothing checks whether that is why, and says so instead.
 */
import { ScopeDeniedError } from '../shared/errors';
import type { Queryable } from './pool';

// No read setting at all ('' or unset; an explicit empty grant `{}` is a deliberate choice),
// and a role that row-level security applies to (not a superuser, not the tables' owner).
const UNGRANTED_SQL = {
  text: `select current_user::text as role,
            nullif(pg_catalog.current_setting('cairn.read_scopes', true), '') is null
            and not exists (select 1 from pg_catalog.pg_roles r
                             where r.rolname = current_user and (r.rolsuper or r.rolbypassrls))
            and not pg_catalog.pg_has_role(current_user,
                  (select c.relowner from pg_catalog.pg_class c where c.oid = 'cairn.observations'::regclass), 'MEMBER')
            as ungranted`,
};

/** Throws ScopeDeniedError (`no-grant`) when `db` reads without any read grant. */
export async function assertReadGrant(db: Queryable, entity: string): Promise<void> {
  const { rows } = await db.query<{ role: string; ungranted: boolean }>(UNGRANTED_SQL);
  const row = rows[0];
  if (!row?.ungranted) return;
  throw new ScopeDeniedError({
    reason: 'no-grant',
    access: 'read',
    role: row.role,
    scope: null,
    granted: [],
    entity,
    message:
      `no read scopes are granted on this connection, so ${entity} (and every entity) would read as empty. ` +
      `Orchestrators and tools: createPool(url, { scopes: 'all' }); agents read through ctx.memory, which is scoped`,
  });
}
