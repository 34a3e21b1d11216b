import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CliContext } from '../../src/cli/command';
import { traceCommand } from '../../src/cli/commands/trace';
import { loadConfig } from '../../src/config';
import type { EntityRef, ExternalSource } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import { appendObservations, type AppendContext } from '../../src/store/observations/append';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { temporalRunUrl, traceField, type TraceNode } from '../../src/store/observations/trace';
import { testDatabase, type TestDatabase } from '../helpers/database';

const registry = new ObservationTypeRegistry([
  defineObservationType({
    name: 'company.profile',
    version: 1,
    entity: 'company',
    fields: { hq: z.string().optional() },
  }),
  defineObservationType({
    name: 'document.fact',
    version: 1,
    entity: 'document',
    fields: { text: z.string() },
  }),
]);
const policyOf = policyResolverFor(registry);
const ui = { uiUrl: 'http://ui.test:8233', namespace: 'research ns' };

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

interface Writer {
  agentId: string;
  role: string;
  workflowId: string;
  runId: string;
  activityId: string;
  attempt: number;
}
async function write(
  ref: EntityRef,
  type: string,
  fields: Record<string, unknown>,
  who: Writer,
  extra: { derivedFrom?: string[]; source?: ExternalSource } = {},
): Promise<string> {
  const ctx: AppendContext = {
    provenance: { taskKey: 'trace-task', ...who },
    idempotencyPrefix: `trace:${randomUUID()}`,
    observedAt: '2025-01-31T12:00:00.000Z',
  };
  const [appended] = await appendObservations(db.pool, registry, [{ ...ref, type, fields, ...extra }], ctx);
  return appended!.id;
}

const suffix = () => randomUUID().slice(0, 8);
const doc = (id: string): EntityRef => ({ entityType: 'document', entityId: `${id}-${suffix()}` });

/** company.hq ← d1 ← d2 ← d3 (a web page read outside any workflow), plus a losing hq value. */
async function chain() {
  const company: EntityRef = { entityType: 'company', entityId: `acme-${suffix()}` };
  const source: ExternalSource = { kind: 'url', ref: 'https://example.com/acme', detail: 'about page' };
  const d3 = await write(
    doc('d3'),
    'document.fact',
    { text: 'Acme moved to Berlin' },
    { agentId: 'scraper', role: 'collector', workflowId: '', runId: '', activityId: '', attempt: 0 },
    { source },
  );
  const d2 = await write(
    doc('d2'),
    'document.fact',
    { text: 'HQ: Berlin' },
    {
      agentId: 'reader',
      role: 'extractor',
      workflowId: 'task/acme 2',
      runId: 'run-2',
      activityId: '7',
      attempt: 1,
    },
    { derivedFrom: [d3] },
  );
  const d1 = await write(
    doc('d1'),
    'document.fact',
    { text: 'confirmed' },
    { agentId: 'checker', role: 'verifier', workflowId: 'wf-1', runId: 'run-1', activityId: '3', attempt: 2 },
    { derivedFrom: [d2] },
  );
  const rival = await write(
    company,
    'company.profile',
    { hq: 'Paris' },
    { agentId: 'rival', role: 'researcher', workflowId: 'wf-0', runId: 'run-0', activityId: '1', attempt: 1 },
  );
  const root = await write(
    company,
    'company.profile',
    { hq: 'Berlin' },
    { agentId: 'analyst', role: 'writer', workflowId: 'wf-r', runId: 'run-r', activityId: '9', attempt: 3 },
    { derivedFrom: [d1] },
  );
  return { company, d1, d2, d3, rival, root };
}

