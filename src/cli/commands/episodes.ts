/** `cairn episodes`: past episodes by goal text, tag, entity and outcome ("what happened last time"). */
import {
  EPISODE_QUERY_LIMIT,
  findEpisodes,
  type EpisodeQuery,
  type FoundEpisode,
} from '../../store/episodeSearch';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount, parseEntityArg } from '../format';
import { printJson, renderTable } from '../table';

const OUTCOMES = ['completed', 'failed', 'cancelled', 'mixed'] as const;
const KINDS = ['task', 'summary', 'any'] as const;

export const episodesCommand: Command = {
  name: 'episodes',
  summary: 'Find past episodes by goal text, tag, entity or outcome, newest first.',
  usage:
    'cairn episodes [--text WORDS] [--tag T]… [--entity <type>/<id>] [--outcome completed|failed|cancelled|mixed] [--kind task|summary|any] [--limit N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      text: { type: 'string' },
      tag: { type: 'string', multiple: true },
      entity: { type: 'string' },
      outcome: { type: 'string' },
      kind: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const query: EpisodeQuery = {};
    if (values.text !== undefined) query.text = values.text;
    if (values.tag !== undefined) query.tags = values.tag;
    if (values.entity !== undefined) query.entity = parseEntityArg(values.entity);
    if (values.outcome !== undefined) {
      if (!(OUTCOMES as readonly string[]).includes(values.outcome))
        throw new UsageError(`--outcome must be one of ${OUTCOMES.join(', ')}`);
      query.outcome = values.outcome as EpisodeQuery['outcome'];
    }
    if (values.kind !== undefined) {
      if (!(KINDS as readonly string[]).includes(values.kind))
        throw new UsageError(`--kind must be one of ${KINDS.join(', ')}`);
      query.kind = values.kind as EpisodeQuery['kind'];
    }
    if (values.limit !== undefined) {
      query.limit = parseCount('--limit', values.limit);
      if (query.limit > EPISODE_QUERY_LIMIT.max)
        throw new UsageError(`--limit must be at most ${EPISODE_QUERY_LIMIT.max}`);
    }
    const pool = createPool(ctx.config().databaseUrl, {
      max: 1,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      const episodes = await findEpisodes(pool, query);
      if (values.json) printJson(ctx.io, episodes);
      else ctx.io.out(renderEpisodes(episodes));
      return 0;
    } finally {
      await pool.end();
    }
  },
};

export function renderEpisodes(episodes: readonly FoundEpisode[]): string {
  if (episodes.length === 0) return '(no episodes)';
  return renderTable(
    ['ended', 'task', 'outcome', 'steps', 'tags', 'goal'],
    episodes.map((e) => [
      e.endedAt,
      e.kind === 'summary'
        ? `${e.taskKey} (summary)`
        : e.summarizedInto
          ? `${e.taskKey} (summarized)`
          : e.taskKey,
      e.outcome,
      e.stepCount,
      e.tags.join(','),
      e.goal,
    ]),
  );
}
