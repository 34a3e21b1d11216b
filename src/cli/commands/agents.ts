/**
 * `cairn agents create|revoke|list`: the credentials of MCP agents (migration 008). Runs as the
 * database login (the owner), not as the application role: agents cannot mint tokens.
 */
import { createMcpAgent, listMcpAgents, revokeMcpAgent } from '../../store/mcpAgents';
import { createPool } from '../../store/pool';
import { UsageError, type Command } from '../command';
import { parseCommandArgs } from '../format';
import { printJson, renderTable } from '../table';

const list = (v: string | undefined, dflt: string[]) =>
  v === undefined
    ? dflt
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');

export const agentsCommand: Command = {
  name: 'agents',
  summary: 'Create, revoke and list the bearer tokens of MCP agents (cairn mcp --http).',
  usage: [
    'cairn agents create --agent-id ID --role ROLE [--read task,global] [--write task] [--task KEY] [--json]',
    'cairn agents revoke <credential id | agent id>',
    'cairn agents list [--all] [--json]',
  ].join('\n'),
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    const { values, positionals } = parseCommandArgs(rest, {
      'agent-id': { type: 'string' },
      role: { type: 'string' },
      read: { type: 'string' },
      write: { type: 'string' },
      task: { type: 'string' },
      all: { type: 'boolean' },
      json: { type: 'boolean' },
    });
    const pool = createPool(ctx.config().databaseUrl, {
      max: 1,
      applicationRole: null,
      applicationName: 'cairn-cli',
    });
    try {
      switch (sub) {
        case 'create': {
          if (!values['agent-id'] || !values.role) throw new UsageError('create needs --agent-id and --role');
          let created;
          try {
            created = await createMcpAgent(pool, {
              agentId: values['agent-id'],
              role: values.role,
              read: list(values.read, ['task', 'global']),
              write: list(values.write, ['task']),
              task: values.task,
            });
          } catch (err) {
            if (err instanceof Error && !('code' in err))
              throw new UsageError(err.message.split('\n')[0] ?? err.message);
            throw err;
          }
          if (values.json) printJson(ctx.io, created);
          else {
            ctx.io.out(`credential ${created.id} for agent ${values['agent-id']} (${values.role})`);
            ctx.io.out(`token (shown once; store it in the MCP client's config): ${created.token}`);
          }
          return 0;
        }
        case 'revoke': {
          if (positionals.length !== 1) throw new UsageError('revoke needs one credential id or agent id');
          const n = await revokeMcpAgent(pool, positionals[0]!);
          ctx.io.out(
            n === 0
              ? `nothing to revoke for ${positionals[0]}`
              : `revoked ${n} credential${n === 1 ? '' : 's'}`,
          );
          return n === 0 ? 1 : 0;
        }
        case 'list': {
          const rows = await listMcpAgents(pool, { all: values.all ?? false });
          if (values.json) printJson(ctx.io, rows);
          else
            ctx.io.out(
              rows.length === 0
                ? '(no credentials)'
                : renderTable(
                    ['credential', 'agent', 'role', 'read', 'write', 'task', 'token', 'created', 'revoked'],
                    rows.map((r) => [
                      r.id,
                      r.agentId,
                      r.role,
                      r.read.join(','),
                      r.write.join(','),
                      r.task ?? '',
                      `${r.tokenHint}…`,
                      r.createdAt,
                      r.revokedAt ?? '',
                    ]),
                  ),
            );
          return 0;
        }
        default:
          throw new UsageError('expected create, revoke or list');
      }
    } finally {
      await pool.end();
    }
  },
};
