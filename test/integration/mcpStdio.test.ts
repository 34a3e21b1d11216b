/**
 * `cairn mcp` over stdio, spawned as a client would (node bin/cairn.js mcp …), through the
 * official MCP client: the identity comes from the command line, never from tool input.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { recordEpisode } from '../../src/store/episodes';
import { testDatabase, type TestDatabase } from '../helpers/database';
import { call, ok } from '../helpers/mcp';

let db: TestDatabase;
let client: Client;
let stderr = '';

beforeAll(async () => {
  db = await testDatabase();
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      path.join(__dirname, '..', '..', 'bin', 'cairn.js'),
      'mcp',
      '--agent-id',
      'stdio-agent',
      '--role',
      'analyst',
      '--read',
      'team:deals,global',
      '--write',
      'team:deals',
      '--task',
      'deal-9',
      '--no-tasks',
    ],
    env: { ...(process.env as Record<string, string>), DATABASE_URL: db.url },
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  client = new Client({ name: 'stdio-test', version: '0.0.1' });
  await client.connect(transport);
}, 120_000);

afterAll(async () => {
  await client?.close();
  await db?.drop();
});

it('serves the tools over stdio as the configured agent', async () => {
  const tools = (await client.listTools()).tools.map((t) => t.name);
  expect(tools).toEqual(
    expect.arrayContaining(['read_entity', 'append_observations', 'claim', 'search_episodes']),
  );
  expect((await client.listResources()).resources[0]?.uri).toBe('cairn://types');

  const item = {
    entityType: 'company',
    entityId: 'acme',
    type: 'company.profile',
    fields: { name: 'Acme', employees: 12 },
    scope: 'team:deals',
  };
  expect(await ok(client, 'claim', { resource: 'company/acme', ttlMs: 30_000 })).toMatchObject({
    granted: true,
    token: 1,
  });
  const w = await ok(client, 'append_observations', { items: [item], fence: [{ resource: 'company/acme' }] });
  expect(w.observations[0].entityVersion).toBe(1);
  const r = await ok(client, 'read_entity', { entityType: 'company', entityId: 'acme' });
  expect(r.fields.name.by).toMatchObject({ agentId: 'stdio-agent', role: 'analyst' });
  const { rows } = await db.pool.query('select task_key, source from cairn.observations where id = $1', [
    w.observations[0].id,
  ]);
  expect(rows[0]).toEqual({
    task_key: 'deal-9',
    source: { kind: 'tool-call', ref: 'mcp:stdio-test', detail: 'version 0.0.1' },
  });

  await ok(client, 'send_context', { toRole: 'analyst', type: 'note', content: 'to myself' });
  const inbox = (await ok(client, 'read_inbox', {})) as { messages: { content: unknown }[] };
  expect(inbox.messages.map((m) => m.content)).toEqual(['to myself']);

  // Episodes belong to their task's scope (migration 013): the agent's own task's, not another's.
  await recordEpisode(db.pool, {
    taskKey: 'old',
    workflowId: 'wf-old',
    runId: 'r',
    goal: 'assess acme risk',
    outcome: 'completed',
    startedAt: new Date().toISOString(),
    endedAt: new Date().toISOString(),
    steps: [],
    observationIds: [],
    messages: 0,
  });
  await recordEpisode(db.pool, {
    taskKey: 'deal-9',
    workflowId: 'wf-deal-9',
    runId: 'r',
    goal: 'assess acme risk',
    outcome: 'completed',
    startedAt: new Date().toISOString(),
    endedAt: new Date().toISOString(),
    steps: [],
    observationIds: [],
    messages: 0,
  });
  const episodes = (await ok(client, 'search_episodes', { text: 'risk' })).episodes as { taskKey: string }[];
  expect(episodes.map((e) => e.taskKey)).toEqual(['deal-9']);

  const spoof = await call(client, 'append_observations', { role: 'admin', items: [item] });
  expect(spoof.ok).toBe(false);
  const outside = await call(client, 'append_observations', {
    items: [{ ...item, entityId: 'x', scope: 'global' }],
  });
  expect(outside.ok).toBe(false);
  if (!outside.ok) expect(outside.error).toMatch(/global/);
  expect(stderr).not.toMatch(/Error:/);
});

it('cairn agents create | list | revoke manages hashed tokens', async () => {
  const cli = (...args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, [path.join(__dirname, '..', '..', 'bin', 'cairn.js'), ...args], {
        env: { ...process.env, DATABASE_URL: db.url },
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      p.stderr.on('data', (c: Buffer) => (err += c.toString()));
      p.on('exit', (code) => resolve({ code, out, err }));
    });
  const created = await cli(
    'agents',
    'create',
    '--agent-id',
    'cli-agent',
    '--role',
    'analyst',
    '--write',
    'team:deals',
    '--json',
  );
  expect(created.code).toBe(0);
  const { id, token } = JSON.parse(created.out) as { id: string; token: string };
  expect(token).toMatch(/^cairn_/);
  const stored = await db.adminPool.query<{ token_hash: string }>(
    'select token_hash from cairn.mcp_agents where id = $1',
    [id],
  );
  expect(stored.rows[0]!.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
  expect(JSON.stringify(stored.rows)).not.toContain(token);
  // The application role cannot read the credentials.
  await expect(db.pool.query('select * from cairn.mcp_agents')).rejects.toThrow(/permission denied/);
  const listed = await cli('agents', 'list');
  expect(listed.out).toContain('cli-agent');
  expect(listed.out).not.toContain(token);
  expect((await cli('agents', 'revoke', 'cli-agent')).out).toContain('revoked 1 credential');
  expect((await cli('agents', 'list')).out).not.toContain('cli-agent');
  const bad = await cli('agents', 'create', '--agent-id', 'x', '--role', 'Bad Role');
  expect(bad.code).not.toBe(0);
  expect(bad.err).toContain('role');
}, 60_000);
