/**
 * `cairn verify`: recompute the log's hash chains, re-fold its snapshots, check type
 * definitions, and optionally write or check an anchor file (heads recorded outside the
 * database; see src/store/observations/anchor.ts).
 *
 * Exit codes: 0 everything checked and intact; 1 tampering found (each problem named);
 * 2 could not check (bad arguments, no such entity, unreadable anchor file, database error).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { AnchorFormatError, checkAnchor, parseAnchor, takeAnchor } from '../../store/observations/anchor';
import { verifyLog, type VerifyResult } from '../../store/observations/verify';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseEntityArg, renderVerifyResult } from '../format';
import { printJson } from '../table';

export const VERIFY_EXIT = { ok: 0, tampered: 1, couldNotCheck: 2 } as const;

export const verifyCommand: Command = {
  name: 'verify',
  summary:
    "Check the log's hash chains, snapshots and type definitions (exit 0 intact, 1 tampered, 2 could not check).",
  usage: 'cairn verify [--entity <type>/<id>] [--anchor <file> | --check-anchor <file>] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      entity: { type: 'string' },
      anchor: { type: 'string' },
      'check-anchor': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const entity = values.entity === undefined ? undefined : parseEntityArg(values.entity);
    const anchorOut = values.anchor;
    const anchorIn = values['check-anchor'];
    if (anchorOut !== undefined && anchorIn !== undefined)
      throw new UsageError('give --anchor or --check-anchor, not both');
    if (anchorOut !== undefined && entity !== undefined)
      throw new UsageError('--anchor records every entity; it does not take --entity');

    const pool = createPool(ctx.config().databaseUrl, {
      max: 1,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      let result: VerifyResult;
      try {
        result = await verifyLog(pool, entity ? { entity } : {});
        if (anchorIn !== undefined) {
          const anchor = parseAnchor(await readFile(anchorIn, 'utf8'));
          const found = await checkAnchor(pool, anchor);
          result.problems.push(...found.map((p) => ({ ...p, observationId: '' })));
        }
      } catch (err) {
        ctx.io.err(`cairn verify: could not check: ${describe(err)}`);
        return VERIFY_EXIT.couldNotCheck;
      }
      if (values.json) printJson(ctx.io, result);
      else ctx.io.out(renderVerifyResult(result));
      if (result.problems.length > 0) return VERIFY_EXIT.tampered;
      if (anchorOut !== undefined) {
        try {
          const anchor = await takeAnchor(pool);
          await writeFile(anchorOut, `${JSON.stringify(anchor, null, 2)}\n`, { flag: 'wx' });
          if (!values.json)
            ctx.io.out(`anchor of ${anchor.entities.length} entities written to ${anchorOut}`);
        } catch (err) {
          ctx.io.err(`cairn verify: could not write the anchor: ${describe(err)}`);
          return VERIFY_EXIT.couldNotCheck;
        }
      }
      return VERIFY_EXIT.ok;
    } finally {
      await pool.end();
    }
  },
};

function describe(err: unknown): string {
  if (err instanceof AnchorFormatError) return `anchor file: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
