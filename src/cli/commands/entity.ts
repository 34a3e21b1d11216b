/** `cairn entity <type>/<id>`: an entity's reduced state, now or as of a version or time. */
import { formatEntityRef } from '../../shared/observation';
import { getEntityState, storedPolicyResolver, type EntityStateOptions } from '../../store/observations/read';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseAsOf, parseCommandArgs, parseCount, parseEntityArg, renderEntityState } from '../format';
import { printJson } from '../table';
import { entityNotes } from '../readNotes';

export const entityCommand: Command = {
  name: 'entity',
  summary: "Show an entity's state: each field's value, policy, winning writer and contested count.",
  usage: 'cairn entity <type>/<id> [--as-of <version|ISO time>] [--min-version N [--wait MS]] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      'as-of': { type: 'string' },
      'min-version': { type: 'string' },
      wait: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <type>/<id>');
    const ref = parseEntityArg(positionals[0]);
    const opts: EntityStateOptions = {};
    if (values['as-of'] !== undefined) Object.assign(opts, parseAsOf(values['as-of']));
    if (values['min-version'] !== undefined)
      opts.minVersion = parseCount('--min-version', values['min-version'], 0);
    if (values.wait !== undefined) opts.waitMs = parseCount('--wait', values.wait, 0);

    const pool = createPool(ctx.config().databaseUrl, {
      max: 2,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      const policyOf = await storedPolicyResolver(pool);
      const state = await getEntityState(pool, policyOf, ref, opts);
      if (values.json) printJson(ctx.io, state);
      else if (state.version === 0 && values['as-of'] === undefined)
        ctx.io.out(`${formatEntityRef(ref)}: no observations`);
      else {
        ctx.io.out(renderEntityState(state, values['as-of'] === undefined ? {} : { asOf: values['as-of'] }));
        // Fields resting on quarantined sources, winners written stale (docs/read-receipts.md).
        const notes = await entityNotes(pool, state);
        if (notes) ctx.io.out(notes);
      }
      return 0;
    } finally {
      await pool.end();
    }
  },
};