describe('traceField', () => {
  it('follows derived_from three hops with provenance and Temporal UI links', async () => {
    const c = await chain();
    const trace = await traceField(db.pool, policyOf, c.company, 'hq', ui);
    expect(trace).not.toBeNull();
    const t = trace!;
    expect(t).toMatchObject({
      field: 'hq',
      value: 'Berlin',
      policy: 'last-writer-wins',
      corrected: false,
      stateVersion: 2,
    });
    expect(t.contested).toEqual([
      {
        value: 'Paris',
        reason: 'last-writer-wins',
        source: expect.objectContaining({
          observationId: c.rival,
          agentId: 'rival',
          role: 'researcher',
          entityVersion: 1,
        }),
      },
    ]);

    expect(t).toMatchObject({
      observationId: c.root,
      depth: 0,
      entity: `company/${c.company.entityId}`,
      entityVersion: 2,
      kind: 'assertion',
      type: 'company.profile',
    });
    expect(t.provenance).toMatchObject({
      agentId: 'analyst',
      role: 'writer',
      taskKey: 'trace-task',
      workflowId: 'wf-r',
      runId: 'run-r',
      activityId: '9',
      attempt: 3,
    });
    expect(t.temporalUrl).toBe('http://ui.test:8233/namespaces/research%20ns/workflows/wf-r/run-r/history');
    expect(t.observedAt).toBe('2025-01-31T12:00:00.000000Z');
    expect(t.recordedAt).toMatch(/Z$/);

    const n1 = only(t.derivedFrom);
    expect(n1).toMatchObject({ observationId: c.d1, depth: 1, fields: { text: 'confirmed' } });
    expect(n1.provenance).toMatchObject({ agentId: 'checker', role: 'verifier', runId: 'run-1', attempt: 2 });
    const n2 = only(n1.derivedFrom);
    expect(n2).toMatchObject({
      observationId: c.d2,
      depth: 2,
      temporalUrl: 'http://ui.test:8233/namespaces/research%20ns/workflows/task%2Facme%202/run-2/history',
    });
    const n3 = only(n2.derivedFrom);
    expect(n3).toMatchObject({
      observationId: c.d3,
      depth: 3,
      temporalUrl: null,
      derivedFrom: [],
      missing: [],
      cycles: [],
      truncated: [],
    });
    expect(n3.provenance.source).toEqual({
      kind: 'url',
      ref: 'https://example.com/acme',
      detail: 'about page',
    });
    expect(n3.provenance.agentId).toBe('scraper');
  });

  it('stops at maxDepth and says what it did not follow', async () => {
    const c = await chain();
    const t = (await traceField(db.pool, policyOf, c.company, 'hq', { ...ui, maxDepth: 1 }))!;
    const n1 = only(t.derivedFrom);
    expect(n1.derivedFrom).toEqual([]);
    expect(n1.truncated).toEqual([c.d2]);
    expect((await traceField(db.pool, policyOf, c.company, 'hq', { ...ui, maxDepth: 0 }))!.truncated).toEqual(
      [c.d1],
    );
  });

  it('is cycle-safe: a derived_from loop (written behind the trigger) is reported, not followed', async () => {
    const c = await chain();
    // The append refuses references to rows that do not exist yet, so a cycle can only be
    // forged by hand; the trace must still terminate.
    await forge(`update cairn.observations set derived_from = array[$1::uuid, $2::uuid] where id = $2`, [
      c.root,
      c.d3,
    ]);
    const t = (await traceField(db.pool, policyOf, c.company, 'hq', { ...ui, maxDepth: 50 }))!;
    const n3 = only(only(only(t.derivedFrom).derivedFrom).derivedFrom);
    expect(n3.observationId).toBe(c.d3);
    expect(n3.derivedFrom).toEqual([]);
    expect(n3.cycles).toEqual([c.root, c.d3]);
    expect(countNodes(t)).toBe(4);
  });

  it('returns null for a field the entity does not have', async () => {
    const c = await chain();
    expect(await traceField(db.pool, policyOf, c.company, 'nope', ui)).toBeNull();
    expect(
      await traceField(db.pool, policyOf, { entityType: 'company', entityId: 'never-written' }, 'hq', ui),
    ).toBeNull();
  });

  it('builds Temporal UI URLs', () => {
    expect(temporalRunUrl('http://h:8233/', 'default', 'w/1', 'r')).toBe(
      'http://h:8233/namespaces/default/workflows/w%2F1/r/history',
    );
    expect(temporalRunUrl('http://h:8233', 'default', 'w', '')).toBe(
      'http://h:8233/namespaces/default/workflows/w',
    );
    expect(temporalRunUrl('http://h:8233', 'default', '', 'r')).toBeNull();
  });

  it('cairn trace prints the indented chain with UI links, or JSON', async () => {
    const c = await chain();
    const out: string[] = [];
    const ctx: CliContext = {
      config: () =>
        loadConfig({
          DATABASE_URL: db.url,
          TEMPORAL_UI_URL: 'http://ui.test:8233',
          TEMPORAL_NAMESPACE: 'ns-1',
        }),
      io: { out: (l) => out.push(l), err: (l) => out.push(l) },
      root: process.cwd(),
    };
    expect(await traceCommand.run([`company/${c.company.entityId}`, 'hq'], ctx)).toBe(0);
    const text = out.join('\n');
    expect(text).toContain(`company/${c.company.entityId}.hq = "Berlin"`);
    expect(text).toContain('ui http://ui.test:8233/namespaces/ns-1/workflows/wf-r/run-r/history');
    expect(text).toMatch(/\n {2}↳ [0-9a-f-]{36} {2}assertion document\.fact@1/);
    expect(text).toMatch(/\n {6}↳ [0-9a-f-]{36} {2}assertion document\.fact@1/);
    expect(text).toContain('source url https://example.com/acme (about page)');
    expect(text).toContain('"Paris"  by rival (researcher) v1  [last-writer-wins]');

    out.length = 0;
    expect(await traceCommand.run([`company/${c.company.entityId}`, 'hq', '--json'], ctx)).toBe(0);
    expect(JSON.parse(out.join('\n'))).toMatchObject({
      observationId: c.root,
      derivedFrom: [{ observationId: c.d1 }],
    });

    out.length = 0;
    expect(await traceCommand.run([`company/${c.company.entityId}`, 'missing'], ctx)).toBe(1);
    expect(out.join('\n')).toContain('has no field "missing"');
  });
});

function only(nodes: TraceNode[]): TraceNode {
  expect(nodes).toHaveLength(1);
  return nodes[0]!;
}

function countNodes(n: TraceNode): number {
  return 1 + n.derivedFrom.reduce((sum, c) => sum + countNodes(c), 0);
}

/** Runs one statement as the superuser with the append-only triggers off. */
async function forge(sql: string, params: unknown[]): Promise<void> {
  const client = await db.adminPool.connect();
  try {
    await client.query('begin');
    await client.query('alter table cairn.observations disable trigger user');
    await client.query(sql, params);
    await client.query('alter table cairn.observations enable trigger user');
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  } finally {
    client.release();
  }
}
