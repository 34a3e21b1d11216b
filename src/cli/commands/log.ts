/** `cairn log`: the observation log in append order, filtered by provenance or content. */
import { OBSERVATION_KINDS, type ObservationKind } from '../../shared/observation';
import { LIST_LIMIT, listObservations, type ListFilters } from '../../store/observations/list';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount, parseEntityArg, parseTime, renderObservations } from '../format';
import { printJson } from '../table';
import { logNotes } from '../readNotes';

export const logCommand: Command = {
  name: 'log',
  summary: 'List observations (oldest first) by task, agent, role, entity, type, kind or time.',
  usage:
    'cairn log [--task K] [--agent A] [--role R] [--entity <type>[/<id>]] [--type T] [--kind K] [--since T] [--until T] [--limit N] [--after-seq S] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      task: { type: 'string' },
      agent: { type: 'string' },
      role: { type: 'string' },
      entity: { type: 'string' },
      type: { type: 'string' },
      kind: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      limit: { type: 'string' },
      'after-seq': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const filters: ListFilters = {};
    if (values.task !== undefined) filters.taskKey = values.task;
    if (values.agent !== undefined) filters.agentId = values.agent;
    if (values.role !== undefined) filters.role = values.role;
    if (values.entity !== undefined) {
      // `--entity company` lists every company; `--entity company/acme` one entity.
      if (values.entity.includes('/')) Object.assign(filters, parseEntityArg(values.entity));
      else filters.entityType = values.entity;
    }
    if (values.type !== undefined) filters.type = values.type;
    if (values.kind !== undefined) {
      if (!(OBSERVATION_KINDS as readonly string[]).includes(values.kind))
        throw new UsageError(`--kind must be one of ${OBSERVATION_KINDS.join(', ')}`);
      filters.kind = values.kind as ObservationKind;
    }
    if (values.since !== undefined) filters.since = parseTime('--since', values.since);
    if (values.until !== undefined) filters.until = parseTime('--until', values.until);
    if (values.limit !== undefined) {
      filters.limit = parseCount('--limit', values.limit);
      if (filters.limit > LIST_LIMIT.max) throw new UsageError(`--limit must be at most ${LIST_LIMIT.max}`);
    }
    if (values['after-seq'] !== undefined)
      filters.afterSeq = parseCount('--after-seq', values['after-seq'], 0);

    const pool = createPool(ctx.config().databaseUrl, {
      max: 2,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      const list = await listObservations(pool, filters);
      if (values.json) {
        printJson(ctx.io, list);
        return 0;
      }
      ctx.io.out(renderObservations(list));
      const notes = await logNotes(pool, list); // stale and tainted rows
      if (notes) ctx.io.out(notes);
      const last = list[list.length - 1];
      if (last && list.length === (filters.limit ?? LIST_LIMIT.default))
        ctx.io.out(`(more: add --after-seq ${last.seq})`);
      return 0;
    } finally {
      await pool.end();
    }
  },
};
