/**
 * Tamper evidence: rows changed behind the append-only trigger's back (as a superuser with the
 * triggers disabled) are named by verifyLog — exactly those rows, not their innocent neighbours.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CliContext } from '../../src/cli/command';
import { verifyCommand } from '../../src/cli/commands/verify';
import { loadConfig } from '../../src/config';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { appendObservations } from '../../src/store/observations/append';
import { chainHash, provenanceHash } from '../../src/store/observations/hash';
import { getEntityHistory } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { recomputeContentHash, verifyLog, type VerifyResult } from '../../src/store/observations/verify';
import { testDatabase, type TestDatabase } from '../helpers/database';

const registry = new ObservationTypeRegistry([
  defineObservationType({
    name: 'company.profile',
    version: 1,
    entity: 'company',
    fields: { hq: z.string().optional(), employees: z.number().optional() },
  }),
]);

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

const entities: EntityRef[] = [];
let rows = 0;

/** An entity with `n` observations, appended in two batches so the chain crosses a batch. */
async function seed(name: string, n: number): Promise<{ ref: EntityRef; ids: string[] }> {
  const ref: EntityRef = { entityType: 'company', entityId: `${name}-${randomUUID().slice(0, 8)}` };
  const ids: string[] = [];
  for (const part of [Math.ceil(n / 2), Math.floor(n / 2)]) {
    if (part === 0) continue;
    const items = Array.from({ length: part }, (_, i) => ({
      ...ref,
      type: 'company.profile',
      fields: { hq: `city-${ids.length + i}`, employees: ids.length + i },
    }));
    const ctx = {
      provenance: {
        taskKey: 't',
        workflowId: 'w',
        runId: 'r',
        activityId: 'a',
        attempt: 1,
        agentId: 'g',
        role: 'x',
      },
      idempotencyPrefix: `verify:${randomUUID()}`,
      observedAt: new Date().toISOString(),
    };
    ids.push(...(await appendObservations(db.pool, registry, items, ctx)).map((a) => a.id));
  }
  entities.push(ref);
  rows += n;
  return { ref, ids };
}

const named = (r: VerifyResult) =>
  r.problems.map((p) => ({ entity: p.entity, version: p.version, observationId: p.observationId }));
const label = (ref: EntityRef) => `${ref.entityType}/${ref.entityId}`;

/** Runs statements as the superuser with the append-only triggers off, in one transaction. */
async function forge(statements: [string, unknown[]][]): Promise<void> {
  const client = await db.adminPool.connect();
  try {
    await client.query('begin');
    await client.query('alter table cairn.observations disable trigger user');
    for (const [sql, params] of statements) await client.query(sql, params);
    await client.query('alter table cairn.observations enable trigger user');
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  } finally {
    client.release();
  }
}

function cli() {
  const out: string[] = [];
  const ctx: CliContext = {
    config: () => loadConfig({ DATABASE_URL: db.url }),
    io: { out: (l) => out.push(l), err: (l) => out.push(l) },
    root: process.cwd(),
  };
  return { ctx, out };
}

