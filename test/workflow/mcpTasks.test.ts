/**
 * The task tools over MCP (Streamable HTTP, official client) against a real Temporal dev
 * server: start a task, watch it, read its result; a task cannot be started with scopes the
 * token could not write itself.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { startHttpMcp, type RunningHttpMcp } from '../../src/mcp/http';
import { createMcpAgent } from '../../src/store/mcpAgents';
import { storedPolicyResolver } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { createPool } from '../../src/store/pool';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { call, connectHttp, ok } from '../helpers/mcp';
import { startTestStack, type TestStack } from '../helpers/temporal';
import { echo, testTypes } from './agents';

let db: TestDatabase;
let stack: TestStack;
let server: RunningHttpMcp;
let client: Client;
let mcpPool: ReturnType<typeof createPool>;

beforeAll(async () => {
  db = await createTestDatabase();
  stack = await startTestStack({ pool: db.pool, databaseUrl: db.url, registry: testTypes, agents: [echo] });
  mcpPool = createPool(db.url, { max: 4 });
  await registerObservationTypes(mcpPool, testTypes.all());
  server = await startHttpMcp({
    pool: mcpPool,
    registry: testTypes,
    policyOf: await storedPolicyResolver(mcpPool),
    client: stack.client,
  });
  const { token } = await createMcpAgent(db.adminPool, {
    agentId: 'orchestrator-1',
    role: 'orchestrator',
    read: ['task', 'global'],
    write: ['task'],
  });
  client = await connectHttp(server.url, token);
});

afterAll(async () => {
  await client?.close();
  await server?.close();
  await mcpPool?.end();
  await stack?.stop();
  await db?.drop();
});

it('starts a task, reads its status and its result', async () => {
  const started = await ok(client, 'start_task', {
    taskKey: 'mcp-task-1',
    goal: 'write a note from an MCP orchestrator',
    steps: [{ id: 'write', role: 'echo', title: 'write the note', input: { text: 'hello from mcp' } }],
  });
  expect(started).toMatchObject({ taskKey: 'mcp-task-1', workflowId: 'cairn-task-mcp-task-1' });
  const result = await ok(client, 'task_result', { taskKey: 'mcp-task-1', waitMs: 45_000 });
  expect(result).toMatchObject({
    taskKey: 'mcp-task-1',
    status: 'completed',
    steps: [{ id: 'write', status: 'completed', output: { text: 'hello from mcp' } }],
  });
  expect(await ok(client, 'task_status', { taskKey: 'mcp-task-1' })).toEqual({
    taskKey: 'mcp-task-1',
    running: false,
    status: 'completed',
  });
  // The task's note is in the task's scope: this token reads it only when it names the task.
  const outside = await call(client, 'read_entity', { entityType: 'note', entityId: 'write' });
  expect(outside.ok).toBe(false);
  if (!outside.ok) expect(outside.error).toContain('belongs to scope task:mcp-task-1');
  const note = await ok(client, 'read_entity', { entityType: 'note', entityId: 'write', task: 'mcp-task-1' });
  expect(note.fields.text.value).toBe('hello from mcp');
  const refused = await call(client, 'start_task', {
    taskKey: 'mcp-task-2',
    goal: 'g',
    steps: [{ id: 's', role: 'echo', title: 't' }],
    scopes: ['global'],
  });
  expect(refused.ok).toBe(false);
  if (!refused.ok) expect(refused.error).toContain('scopes.0');
}, 120_000);
