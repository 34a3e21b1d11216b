/** `cairn claims`: who holds what, with which fencing token, for how long (database clock). */
import { CLAIM_LIST_LIMIT, listClaims, type ClaimRow } from '../../store/claims';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount } from '../format';
import { printJson, renderTable } from '../table';

export const claimsCommand: Command = {
  name: 'claims',
  summary: 'List claims held now (or --all, with expired and released ones): holder, token, expires in.',
  usage: 'cairn claims [--resource PREFIX] [--all] [--limit N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      resource: { type: 'string' },
      all: { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const limit = values.limit === undefined ? CLAIM_LIST_LIMIT.default : parseCount('--limit', values.limit);
    if (limit > CLAIM_LIST_LIMIT.max) throw new UsageError(`--limit must be at most ${CLAIM_LIST_LIMIT.max}`);
    const pool = createPool(ctx.config().databaseUrl, { max: 1, applicationName: 'cairn-cli' });
    try {
      const rows = await listClaims(pool, {
        ...(values.resource !== undefined ? { prefix: values.resource } : {}),
        all: values.all ?? false,
        limit,
      });
      if (values.json) printJson(ctx.io, rows);
      else ctx.io.out(renderClaims(rows, { all: values.all ?? false }));
      return 0;
    } finally {
      await pool.end();
    }
  },
};

export function renderClaims(rows: readonly ClaimRow[], opts: { all: boolean }): string {
  if (rows.length === 0)
    return opts.all ? '(no claims)' : '(no claims held now; --all lists expired and released ones)';
  return renderTable(
    ['resource', 'holder', 'token', 'status', 'expires in'],
    rows.map((r) => [r.resource, r.holder, r.token, r.status, formatExpiry(r)]),
  );
}

/** `12.3 s`, `expired 4.0 s ago`, `released` — from the database's clock, not this machine's. */
export function formatExpiry(r: Pick<ClaimRow, 'status' | 'expiresInMs'>): string {
  if (r.status === 'released') return 'released';
  const s = formatSeconds(Math.abs(r.expiresInMs));
  return r.status === 'expired' ? `expired ${s} ago` : s;
}

function formatSeconds(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
