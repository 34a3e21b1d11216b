/** `cairn inbox <role>`: a role's context messages — unread by default — across tasks or in one. */
import { formatValue, parseCommandArgs, parseCount } from '../format';
import { listMessages, type StoredMessage } from '../../store/messages';
import { createPool } from '../../store/pool';
import { roleSchema } from '../../shared/task';
import { UsageError, type Command } from '../command';
import { printJson, renderTable } from '../table';

export const inboxCommand: Command = {
  name: 'inbox',
  summary: "Show a role's unread context messages (--all: read ones too), oldest first.",
  usage: 'cairn inbox <role> [--task KEY] [--all] [--limit N] [--json]',
  async run(argv, ctx) {
    const { values, positionals } = parseCommandArgs(argv, {
      task: { type: 'string' },
      all: { type: 'boolean' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one <role>');
    const role = roleSchema.safeParse(positionals[0]);
    if (!role.success)
      throw new UsageError(`bad role "${positionals[0]}": ${role.error.issues[0]?.message ?? 'invalid'}`);
    const limit = values.limit === undefined ? 100 : parseCount('--limit', values.limit);
    const pool = createPool(ctx.config().databaseUrl, {
      max: 1,
      applicationName: 'cairn-cli',
      scopes: 'all',
    });
    try {
      const messages = await listMessages(pool, {
        toRole: role.data,
        ...(values.task !== undefined ? { taskKey: values.task } : {}),
        unreadOnly: !values.all,
        limit,
      });
      if (values.json) printJson(ctx.io, messages);
      else ctx.io.out(renderInbox(messages, { all: values.all ?? false }));
      return 0;
    } finally {
      await pool.end();
    }
  },
};

export function renderInbox(messages: readonly StoredMessage[], opts: { all: boolean }): string {
  if (messages.length === 0)
    return opts.all ? '(no messages)' : '(no unread messages; --all shows read ones)';
  return renderTable(
    ['sent', 'task', 'from', 'type', 'content', 'read by'],
    messages.map((m) => [
      m.createdAt,
      m.taskKey,
      m.fromTask ? `${m.fromRole} (${m.fromTask})` : m.fromRole,
      m.type,
      formatValue(m.content, 50),
      m.ackedBy ?? 'unread',
    ]),
  );
}
