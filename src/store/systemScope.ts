/**
 * Cairn's own bookkeeping (agreement decisions, maintenance) acts for no agent: it runs with
 * an explicit grant of every scope, in one transaction, whatever the pool's session default.
 */
import type { Pool, PoolClient } from 'pg';
import { ALL_SCOPES } from '../shared/scopes';
import { withScope } from './scope';

const EVERY_SCOPE = { read: [ALL_SCOPES], write: [ALL_SCOPES] } as const;

export function withSystemScope<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  return withScope(pool, EVERY_SCOPE, fn);
}
