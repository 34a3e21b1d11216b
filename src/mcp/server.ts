/**
 * One MCP server per session, generated from the Cairn tool set (src/tools/definitions.ts) on the
 * SDK's low-level Server, so input validation and refusals are ours: a bad input is a tool error
 * naming the field, a refusal says what to do next, and the server keeps serving either way.
 *
 * Resources show the same data to clients that browse: `cairn://types` (the type schemas),
 * `cairn://entity/{type}/{id}` (state, recorded as a read like read_entity) and
 * `cairn://trace/{type}/{id}/{field}`.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import {
  CallToolRequestSchema,
  ErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  McpError,
  ReadResourceRequestSchema,
  type CallToolResult,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { compactState, compactTrace } from '../tools/compact';
import { toolsFor } from '../tools/definitions';
import { inputErrorFrom, toolRefusal } from '../tools/refusals';
import type { CairnSession } from '../tools/session';

export const SERVER_INFO = { name: 'cairn', version: '0.1.0' } as const;

export interface McpServerOptions {
  /** Called with every refusal and failure (the server's log); the client gets the refusal. */
  onToolError?: (tool: string, err: unknown) => void;
}

export function createMcpServer(session: CairnSession, opts: McpServerOptions = {}): Server {
  const server = new Server(SERVER_INFO, {
    capabilities: { tools: {}, resources: {} },
    instructions:
      `You are agent ${session.identity.agentId} (role ${session.identity.role}) in Cairn, shared memory for agents. ` +
      'Read entities before deciding; your decisions are refused when what you read has changed (re-read, then decide again). ' +
      'Tool errors say what to do next.',
  });
  const tools = toolsFor(session);
  const byName = new Map(tools.map((t) => [t.name, t]));

  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: tools.map((t) => ({
      name: t.name,
      description: t.description,
      inputSchema: z.toJSONSchema(t.input, { io: 'input', unrepresentable: 'any' }) as { type: 'object' },
    })),
  }));

  server.setRequestHandler(CallToolRequestSchema, async (req): Promise<CallToolResult> => {
    const def = byName.get(req.params.name);
    if (!def)
      return refusal({
        error: `unknown tool ${req.params.name}`,
        next: 'list the tools and call one of them',
      });
    const parsed = def.input.safeParse(req.params.arguments ?? {});
    if (!parsed.success) {
      const err = inputErrorFrom(parsed.error);
      opts.onToolError?.(def.name, err);
      return refusal(toolRefusal(err));
    }
    try {
      const result = await def.run(session, parsed.data);
      return { content: [{ type: 'text', text: JSON.stringify(result) }] };
    } catch (err) {
      opts.onToolError?.(def.name, err);
      return refusal(toolRefusal(err));
    }
  });

  server.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: [
      {
        uri: 'cairn://types',
        name: 'types',
        description: 'Registered observation types and their schemas',
        mimeType: 'application/json',
      },
    ],
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [
      {
        uriTemplate: 'cairn://entity/{type}/{id}',
        name: 'entity',
        description: 'An entity reduced from its observations, with provenance per field',
        mimeType: 'application/json',
      },
      {
        uriTemplate: 'cairn://trace/{type}/{id}/{field}',
        name: 'trace',
        description: "Where a field's value came from",
        mimeType: 'application/json',
      },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, async (req) => {
    const uri = req.params.uri;
    const json = (value: unknown) => ({
      contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(value) }],
    });
    try {
      const m = /^cairn:\/\/(types|entity|trace)(?:\/(.*))?$/.exec(uri);
      const parts = (m?.[2] ?? '')
        .split('/')
        .filter((p) => p !== '')
        .map(decodeURIComponent);
      if (m?.[1] === 'types' && parts.length === 0 && session.listTypes)
        return json(await session.listTypes());
      if (m?.[1] === 'entity' && parts.length === 2) {
        const { state, notes } = await session.readEntity({ entityType: parts[0]!, entityId: parts[1]! }, {});
        return json(compactState(state, notes));
      }
      if (m?.[1] === 'trace' && parts.length === 3 && session.traceField) {
        const trace = await session.traceField({ entityType: parts[0]!, entityId: parts[1]! }, parts[2]!, {});
        return json(trace === null ? { field: parts[2], found: false } : compactTrace(trace));
      }
    } catch (err) {
      throw new McpError(ErrorCode.InvalidParams, toolRefusal(err).error);
    }
    throw new McpError(
      ErrorCode.InvalidParams,
      `unknown resource ${uri}: use cairn://types, cairn://entity/{type}/{id} or cairn://trace/{type}/{id}/{field}`,
    );
  });
  return server;
}

function refusal(r: { error: string; next: string; details?: Record<string, unknown> }): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: JSON.stringify(r) }] };
}
