/**
 * MCP (issue "Model-driven agents: Cairn memory as tools"): read_entity and
 * append_observations round trips through the official MCP client over Streamable HTTP
 * (loopback, bearer token checked per request) against the same tool session called in-process
 * (the same store work, no protocol): p50 per round with its ratio, and p95 over every call.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type pg from 'pg';
import { startHttpMcp, type RunningHttpMcp } from '../src/mcp/http';
import { createMcpAgent, type AgentBinding } from '../src/store/mcpAgents';
import { storedPolicyResolver } from '../src/store/observations/read';
import { createPool } from '../src/store/pool';
import { createStoreSession } from '../src/tools/storeSession';
import type { CairnSession } from '../src/tools/session';
import type { BenchEnv } from './env';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { defineBenchmark, defineMetric, percentile, runSequentially, type BenchEntry } from './harness';

export const MCP_GROUP = 'MCP tools';

interface McpBench {
  pool: pg.Pool;
  server: RunningHttpMcp;
  client: Client;
  session: CairnSession;
  entityId: string;
}

export function mcpBenchmarks(env: BenchEnv): BenchEntry[] {
  const { runId, sizes } = env;
  let shared: Promise<McpBench> | undefined;
  let users = 0;
  const open = () =>
    (shared ??= (async () => {
      const pool = createPool(env.config.databaseUrl, { max: 4, applicationName: 'cairn-bench-mcp' });
      const deps = { pool, registry: benchTypes, policyOf: await storedPolicyResolver(pool) };
      const binding: AgentBinding = {
        agentId: `bench-mcp-${runId}`,
        role: 'bench-mcp',
        read: ['global'],
        write: ['global'],
      };
      const { token } = await createMcpAgent(env.ownerPool, binding);
      const server = await startHttpMcp(deps);
      const client = new McpClient({ name: 'cairn-bench', version: '1' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(server.url), {
          requestInit: { headers: { Authorization: `Bearer ${token}` } },
        }),
      );
      const session = createStoreSession(deps, binding, () => ({
        sessionId: `bench-${runId}`,
        clientName: 'in-process',
      }));
      const entityId = `mcp-${runId}`;
      await session.append({ items: [item(entityId, 0)], fences: [] });
      return { pool, server, client, session, entityId };
    })());
  const acquire = async () => {
    users++;
    return open();
  };
  const releaseShared = async (b: McpBench) => {
    if (--users > 0) return;
    shared = undefined;
    await b.client.close();
    await b.server.close();
    await b.pool.end();
  };
  const item = (entityId: string, i: number) => ({
    entityType: BENCH_ENTITY_TYPE,
    entityId,
    type: benchItem.name,
    fields: benchFields(i),
    scope: 'global',
  });
  const latencies: Record<string, number[]> = {};
  const timed = (
    name: string,
    fn: (b: McpBench, i: number) => Promise<unknown>,
    baseline?: ReturnType<typeof defineBenchmark>,
  ) =>
    defineBenchmark<McpBench>({
      name,
      group: MCP_GROUP,
      unit: 'ms',
      ops: sizes.reads,
      ...(baseline ? { baseline } : {}),
      setup: acquire,
      teardown: releaseShared,
      async run(b, round) {
        const times = await runSequentially(round.ops, (i) => fn(b, i));
        if (!round.warmup) (latencies[name] ??= []).push(...times);
        return times;
      },
    });
  const call = async (b: McpBench, name: string, args: Record<string, unknown>) => {
    const r = await b.client.callTool({ name, arguments: args });
    if (r.isError) throw new Error(`${name}: ${JSON.stringify(r.content)}`);
  };
  let n = 0;

  const readLib = timed('read_entity in-process (tool session, no protocol)', (b) =>
    b.session.readEntity({ entityType: BENCH_ENTITY_TYPE, entityId: b.entityId }, {}),
  );
  const readMcp = timed(
    'read_entity over MCP Streamable HTTP',
    (b) => call(b, 'read_entity', { entityType: BENCH_ENTITY_TYPE, entityId: b.entityId }),
    readLib,
  );
  const appendLib = timed('append_observations in-process (one item)', (b) =>
    b.session.append({ items: [item(b.entityId, ++n)], fences: [] }),
  );
  const appendMcp = timed(
    'append_observations over MCP Streamable HTTP (one item)',
    (b) => call(b, 'append_observations', { items: [item(b.entityId, ++n)] }),
    appendLib,
  );

  const p95 = (name: string) =>
    defineMetric({
      name: `${name}: p95 over every call of the run`,
      group: MCP_GROUP,
      unit: 'ms',
      measure: async () => {
        const l = latencies[name];
        if (!l || l.length === 0) throw new Error(`no calls measured for ${name} (select its p50 row too)`);
        return Math.round(percentile(l, 95) * 100) / 100;
      },
    });
  return [
    readLib,
    readMcp,
    appendLib,
    appendMcp,
    ...[readLib, readMcp, appendLib, appendMcp].map((b) => p95(b.name)),
  ];
}
