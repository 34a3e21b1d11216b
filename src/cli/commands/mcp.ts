/**
 * `cairn mcp`: Cairn's tools over the Model Context Protocol (docs/mcp.md).
 * stdio (default): one agent, named by flags or CAIRN_MCP_* variables of the client's config.
 * --http: Streamable HTTP on /mcp; each bearer token is an agent (`cairn agents create`).
 */
import { loadAgentModule } from '../agentModule';
import { createMcpDeps } from '../../mcp/deps';
import { startHttpMcp } from '../../mcp/http';
import { runStdioMcp } from '../../mcp/stdio';
import { agentIdSchema } from '../../store/mcpAgents';
import { checkScopePatterns } from '../../shared/scopes';
import { roleSchema, taskKeySchema } from '../../shared/task';
import { UsageError, type Command } from '../command';
import { parseCommandArgs } from '../format';

const list = (v: string | undefined) =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');

export const mcpCommand: Command = {
  name: 'mcp',
  summary: 'Serve Cairn memory as MCP tools: stdio for one agent, or --http with bearer tokens.',
  usage: [
    'cairn mcp [--agent-id ID --role ROLE] [--read SCOPES] [--write SCOPES] [--task KEY] [--module FILE] [--no-tasks]',
    'cairn mcp --http [--port 7400] [--host 127.0.0.1] [--module FILE] [--no-tasks]',
    '  stdio identity also from CAIRN_MCP_AGENT_ID, CAIRN_MCP_ROLE, CAIRN_MCP_READ, CAIRN_MCP_WRITE, CAIRN_MCP_TASK',
    '  scopes are comma-separated patterns: task, team:<name>, global (default read task,global; write task)',
  ].join('\n'),
  async run(argv, ctx) {
    const { values } = parseCommandArgs(argv, {
      http: { type: 'boolean' },
      port: { type: 'string' },
      host: { type: 'string' },
      module: { type: 'string' },
      'no-tasks': { type: 'boolean' },
      'agent-id': { type: 'string' },
      role: { type: 'string' },
      read: { type: 'string' },
      write: { type: 'string' },
      task: { type: 'string' },
    });
    // stdout is the protocol in stdio mode: every log line goes to stderr.
    const log = (line: string) => ctx.io.err(line);
    const { types } = loadAgentModule(ctx.root, values.module);
    const deps = await createMcpDeps(ctx.config(), types, { tasks: !values['no-tasks'], log });
    try {
      if (values.http) {
        const port = Number(values.port ?? 7400);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new UsageError('--port must be a port number');
        const server = await startHttpMcp(deps, {
          port,
          host: values.host ?? '127.0.0.1',
          log,
          onToolError: (t, e) => log(`${t}: ${e instanceof Error ? e.message : String(e)}`),
        });
        log(`cairn mcp: Streamable HTTP on ${server.url}`);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await server.close();
        return 0;
      }
      const env = process.env;
      const agentId = values['agent-id'] ?? env.CAIRN_MCP_AGENT_ID;
      const role = values.role ?? env.CAIRN_MCP_ROLE;
      if (!agentId || !role)
        throw new UsageError('stdio needs --agent-id and --role (or CAIRN_MCP_AGENT_ID and CAIRN_MCP_ROLE)');
      const read = list(values.read ?? env.CAIRN_MCP_READ) ?? ['task', 'global'];
      const write = list(values.write ?? env.CAIRN_MCP_WRITE) ?? ['task'];
      const task = values.task ?? (env.CAIRN_MCP_TASK || undefined);
      const bad = (what: string, r: { success: boolean; error?: { issues: { message: string }[] } }) => {
        if (!r.success) throw new UsageError(`${what}: ${r.error?.issues[0]?.message ?? 'invalid'}`);
      };
      bad('--agent-id', agentIdSchema.safeParse(agentId));
      bad('--role', roleSchema.safeParse(role));
      if (task !== undefined) bad('--task', taskKeySchema.safeParse(task));
      try {
        checkScopePatterns('--read', read);
        checkScopePatterns('--write', write);
      } catch (err) {
        throw new UsageError(err instanceof Error ? err.message : String(err));
      }
      await runStdioMcp(
        deps,
        { agentId, role, read, write, task },
        { onToolError: (t, e) => log(`${t}: ${e instanceof Error ? e.message : String(e)}`) },
      );
      return 0;
    } finally {
      await deps.close();
    }
  },
};
