/**
 * `cairn maintenance run | schedule`: retention. `run` does it now against the database;
 * `schedule` creates (or updates, idempotently) the Temporal Schedule that runs the maintenance
 * workflow on the tasks queue, so a worker serving tasks must be running.
 */
import type { Duration } from '@temporalio/common';
import { CairnClient } from '../../client';
import { ensureMaintenanceSchedule } from '../../maintenanceSchedule';
import type { MaintenanceOptions, MaintenanceReport } from '../../shared/maintenance';
import { runMaintenance } from '../../store/maintenance';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs, parseCount } from '../format';
import { printJson } from '../table';

const DAY_MS = 24 * 3600_000;

export const maintenanceCommand: Command = {
  name: 'maintenance',
  summary:
    'Retention: condense old episodes, archive old read context, prune snapshots (run now, or schedule it).',
  usage: [
    'cairn maintenance run [--episode-days N] [--message-days N] [--keep-snapshots] [--json]',
    '  cairn maintenance schedule [--every 1d|12h|30m] [--episode-days N] [--message-days N] [--keep-snapshots]',
  ].join('\n'),
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseCommandArgs(rest, {
      'episode-days': { type: 'string' },
      'message-days': { type: 'string' },
      'keep-snapshots': { type: 'boolean' },
      every: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const opts: MaintenanceOptions = {};
    if (values['episode-days'] !== undefined)
      opts.episodeRetentionMs = parseCount('--episode-days', values['episode-days'], 0) * DAY_MS;
    if (values['message-days'] !== undefined)
      opts.messageRetentionMs = parseCount('--message-days', values['message-days'], 0) * DAY_MS;
    if (values['keep-snapshots']) opts.pruneSnapshots = false;
    const config = ctx.config();

    if (sub === 'run') {
      if (values.every !== undefined) throw new UsageError('--every is for `schedule`');
      const pool = createPool(config.databaseUrl, {
        max: 2,
        applicationName: 'cairn-maintenance',
        scopes: 'all',
      });
      try {
        const report = await runMaintenance(pool, opts);
        if (values.json) printJson(ctx.io, report);
        else ctx.io.out(renderReport(report));
        return 0;
      } finally {
        await pool.end();
      }
    }
    if (sub === 'schedule') {
      const every = values.every ?? '1d';
      if (!/^\d+(ms|s|m|h|d)$/.test(every))
        throw new UsageError(`--every must be like 1d, 12h, 30m (got "${every}")`);
      const client = await CairnClient.connect(config);
      try {
        const { scheduleId, created } = await ensureMaintenanceSchedule(client.temporal, {
          taskQueuePrefix: config.taskQueuePrefix,
          every: every as Duration,
          maintenance: opts,
        });
        ctx.io.out(
          `${created ? 'created' : 'updated'} schedule ${scheduleId}: maintenance every ${every} on ${config.taskQueuePrefix}-tasks`,
        );
        return 0;
      } finally {
        await client.close();
      }
    }
    throw new UsageError('expected run or schedule');
  },
};

export function renderReport(r: MaintenanceReport): string {
  const condensed = r.summaries.reduce((n, s) => n + s.episodes, 0);
  return [
    `episodes ended before ${r.episodeCutoff}: ${condensed} condensed into ${r.summaries.length} summar${r.summaries.length === 1 ? 'y' : 'ies'}`,
    ...r.summaries.map(
      (s) =>
        `  summary episode ${s.summaryEpisodeId} (${s.episodes} episodes; observation ${s.observationId})`,
    ),
    `context acknowledged before ${r.messageCutoff}: ${r.messagesArchived} archived`,
    `superseded snapshots pruned: ${r.snapshotsPruned}`,
    r.claimsEnded === null
      ? 'claims: none (no cairn.claims table)'
      : `claims whose lease ended: ${r.claimsEnded} (kept: each is its resource's fencing-token counter)`,
  ].join('\n');
}
