/**
 * `cairn mcp` over stdio: one process, one agent, configured by whoever launches it (the MCP
 * client's configuration: flags or environment). stdout carries the protocol only; logs go to
 * stderr.
 */
import { randomUUID } from 'node:crypto';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { AgentBinding } from '../store/mcpAgents';
import { createStoreSession, type StoreSessionDeps } from '../tools/storeSession';
import { createMcpServer, type McpServerOptions } from './server';

export async function runStdioMcp(
  deps: StoreSessionDeps,
  agent: AgentBinding,
  opts: McpServerOptions = {},
): Promise<void> {
  const sessionId = randomUUID();
  const transport = new StdioServerTransport();
  const server = createMcpServer(
    createStoreSession(deps, agent, () => ({
      sessionId,
      clientName: server.getClientVersion()?.name,
      clientVersion: server.getClientVersion()?.version,
    })),
    opts,
  );
  const closed = new Promise<void>((resolve) => {
    server.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
}
