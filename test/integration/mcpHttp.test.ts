/* eslint-disable @typescript-eslint/no-unsafe-call -- tool results are JSON from the wire, checked by expect() */
/**
 * `cairn mcp --http` through the official MCP client: tools and resources, reads and writes
 * with provenance, context between agents, claims with fencing, episodes, and the boundaries
 * (token scopes under RLS, revoked tokens, identity never taken from tool input, stale
 * decisions refused with versions named, bad input refused with nothing written).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { startHttpMcp, type RunningHttpMcp } from '../../src/mcp/http';
import { createMcpDeps } from '../../src/mcp/deps';
import { createMcpAgent, revokeMcpAgent } from '../../src/store/mcpAgents';
import { createPool } from '../../src/store/pool';
import { recordEpisode } from '../../src/store/episodes';
import { loadConfig } from '../../src/config';
import { testDatabase, type TestDatabase } from '../helpers/database';
import { call, connectHttp, ok } from '../helpers/mcp';

const vendor = defineObservationType({
  name: 'vendor.profile',
  version: 1,
  entity: 'vendor',
  fields: {
    name: z.string().max(100).optional(),
    employees: z.number().int().optional(),
    notes: z.unknown().optional(),
  },
});
const verdict = defineObservationType({
  name: 'vendor.verdict',
  version: 1,
  entity: 'vendor',
  fields: { approve: z.boolean(), reason: z.string().max(500) },
});
const registry = new ObservationTypeRegistry([vendor, verdict]);

let db: TestDatabase;
let server: RunningHttpMcp;
let closeDeps: () => Promise<void>;
const tokens: Record<string, string> = {};
const clients: Client[] = [];

async function as(name: string): Promise<Client> {
  const c = await connectHttp(server.url, tokens[name]!, `client-${name}`);
  clients.push(c);
  return c;
}

async function count(entity: string): Promise<number> {
  const [t, id] = entity.split('/');
  const { rows } = await db.pool.query<{ n: number }>(
    'select count(*)::int as n from cairn.observations where entity_type = $1 and entity_id = $2',
    [t, id],
  );
  return rows[0]!.n;
}

beforeAll(async () => {
  db = await testDatabase();
  const pool = createPool(db.url, { max: 6, applicationName: 'cairn-mcp-test' });
  const deps = await createMcpDeps(loadConfig({ DATABASE_URL: db.url }), registry, {
    tasks: false,
    log: () => undefined,
    pool,
  });
  closeDeps = async () => {
    await deps.close();
    await pool.end();
  };
  server = await startHttpMcp(deps);
  await mk('alice', 'analyst', ['team:deals', 'global'], ['team:deals']);
  await mk('bob', 'reviewer', ['team:deals', 'global'], ['team:deals']);
  await mk('eve', 'outsider', ['team:other'], ['team:other']);
  await mk('gone', 'analyst', ['team:deals'], ['team:deals']);
});

async function mk(name: string, role: string, read: string[], write: string[]): Promise<void> {
  tokens[name] = (await createMcpAgent(db.adminPool, { agentId: `${name}-agent`, role, read, write })).token;
}

afterAll(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await server?.close();
  await closeDeps?.();
  await db?.drop();
});

describe('MCP over Streamable HTTP', () => {
  it('lists the tools and resources, and the registered types', async () => {
    const c = await as('alice');
    const names = (await c.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining([
        'list_types',
        'read_entity',
        'trace_field',
        'append_observations',
        'send_context',
        'read_inbox',
        'claim',
        'renew',
        'release',
        'next_free',
        'search_episodes',
        'blast_radius',
      ]),
    );
    // No Temporal client in this server: the task tools are not offered.
    expect(names).not.toContain('start_task');
    const append = (await c.listTools()).tools.find((t) => t.name === 'append_observations')!;
    expect(JSON.stringify(append.inputSchema)).toContain('requestId');
    expect((await c.listResources()).resources.map((r) => r.uri)).toEqual(['cairn://types']);
    expect((await c.listResourceTemplates()).resourceTemplates.map((r) => r.uriTemplate)).toContain(
      'cairn://entity/{type}/{id}',
    );
    const types = await ok(c, 'list_types', {});
    expect(types.map((t: { name: string }) => t.name).sort()).toEqual(['vendor.profile', 'vendor.verdict']);
  });

  it('appends and reads back with provenance bound by the server (agent, role, session, client)', async () => {
    const c = await as('alice');
    const w = await ok(c, 'append_observations', {
      items: [
        {
          entityType: 'vendor',
          entityId: 'acme',
          type: 'vendor.profile',
          fields: { name: 'Acme', employees: 40 },
          scope: 'team:deals',
        },
      ],
    });
    expect(w.observations).toHaveLength(1);
    const r = await ok(c, 'read_entity', { entityType: 'vendor', entityId: 'acme' });
    expect(r.version).toBe(1);
    expect(r.fields.employees.value).toBe(40);
    expect(r.fields.employees.by).toMatchObject({
      agentId: 'alice-agent',
      role: 'analyst',
      kind: 'assertion',
    });
    const { rows } = await db.pool.query(
      'select agent_id, role, activity_id, source from cairn.observations where id = $1',
      [w.observations[0].id],
    );
    expect(rows[0].activity_id).toMatch(/^mcp\/[0-9a-f-]{36}\/\d+$/);
    expect(rows[0].source).toEqual({ kind: 'tool-call', ref: 'mcp:client-alice', detail: 'version 1.2.3' });
    const res = await c.readResource({ uri: 'cairn://entity/vendor/acme' });
    expect(JSON.parse((res.contents[0] as { text: string }).text).fields.name.value).toBe('Acme');
    const trace = await ok(c, 'trace_field', { entityType: 'vendor', entityId: 'acme', field: 'name' });
    expect(trace.winner.by.agentId).toBe('alice-agent');
  });

  it('corrections pin a field and retractions withdraw an observation, through the tool', async () => {
    const c = await as('alice');
    const base = { entityType: 'vendor', entityId: 'fix', type: 'vendor.profile', scope: 'team:deals' };
    const w = await ok(c, 'append_observations', {
      items: [{ ...base, fields: { name: 'Fixx', employees: 5 } }],
    });
    const first = w.observations[0].id as string;
    await ok(c, 'append_observations', {
      items: [{ ...base, kind: 'correction', targetId: first, fields: { name: 'Fix' } }],
    });
    const corrected = await ok(c, 'read_entity', { entityType: 'vendor', entityId: 'fix' });
    expect(corrected.fields.name).toMatchObject({ value: 'Fix', corrected: true });
    await ok(c, 'append_observations', {
      items: [{ ...base, kind: 'retraction', targetId: first, fields: {} }],
    });
    const after = await ok(c, 'read_entity', {
      entityType: 'vendor',
      entityId: 'fix',
      fields: ['employees'],
    });
    expect(after.version).toBe(3);
    expect(after.fields.employees?.value).toBeUndefined();
    const noTarget = await call(c, 'append_observations', {
      items: [{ ...base, kind: 'retraction', fields: {} }],
    });
    expect(noTarget.ok).toBe(false);
    if (!noTarget.ok) expect(noTarget.error).toContain('targetId');
  });

  it('a retried call with the same requestId writes nothing twice', async () => {
    const c = await as('alice');
    const args = {
      requestId: 'req-1',
      items: [
        {
          entityType: 'vendor',
          entityId: 'retry',
          type: 'vendor.profile',
          fields: { name: 'R' },
          scope: 'team:deals',
        },
      ],
    };
    const first = await ok(c, 'append_observations', args);
    const second = await ok(await as('alice'), 'append_observations', args);
    expect(second.observations[0]).toMatchObject({ id: first.observations[0].id, replayed: true });
    expect(await count('vendor/retry')).toBe(1);
  });

  it('sends context to another role and the recipient reads (and acknowledges) it', async () => {
    // A task's context belongs to the task's scope (migration 013): both may use `task`.
    await mk('alice-t', 'analyst', ['task', 'team:deals'], ['task', 'team:deals']);
    await mk('bob-t', 'reviewer', ['task', 'team:deals'], ['task']);
    const a = await as('alice-t');
    const b = await as('bob-t');
    const sent = await ok(a, 'send_context', {
      toRole: 'reviewer',
      type: 'handoff',
      content: { vendor: 'acme', note: 'ready' },
      task: 'deal-1',
    });
    expect(sent).toMatchObject({ toRole: 'reviewer', task: 'deal-1', delivered: 'now' });
    const inbox = await ok(b, 'read_inbox', { task: 'deal-1' });
    expect(inbox.messages).toEqual([
      expect.objectContaining({
        fromRole: 'analyst',
        type: 'handoff',
        content: { vendor: 'acme', note: 'ready' },
      }),
    ]);
    expect((await ok(b, 'read_inbox', { task: 'deal-1' })).messages).toEqual([]);
    // Naming a task is not a grant of it: an agent without `task` neither reads nor posts there.
    const e = await as('eve');
    await ok(a, 'send_context', { toRole: 'outsider', type: 'note', content: {}, task: 'deal-1' });
    expect((await ok(e, 'read_inbox', { task: 'deal-1' })).messages).toEqual([]);
    const refused = await call(e, 'send_context', {
      toRole: 'reviewer',
      type: 'x',
      content: {},
      task: 'deal-1',
    });
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.error).toMatch(/task:deal-1/);
  });

  it('claims with fencing: the holder is named, and a lost claim refuses the write', async () => {
    const a = await as('alice');
    const b = await as('bob');
    const granted = await ok(a, 'claim', { resource: 'vendor/fenced', ttlMs: 60_000 });
    expect(granted).toMatchObject({ granted: true, token: 1 });
    expect(await ok(b, 'claim', { resource: 'vendor/fenced', ttlMs: 60_000 })).toMatchObject({
      granted: false,
      heldBy: 'mcp/alice-agent',
    });
    const item = {
      entityType: 'vendor',
      entityId: 'fenced',
      type: 'vendor.profile',
      fields: { name: 'F' },
      scope: 'team:deals',
    };
    await ok(a, 'append_observations', { items: [item], fence: [{ resource: 'vendor/fenced' }] });
    expect(await ok(a, 'release', { resource: 'vendor/fenced' })).toEqual({
      resource: 'vendor/fenced',
      released: true,
    });
    expect(await ok(b, 'claim', { resource: 'vendor/fenced', ttlMs: 60_000 })).toMatchObject({
      granted: true,
      token: 2,
    });
    const stale = await call(a, 'append_observations', {
      items: [{ ...item, fields: { name: 'late' } }],
      fence: [{ resource: 'vendor/fenced', token: 1 }],
    });
    expect(stale.ok).toBe(false);
    if (!stale.ok) expect(stale.error).toContain('held by mcp/bob-agent');
    expect(await count('vendor/fenced')).toBe(1);
    const free = await ok(a, 'next_free', { kind: 'shard', candidates: ['1', '2'], ttlMs: 60_000 });
    expect(free).toMatchObject({ granted: true, resource: 'shard/1' });
  });

  it('two agents decide on one entity concurrently: one is refused as stale with versions named, re-reads and succeeds', async () => {
    const a = await as('alice');
    const b = await as('bob');
    await ok(a, 'append_observations', {
      items: [
        {
          entityType: 'vendor',
          entityId: 'race',
          type: 'vendor.profile',
          fields: { name: 'Race' },
          scope: 'team:deals',
        },
      ],
    });
    expect((await ok(a, 'read_entity', { entityType: 'vendor', entityId: 'race' })).version).toBe(1);
    expect((await ok(b, 'read_entity', { entityType: 'vendor', entityId: 'race' })).version).toBe(1);
    const decide = (c: Client, approve: boolean) =>
      call(c, 'append_observations', {
        items: [
          {
            entityType: 'vendor',
            entityId: 'race',
            type: 'vendor.verdict',
            kind: 'decision',
            fields: { approve, reason: 'r' },
            scope: 'team:deals',
          },
        ],
      });
    const [ra, rb] = await Promise.all([decide(a, true), decide(b, false)]);
    expect([ra.ok, rb.ok].sort()).toEqual([false, true]);
    const [loser, loserClient] = ra.ok ? [rb, b] : [ra, a];
    if (loser.ok) throw new Error('unreachable');
    expect(loser.error).toContain('vendor/race was read at version 1 but is now at version 2');
    expect(loser.next).toContain('re-read vendor/race');
    expect(loser.details).toMatchObject({ versionRead: 1, currentVersion: 2 });
    expect(await count('vendor/race')).toBe(2);
    expect((await ok(loserClient, 'read_entity', { entityType: 'vendor', entityId: 'race' })).version).toBe(
      2,
    );
    expect((await decide(loserClient, ra.ok)).ok).toBe(true);
    const { rows } = await db.pool.query<{ agent_id: string; activity_id: string }>(
      "select agent_id, activity_id from cairn.observations where entity_id = 'race' and kind = 'decision' order by entity_version",
    );
    expect(new Set(rows.map((r) => r.agent_id))).toEqual(new Set(['alice-agent', 'bob-agent']));
    expect(new Set(rows.map((r) => r.activity_id.split('/')[1])).size).toBe(2);
  });

  it('scopes come from the token: another team can neither read nor write the entity', async () => {
    const a = await as('alice');
    const e = await as('eve');
    await ok(a, 'append_observations', {
      items: [
        {
          entityType: 'vendor',
          entityId: 'secret',
          type: 'vendor.profile',
          fields: { name: 'S' },
          scope: 'team:deals',
        },
      ],
    });
    const read = await call(e, 'read_entity', { entityType: 'vendor', entityId: 'secret' });
    expect(read.ok).toBe(false);
    if (!read.ok) expect(read.error).toContain('belongs to scope team:deals');
    const write = await call(e, 'append_observations', {
      items: [
        {
          entityType: 'vendor',
          entityId: 'secret',
          type: 'vendor.profile',
          fields: { name: 'mine' },
          scope: 'team:deals',
        },
      ],
    });
    expect(write.ok).toBe(false);
    const own = await call(e, 'append_observations', {
      items: [
        {
          entityType: 'vendor',
          entityId: 'secret',
          type: 'vendor.profile',
          fields: { name: 'mine' },
          scope: 'team:other',
        },
      ],
    });
    expect(own.ok).toBe(false);
    expect(await count('vendor/secret')).toBe(1);
    const backwards = await call(a, 'read_entity', { entityType: 'vendor', entityId: 'secret' });
    expect(backwards.ok).toBe(true);
  });

  it('identity in tool input is refused, naming the field, and nothing is written', async () => {
    const e = await as('eve');
    const r = await call(e, 'append_observations', {
      agentId: 'alice-agent',
      items: [
        {
          entityType: 'vendor',
          entityId: 'spoof',
          type: 'vendor.profile',
          fields: { name: 'x' },
          scope: 'team:other',
        },
      ],
    });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/agentId|Unrecognized key/);
    const r2 = await call(e, 'read_entity', {
      entityType: 'vendor',
      entityId: 'secret',
      scopes: ['team:deals'],
    });
    expect(r2.ok).toBe(false);
    expect(await count('vendor/spoof')).toBe(0);
  });

  it('bad input is a tool error naming the field; nothing is written; the server keeps serving', async () => {
    const c = await as('alice');
    const base = { entityType: 'vendor', entityId: 'bad', type: 'vendor.profile', scope: 'team:deals' };
    const wrongType = await call(c, 'append_observations', {
      items: [{ ...base, fields: { employees: 'many' } }],
    });
    expect(wrongType.ok).toBe(false);
    if (!wrongType.ok) expect(wrongType.error).toContain('fields.employees');
    const unknown = await call(c, 'append_observations', {
      items: [{ ...base, type: 'vendor.nope', fields: {} }],
    });
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) expect(unknown.error).toContain('vendor.nope');
    const big = await call(c, 'append_observations', {
      items: [{ ...base, fields: { notes: 'x'.repeat(300_000) } }],
    });
    expect(big.ok).toBe(false);
    if (!big.ok) expect(big.error).toMatch(/notes|bytes/);
    let deep: unknown = 'leaf';
    for (let i = 0; i < 60; i++) deep = { d: deep };
    const nested = await call(c, 'append_observations', { items: [{ ...base, fields: { notes: deep } }] });
    expect(nested.ok).toBe(false);
    if (!nested.ok) expect(nested.error).toContain('fields.notes');
    const badArg = await call(c, 'read_entity', { entityType: 'vendor', entityId: 7 });
    expect(badArg.ok).toBe(false);
    if (!badArg.ok) expect(badArg.error).toContain('entityId');
    const mixed = await call(c, 'append_observations', {
      items: [
        { ...base, fields: { name: 'ok' } },
        { ...base, fields: { employees: -1.5 } },
      ],
    });
    expect(mixed.ok).toBe(false);
    if (!mixed.ok) expect(mixed.error).toContain('[1]');
    expect(await count('vendor/bad')).toBe(0);
    expect((await ok(c, 'list_types', {})).length).toBe(2);
  });

  it('a revoked token is refused, also inside an open session', async () => {
    const c = await as('gone');
    await ok(c, 'list_types', {});
    expect(await revokeMcpAgent(db.adminPool, 'gone-agent')).toBe(1);
    await expect(c.callTool({ name: 'list_types', arguments: {} })).rejects.toThrow(/401|bearer/i);
    await expect(connectHttp(server.url, tokens.gone!)).rejects.toThrow(/401|bearer/i);
    await expect(connectHttp(server.url, 'cairn_not-a-token')).rejects.toThrow(/401|bearer/i);
  });

  it('searches episodes', async () => {
    await recordEpisode(db.pool, {
      taskKey: 'past-deal',
      workflowId: 'wf-past',
      runId: 'r',
      goal: 'review vendor acme for onboarding',
      outcome: 'completed',
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
      steps: [],
      observationIds: [],
      messages: 0,
    });
    // An episode belongs to its task's scope (migration 013): not to agents of other scopes.
    const outsider = await ok(await as('alice'), 'search_episodes', { text: 'onboarding' });
    expect(outsider.episodes).toEqual([]);
    await mk('historian', 'analyst', ['task:past-deal'], []);
    const found = await ok(await as('historian'), 'search_episodes', { text: 'onboarding' });
    expect(found.episodes.map((e: { taskKey: string }) => e.taskKey)).toEqual(['past-deal']);
  });
});
