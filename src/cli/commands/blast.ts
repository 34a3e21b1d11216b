/** `cairn blast <observation-id>`: everything downstream of an observation (its blast radius). */
import { blastRadius, BLAST_LIMITS } from '../../store/blastRadius';
import { storedPolicyResolver } from '../../store/observations/read';
import { createPool } from '../../store/pool';
import { checkUuid } from '../../store/quarantine';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount } from '../format';
import { renderBlastRadius } from '../formatReads';
import { printJson } from '../table';

export const blastCommand: Command = {
  name: 'blast',
  summary:
    'Show what rests on an observation: derived from it or decided on state it produced, with tasks, agents and fields.',
  usage: 'cairn blast <observation-id> [--depth N] [--limit N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      depth: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <observation-id>');
    const id = observationIdArg(positionals[0]!);
    const maxDepth = values.depth === undefined ? undefined : parseCount('--depth', values.depth, 0);
    if (maxDepth !== undefined && maxDepth > BLAST_LIMITS.maxDepth)
      throw new UsageError(`--depth must be at most ${BLAST_LIMITS.maxDepth}`);
    const limit = values.limit === undefined ? undefined : parseCount('--limit', values.limit);

    const pool = createPool(ctx.config().databaseUrl, {
      max: 2,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      const blast = await blastRadius(pool, id, {
        policyOf: await storedPolicyResolver(pool),
        ...(maxDepth === undefined ? {} : { maxDepth }),
        ...(limit === undefined ? {} : { limit }),
      });
      if (values.json) printJson(ctx.io, blast);
      else ctx.io.out(renderBlastRadius(blast));
      return 0;
    } finally {
      await pool.end();
    }
  },
};

/** A uuid argument, as a usage error when it is not one. */
export function observationIdArg(text: string): string {
  try {
    return checkUuid('id', text);
  } catch {
    throw new UsageError(`"${text}" is not an id (ids are uuids, e.g. from \`cairn log\`)`);
  }
}
