/**
 * `cairn mcp --http`: Streamable HTTP with bearer tokens. Every request is authenticated
 * (a revoked token is refused at once, even inside an open session); a session belongs to the
 * credential that opened it, and another token cannot use its session id. The agent's identity
 * and scopes come from the token's row, never from the client.
 */
import { randomUUID } from 'node:crypto';
import {
  createServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { agentForToken, hashToken } from '../store/mcpAgents';
import { createStoreSession, type StoreSessionDeps } from '../tools/storeSession';
import { createMcpServer, type McpServerOptions } from './server';

export interface HttpMcpOptions extends McpServerOptions {
  host?: string;
  port?: number;
  /** Request bodies above this are refused with 413 (default 1 MiB). */
  maxBodyBytes?: number;
  log?: (line: string) => void;
}

export interface RunningHttpMcp {
  url: string;
  /** Open sessions (for tests and the log). */
  sessions(): number;
  close(): Promise<void>;
}

interface OpenSession {
  transport: StreamableHTTPServerTransport;
  tokenHash: string;
}

export async function startHttpMcp(
  deps: StoreSessionDeps,
  opts: HttpMcpOptions = {},
): Promise<RunningHttpMcp> {
  const sessions = new Map<string, OpenSession>();
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const log = opts.log ?? (() => undefined);

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.startsWith('/mcp')) return reply(res, 404, 'not found: the endpoint is /mcp');
    const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const agent = token === undefined ? undefined : await agentForToken(deps.pool, token);
    if (!agent || token === undefined) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="cairn"');
      return reply(res, 401, 'a valid bearer token is required (cairn agents create)');
    }
    const tokenHash = hashToken(token);
    const sessionId = req.headers['mcp-session-id'];
    let body: unknown;
    if (req.method === 'POST') {
      const text = await readBody(req, maxBody);
      if (text === undefined) return reply(res, 413, `request body above ${maxBody} bytes`);
      try {
        body = JSON.parse(text);
      } catch {
        return reply(res, 400, 'request body is not JSON');
      }
    }
    if (typeof sessionId === 'string') {
      const open = sessions.get(sessionId);
      if (!open) return reply(res, 404, 'unknown or closed session: initialize a new one');
      if (open.tokenHash !== tokenHash) return reply(res, 403, 'this session belongs to another credential');
      return open.transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body))
      return reply(res, 400, 'no session: send initialize first');

    let id = '';
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => (id = randomUUID()),
      onsessioninitialized: (sid) => {
        sessions.set(sid, { transport, tokenHash });
        log(`mcp session ${sid} opened for agent ${agent.agentId} (${agent.role})`);
      },
    });
    transport.onclose = () => {
      if (id) sessions.delete(id);
    };
    const server = createMcpServer(
      createStoreSession(deps, agent, () => ({
        sessionId: id,
        clientName: server.getClientVersion()?.name,
        clientVersion: server.getClientVersion()?.version,
      })),
      opts,
    );
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  };

  const http: HttpServer = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`mcp http: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) reply(res, 500, 'internal error');
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = http.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}/mcp`,
    sessions: () => sessions.size,
    async close() {
      await Promise.allSettled([...sessions.values()].map((s) => s.transport.close()));
      sessions.clear();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

function reply(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
