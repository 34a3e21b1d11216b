/**
 * The task tools over MCP (official client) against a real Temporal dev server: start a task,
 * watch it, read its result, over Streamable HTTP and over stdio (`cairn mcp` spawned as a
 * client would); a task cannot be started with scopes the token could not write itself.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
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

  // Status, working memory and results come from Temporal, not through RLS: an agent that may
  // not read in a task's scope is refused them too.
  const { token: teamToken } = await createMcpAgent(db.adminPool, {
    agentId: 'team-only-1',
    role: 'observer',
    read: ['team:deals', 'global'],
    write: ['team:deals'],
  });
  const teamOnly = await connectHttp(server.url, teamToken);
  try {
    for (const tool of ['task_status', 'task_result']) {
      const r = await call(teamOnly, tool, { taskKey: 'mcp-task-1' });
      expect(r.ok).toBe(false);
      if (!r.ok)
        expect(r.error).toContain('invalid input at taskKey: role observer may not read task mcp-task-1');
    }
  } finally {
    await teamOnly.close();
  }
}, 120_000);

it('over stdio, the configured agent starts a task and reads its result', async () => {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      path.join(__dirname, '..', '..', 'bin', 'cairn.js'),
      'mcp',
      '--agent-id',
      'orchestrator-stdio',
      '--role',
      'orchestrator',
    ],
    env: {
      ...(process.env as Record<string, string>),
      DATABASE_URL: db.url,
      TEMPORAL_ADDRESS: stack.config.temporalAddress,
      TEMPORAL_NAMESPACE: stack.config.temporalNamespace,
      CAIRN_TASK_QUEUE_PREFIX: stack.config.taskQueuePrefix,
    },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const stdio = new Client({ name: 'stdio-orchestrator', version: '0.0.1' });
  await stdio.connect(transport);
  try {
    const tools = (await stdio.listTools()).tools.map((t) => t.name);
    expect(tools).toEqual(expect.arrayContaining(['start_task', 'task_status', 'task_result']));
    const started = await ok(stdio, 'start_task', {
      taskKey: 'mcp-stdio-task',
      goal: 'write a note from a stdio orchestrator',
      // The echo agent writes note/<step id>: an entity belongs to one task's scope.
      steps: [
        { id: 'write-stdio', role: 'echo', title: 'write the note', input: { text: 'hello over stdio' } },
      ],
    });
    expect(started).toMatchObject({ taskKey: 'mcp-stdio-task', workflowId: 'cairn-task-mcp-stdio-task' });
    const result = await ok(stdio, 'task_result', { taskKey: 'mcp-stdio-task', waitMs: 45_000 });
    expect(result).toMatchObject({
      status: 'completed',
      steps: [{ id: 'write-stdio', status: 'completed', output: { text: 'hello over stdio' } }],
    });
    const note = await ok(stdio, 'read_entity', {
      entityType: 'note',
      entityId: 'write-stdio',
      task: 'mcp-stdio-task',
    });
    expect(note.fields.text.value).toBe('hello over stdio');
  } finally {
    await stdio.close();
  }
  expect(stderr).not.toMatch(/task tools are off/);
}, 180_000);
