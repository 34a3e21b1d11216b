/**
 * `cairn retract <observation-id> --reason …`: appends a retraction and quarantines the
 * observation's blast radius (tainted in reads until lifted); `--notify-role` tells the running
 * tasks whose decisions are tainted. `cairn retract --lift <quarantine-id> --reason …` lifts one.
 */
import { userInfo } from 'node:os';
import { CairnClient } from '../../client';
import { notifyTaintedTasks, type NotifyTaintedResult } from '../../notifyTainted';
import { roleSchema } from '../../shared/task';
import { blastRadius } from '../../store/blastRadius';
import { storedPolicyResolver } from '../../store/observations/read';
import { createPool } from '../../store/pool';
import { liftQuarantine, loadTaint, retract } from '../../store/quarantine';
import { UsageError, type Command } from '../command';
import { parseCommandArgs } from '../format';
import { renderBlastRadius, renderQuarantine } from '../formatReads';
import { printJson } from '../table';
import { observationIdArg } from './blast';

export const retractCommand: Command = {
  name: 'retract',
  summary: 'Retract an observation and quarantine what rests on it (or --lift a quarantine).',
  usage:
    'cairn retract <observation-id> --reason TEXT [--by WHO] [--notify-role ROLE] [--json]\n       cairn retract --lift <quarantine-id> --reason TEXT [--by WHO] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      reason: { type: 'string' },
      by: { type: 'string' },
      lift: { type: 'boolean' },
      'notify-role': { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1)
      throw new UsageError(`expected exactly one <${values.lift ? 'quarantine' : 'observation'}-id>`);
    const id = observationIdArg(positionals[0]!);
    const reason = values.reason?.trim();
    if (!reason) throw new UsageError('--reason is required: say why, it is kept with the retraction');
    const by = values.by ?? safeUserName();
    const notifyRole = values['notify-role'];
    if (notifyRole !== undefined && !roleSchema.safeParse(notifyRole).success)
      throw new UsageError(`--notify-role: "${notifyRole}" is not a role name`);
    if (values.lift && notifyRole !== undefined)
      throw new UsageError('--notify-role goes with a retraction, not with --lift');

    const config = ctx.config();
    const pool = createPool(config.databaseUrl, { max: 2, applicationName: 'cairn-cli', scopes: 'all' });
    try {
      if (values.lift) {
        const q = await liftQuarantine(pool, id, { by, reason });
        if (values.json) printJson(ctx.io, q);
        else ctx.io.out(renderQuarantine(q));
        return 0;
      }
      const r = await retract(pool, id, { reason, by });
      const blast = await blastRadius(pool, id, { policyOf: await storedPolicyResolver(pool) });
      let notified: NotifyTaintedResult | undefined;
      if (notifyRole !== undefined) {
        const client = await CairnClient.connect(config);
        try {
          notified = await notifyTaintedTasks(client, pool, {
            toRole: notifyRole,
            quarantineId: r.quarantine.id,
            taint: await loadTaint(pool),
          });
        } finally {
          await client.close();
        }
      }
      if (values.json) {
        printJson(ctx.io, { ...r, blast, ...(notified ? { notified } : {}) });
        return 0;
      }
      const o = r.retraction;
      ctx.io.out(
        `${r.alreadyQuarantined ? 'already retracted' : 'retracted'}: ${id} by ${o.id} (${o.entityType}/${o.entityId}@${o.entityVersion})`,
      );
      ctx.io.out(renderQuarantine(r.quarantine));
      ctx.io.out(renderBlastRadius(blast));
      if (notified) {
        for (const n of notified.notified)
          ctx.io.out(
            `notified task ${n.taskKey} (${notifyRole}): ${n.observationIds.length} tainted decision(s)`,
          );
        for (const s of notified.skipped) ctx.io.out(`not notified: task ${s.taskKey}: ${s.reason}`);
        if (notified.notified.length + notified.skipped.length === 0)
          ctx.io.out('no task has tainted decisions to notify');
      }
      return 0;
    } finally {
      await pool.end();
    }
  },
};

function safeUserName(): string {
  try {
    return userInfo().username || 'cli';
  } catch {
    return 'cli';
  }
}
