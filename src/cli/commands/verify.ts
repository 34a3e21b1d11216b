/** `cairn verify`: recompute the log's hash chains; exit 1 naming every row that was changed. */
import { verifyLog } from '../../store/observations/verify';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseEntityArg, renderVerifyResult } from '../format';
import { printJson } from '../table';

export const verifyCommand: Command = {
  name: 'verify',
  summary: "Check the observation log's hash chains and versions; exit 1 if any row was changed.",
  usage: 'cairn verify [--entity <type>/<id>] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      entity: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const entity = values.entity === undefined ? undefined : parseEntityArg(values.entity);

    const pool = createPool(ctx.config().databaseUrl, { max: 1, applicationName: 'cairn-cli', scopes: 'all' });
    try {
      const result = await verifyLog(pool, entity ? { entity } : {});
      if (values.json) printJson(ctx.io, result);
      else ctx.io.out(renderVerifyResult(result));
      return result.problems.length === 0 ? 0 : 1;
    } finally {
      await pool.end();
    }
  },
};