describe('verifyLog', () => {
  const tampered: { entity: string; version: number; observationId: string }[] = [];

  it('passes an intact log, whatever the page size', async () => {
    for (const [name, n] of [
      ['a', 1],
      ['b', 5],
      ['c', 2],
      ['d', 7],
    ] as const)
      await seed(name, n);
    for (const pageSize of [1, 2, 3, 1000]) {
      expect(await verifyLog(db.pool, { pageSize })).toEqual({
        checked: rows,
        entities: entities.length,
        snapshots: 0,
        types: 1,
        problems: [],
      });
    }
    const one = entities[1]!;
    expect(await verifyLog(db.pool, { entity: one })).toEqual({
      checked: 5,
      entities: 1,
      snapshots: 0,
      types: 0,
      problems: [],
    });
    const run = cli();
    expect(await verifyCommand.run([], run.ctx)).toBe(0);
    expect(run.out.join('\n')).toMatch(
      new RegExp(`checked ${rows} observation\\(s\\) in ${entities.length} entities: log intact`),
    );
  });

  it('names a row whose fields were edited', async () => {
    const { ref, ids } = await seed('fields', 5);
    await forge([
      [
        `update cairn.observations set fields = jsonb_set(fields, '{hq}', '"Forged"') where id = $1`,
        [ids[2]],
      ],
    ]);
    const result = await verifyLog(db.pool, { entity: ref });
    expect(named(result)).toEqual([{ entity: label(ref), version: 3, observationId: ids[2] }]);
    expect(result.problems[0]!.problem).toMatch(/content changed after append/);
    tampered.push(...named(result));
  });

  it('names a row whose prev/chain hashes were rewritten (consistently, so the CHECK passes)', async () => {
    const { ref, ids } = await seed('relinked', 4);
    await forge([
      [
        `update cairn.observations set prev_hash = repeat('0', 64), chain_hash = encode(sha256(convert_to(repeat('0', 64) || content_hash || coalesce(provenance_hash, ''), 'UTF8')), 'hex') where id = $1`,
        [ids[1]],
      ],
    ]);
    const result = await verifyLog(db.pool, { entity: ref });
    expect(named(result)).toEqual([{ entity: label(ref), version: 2, observationId: ids[1] }]);
    expect(result.problems[0]!.problem).toMatch(/does not link to version 1/);
    tampered.push(...named(result));
  });

  it('names a row whose chain hash alone was altered (CHECK constraint dropped)', async () => {
    const { ref, ids } = await seed('chain', 4);
    const { rows: checks } = await db.adminPool.query<{ conname: string; def: string }>(
      `select conname, pg_get_constraintdef(oid) as def from pg_constraint where conrelid = 'cairn.observations'::regclass and contype = 'c' and pg_get_constraintdef(oid) like '%chain_hash%'`,
    );
    expect(checks).toHaveLength(1);
    const { conname, def } = checks[0]!;
    await forge([
      [`alter table cairn.observations drop constraint "${conname}"`, []],
      [`update cairn.observations set chain_hash = repeat('f', 64) where id = $1`, [ids[2]]],
      [`alter table cairn.observations add constraint "${conname}" ${def} not valid`, []],
    ]);
    const result = await verifyLog(db.pool, { entity: ref });
    expect(named(result)).toEqual([{ entity: label(ref), version: 3, observationId: ids[2] }]);
    expect(result.problems[0]!.problem).toMatch(/is not sha256\(prev_hash \|\| content_hash\)/);
    tampered.push(...named(result));
  });

  it('names a row forged wholesale: content, content hash and chain hash all recomputed', async () => {
    for (const [name, n, at] of [
      ['forged-mid', 4, 1],
      ['forged-last', 3, 2],
    ] as const) {
      const { ref, ids } = await seed(name, n);
      const row = (await getEntityHistory(db.pool, ref))[at]!;
      const fields = { ...row.fields, hq: 'Forged' };
      const content = recomputeContentHash({ ...row, fields });
      await forge([
        [
          `update cairn.observations set fields = $2, content_hash = $3, chain_hash = $4 where id = $1`,
          [
            row.id,
            JSON.stringify(fields),
            content,
            chainHash(
              row.prevHash,
              content,
              provenanceHash({ ...row.provenance, idempotencyKey: row.idempotencyKey }),
            ),
          ],
        ],
      ]);
      const result = await verifyLog(db.pool, { entity: ref });
      // The last row rewritten with every hash recomputed cannot be told from an edited head row
      // by the database alone: the head is named, with both explanations (an anchor tells which).
      const last = at === n - 1;
      expect(named(result)).toEqual([
        last
          ? { entity: `${label(ref)} (head)`, version: at + 1, observationId: '' }
          : { entity: label(ref), version: at + 1, observationId: ids[at] },
      ]);
      expect(result.problems[0]!.problem).toMatch(/rewritten/);
      tampered.push(...named(result));
    }
  });

  it('reports deleted rows: a gap in the middle, a missing tail, a whole entity', async () => {
    const mid = await seed('gap', 3);
    const tail = await seed('tail', 3);
    const whole = await seed('whole', 2);
    await forge([
      ['delete from cairn.observations where id = $1', [mid.ids[1]]],
      ['delete from cairn.observations where id = $1', [tail.ids[2]]],
      ['delete from cairn.observations where id = any($1::uuid[])', [whole.ids]],
    ]);
    const gap = await verifyLog(db.pool, { entity: mid.ref });
    expect(named(gap)).toEqual([{ entity: label(mid.ref), version: 3, observationId: mid.ids[2] }]);
    expect(gap.problems[0]!.problem).toMatch(/versions 2\.\.2 are missing/);
    const cut = await verifyLog(db.pool, { entity: tail.ref });
    expect(named(cut)).toEqual([{ entity: label(tail.ref), version: 3, observationId: '' }]);
    expect(cut.problems[0]!.problem).toMatch(/entity_heads is at version 3 but the log ends at version 2/);
    const gone = await verifyLog(db.pool, { entity: whole.ref });
    expect(gone).toEqual({
      checked: 0,
      entities: 1,
      snapshots: 0,
      types: 0,
      problems: [
        {
          entity: label(whole.ref),
          version: 2,
          observationId: '',
          problem: expect.stringMatching(/no observations/),
        },
      ],
    });
    tampered.push(...named(gap), ...named(cut), ...named(gone));
  });

  it('walks the whole log in small pages and names exactly the tampered rows', async () => {
    for (const pageSize of [2, 1000]) {
      const result = await verifyLog(db.pool, { pageSize });
      const sort = (list: typeof tampered) =>
        [...list].sort((x, y) => (x.entity + x.version < y.entity + y.version ? -1 : 1));
      expect(sort(named(result))).toEqual(sort(tampered));
      expect(result.entities).toBe(entities.length);
    }
    const run = cli();
    expect(await verifyCommand.run([], run.ctx)).toBe(1);
    const text = run.out.join('\n');
    expect(text).toContain(`${tampered.length} problem(s)`);
    for (const t of tampered) if (t.observationId) expect(text).toContain(t.observationId);
    const json = cli();
    expect(await verifyCommand.run(['--json'], json.ctx)).toBe(1);
    expect((JSON.parse(json.out.join('\n')) as VerifyResult).problems).toHaveLength(tampered.length);
  });
});
