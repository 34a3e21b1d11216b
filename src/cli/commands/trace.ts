/** `cairn trace <type>/<id> <field>`: who wrote a field's value, in which run, from what. */
import { formatEntityRef } from '../../shared/observation';
import { storedPolicyResolver } from '../../store/observations/read';
import { traceField } from '../../store/observations/trace';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount, parseEntityArg, renderTrace } from '../format';
import { printJson } from '../table';
import { observationEvidence, renderEvidence } from '../readNotes';

export const traceCommand: Command = {
  name: 'trace',
  summary: "Trace a field's value to the agent, run and attempt that wrote it, and what it was derived from.",
  usage: 'cairn trace <type>/<id> <field> [--depth N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      depth: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 2) throw new UsageError('expected <type>/<id> and <field>');
    const ref = parseEntityArg(positionals[0]);
    const field = positionals[1] as string;
    const maxDepth = values.depth === undefined ? undefined : parseCount('--depth', values.depth, 0);
    if (maxDepth !== undefined && maxDepth > 100) throw new UsageError('--depth must be at most 100');

    const config = ctx.config();
    const pool = createPool(config.databaseUrl, { max: 2, applicationName: 'cairn-cli', scopes: 'all' });
    try {
      const policyOf = await storedPolicyResolver(pool);
      const trace = await traceField(pool, policyOf, ref, field, {
        uiUrl: config.temporalUiUrl,
        namespace: config.temporalNamespace,
        ...(maxDepth === undefined ? {} : { maxDepth }),
      });
      if (!trace) {
        ctx.io.err(`cairn trace: ${formatEntityRef(ref)} has no field "${field}"`);
        return 1;
      }
      // What the writer saw when it wrote the value, whether that was stale, and any taint.
      const evidence = await observationEvidence(pool, policyOf, trace.observationId);
      if (values.json) printJson(ctx.io, { ...trace, evidence });
      else {
        ctx.io.out(renderTrace(trace));
        const notes = renderEvidence(evidence);
        if (notes) ctx.io.out(notes);
      }
      return 0;
    } finally {
      await pool.end();
    }
  },
};
