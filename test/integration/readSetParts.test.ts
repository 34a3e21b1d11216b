/**
 * Migration 023 (read-set entries stored as one row per recording, read_set_entries a view):
 * - a database holding read sets recorded before it answers the same after it: every entry, every
 *   read set (getReadSet, readSetOfObservation) and every blast radius, as the owner and as the
 *   application role with a narrow grant;
 * - the new writer stores what the old one stored, for the same calls (duplicates, fields NULL
 *   or odd, an attempt recording twice, a refusal).
 */
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closureOf } from '../../src/store/blastRadius';
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from '../../src/store/migrate';
import { getReadSet, readSetOfObservation } from '../../src/store/readSets';
import { createEmptyDatabase } from '../helpers/database';

const OBSERVATIONS = 60;
const ENTITIES = 10;
const TASKS = 3;

/** A small deterministic PRNG (mulberry32), so both databases receive exactly the same calls. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIELD_CHOICES: (string[] | null)[] = [null, ['a'], ['b'], ['a', 'b'], ['a,b', 'quo"te'], []];

interface Call {
  kind: 'record' | 'refusal';
  n: number;
  entries: { t: string; i: string; v: number; f: string[] | null }[];
}

/** Read sets of attempts 10..59: 1–5 entries each (some duplicated), some recorded twice, a few refusals. */
function calls(): Call[] {
  const rnd = prng(23);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const entry = () => ({
    t: 'deal',
    i: `e${Math.floor(rnd() * ENTITIES)}`,
    v: Math.floor(rnd() * 7),
    f: pick(FIELD_CHOICES),
  });
  const out: Call[] = [];
  for (let n = ENTITIES; n < OBSERVATIONS; n++) {
    const entries = Array.from({ length: 1 + Math.floor(rnd() * 5) }, entry);
    if (rnd() < 0.3) entries.push({ ...entries[0]!, f: pick(FIELD_CHOICES) });
    out.push({ kind: n % 17 === 0 ? 'refusal' : 'record', n, entries });
    if (rnd() < 0.3) out.push({ kind: 'record', n, entries: [...entries.slice(0, 1), entry(), entry()] });
  }
  return out;
}

const literal = (f: string[] | null) =>
  f === null ? null : `{${f.map((x) => `"${x.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`).join(',')}}`;

async function record(client: pg.ClientBase, c: Call): Promise<void> {
  const task = `t${c.n % TASKS}`;
  const e = c.entries;
  if (c.kind === 'record') {
    await client.query(
      `select * from cairn.record_read_set('w', 'r', $1, 1, $2, 'role', 'agent', $3::text[], $4::text[], $5::int[],
         $6::text[], '{}', '{}', $7::text[], $8::text[])`,
      [
        `a${c.n}`,
        task,
        e.map((x) => x.t),
        e.map((x) => x.i),
        e.map((x) => x.v),
        e.map((x) => literal(x.f)),
        [`k${c.n}`],
        ['off'],
      ],
    );
  } else {
    await client.query(
      `select cairn.record_stale_refusal('w', 'r', $1, 1, $2, 'role', 'agent', $3::jsonb, $4::text[], '[]'::jsonb)`,
      [`a${c.n}`, task, JSON.stringify(e.map((x) => ({ t: x.t, i: x.i, v: x.v, f: x.f }))), [`k${c.n}`]],
    );
  }
}

/** Observation n: entity e(n mod 10) at version n div 10 + 1, written by attempt a<n> of task t(n mod 3). */
const OBSERVATIONS_SQL = `
  set session_replication_role = replica;
  insert into cairn.observations (id, entity_type, entity_id, entity_version, type, schema_version, kind, fields, scope,
    task_key, workflow_id, run_id, activity_id, attempt, agent_id, role, derived_from, observed_at, idempotency_key,
    content_hash, prev_hash, chain_hash)
  select md5('o' || n)::uuid, 'deal', 'e' || (n % ${ENTITIES}), n / ${ENTITIES} + 1, 'deal.facts', 1, 'assertion',
         case when n % 2 = 0 then '{"a": 1}'::jsonb else '{"b": 1}'::jsonb end, 'task', 't' || (n % ${TASKS}),
         'w', 'r', 'a' || n, 1, 'agent', 'role',
         case when n >= 20 and n % 7 = 0 then array[md5('o' || (n - 13))::uuid] else '{}'::uuid[] end,
         now(), 'k' || n, h, '', encode(sha256(convert_to(h, 'UTF8')), 'hex')
    from generate_series(0, ${OBSERVATIONS - 1}) n cross join lateral (select md5('c' || n) || md5('d' || n) as h) y;
  reset session_replication_role;`;

interface Answers {
  entries: unknown[];
  readSets: unknown[];
  ofObservation: unknown[];
  closures: unknown[];
}

/** Everything a reader can ask, keyed by attempt (read set ids are random per database). */
async function answers(pool: pg.Pool, grant?: string[]): Promise<Answers> {
  const client = await pool.connect();
  try {
    if (grant) {
      await client.query('begin');
      await client.query(
        `select set_config('role', 'cairn_app', true), set_config('cairn.read_scopes', $1, true),
                set_config('cairn.write_scopes', '', true), set_config('cairn.task_key', '', true)`,
        [`{${grant.join(',')}}`],
      );
    }
    const entries = (
      await client.query(
        `select r.activity_id, e.entity_type, e.entity_id, e.version, e.fields
           from cairn.read_set_entries e join cairn.read_sets r on r.id = e.read_set_id
          order by 1, 2, 3, 4`,
      )
    ).rows;
    const ids = (await client.query(`select id, activity_id from cairn.read_sets order by activity_id`))
      .rows as {
      id: string;
      activity_id: string;
    }[];
    const strip = (rs: Awaited<ReturnType<typeof getReadSet>>) =>
      rs === undefined ? undefined : { ...rs, id: undefined, createdAt: undefined };
    const readSets = [];
    for (const r of ids) readSets.push([r.activity_id, strip(await getReadSet(client, r.id))]);
    const obs = (await client.query(`select id, idempotency_key from cairn.observations order by seq`))
      .rows as {
      id: string;
      idempotency_key: string;
    }[];
    const ofObservation = [];
    for (const o of obs)
      ofObservation.push([o.idempotency_key, strip(await readSetOfObservation(client, o.id))]);
    const closures = [];
    for (const o of obs.slice(0, 2 * ENTITIES)) {
      for (const cutoff of [null, 3]) {
        const c = await closureOf(client, [{ observationId: o.id, retractedAtVersion: cutoff }]);
        // Which parent (and edge) a node is reached by among those of the same depth is not
        // determined (DISTINCT ON without an order): the nodes and their depths are.
        const nodes = c.nodes.map((x) => `${x.observationId}@${x.depth}`).sort();
        closures.push([o.idempotency_key, cutoff, nodes]);
      }
    }
    if (grant) await client.query('rollback');
    return { entries, readSets, ofObservation, closures };
  } finally {
    client.release();
  }
}

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A database migrated up to (and including) migration `upTo`. */
async function databaseAt(upTo: number): Promise<{ url: string; pool: pg.Pool }> {
  const db = await createEmptyDatabase();
  cleanups.push(() => db.drop());
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-migrations-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  for (const f of await readMigrations())
    if (f.version > upTo) await rm(path.join(dir, path.basename(f.name) + '.sql'), { force: true });
  await migrate(db.url, { migrationsDir: dir });
  const pool = new pg.Pool({ connectionString: db.url, max: 2 });
  cleanups.push(() => pool.end());
  return { url: db.url, pool };
}

async function fill(pool: pg.Pool): Promise<void> {
  await pool.query(OBSERVATIONS_SQL);
  const client = await pool.connect();
  try {
    for (const c of calls()) await record(client, c);
  } finally {
    client.release();
  }
}

describe('migration 023: read-set entries as one row per recording', () => {
  let old: { url: string; pool: pg.Pool };
  let before: Answers;
  let beforeNarrow: Answers;

  beforeAll(async () => {
    old = await databaseAt(22);
    await fill(old.pool);
    before = await answers(old.pool);
    beforeNarrow = await answers(old.pool, ['task:t1']);
    await migrate(old.url);
  }, 120_000);

  it('records what the test meant to record (sanity)', () => {
    expect(before.entries.length).toBeGreaterThan(100);
    expect(before.closures.some((c) => (c as unknown[][])[2]!.length > 2)).toBe(true);
    expect(beforeNarrow.entries.length).toBeGreaterThan(0);
    expect(beforeNarrow.entries.length).toBeLessThan(before.entries.length);
  });

  it('answers the same after migrating: entries, read sets, blast radius (owner)', async () => {
    expect(await answers(old.pool)).toEqual(before);
  });

  it('answers the same to the application role with a narrow grant (row-level security through the view)', async () => {
    expect(await answers(old.pool, ['task:t1'])).toEqual(beforeNarrow);
  });

  it('stores what 022 stored for the same calls', async () => {
    const fresh = await databaseAt(Infinity);
    await fill(fresh.pool);
    expect(await answers(fresh.pool)).toEqual(before);
    expect(await answers(fresh.pool, ['task:t1'])).toEqual(beforeNarrow);
    // One part per recording that added entries, never an entry twice.
    const { rows } = await fresh.pool.query(
      `select count(*)::int as dup from (select read_set_id, entity_type, entity_id, version
                                          from cairn.read_set_entries group by 1, 2, 3, 4 having count(*) > 1) d`,
    );
    expect(rows[0].dup).toBe(0);
  }, 120_000);

  it('keeps the stored entries append-only', async () => {
    for (const sql of [
      'delete from cairn.read_set_parts',
      'update cairn.read_set_parts set versions = versions',
      'truncate cairn.read_set_parts',
      'delete from cairn.read_set_entries',
      'update cairn.read_set_entries set version = version',
    ])
      await expect(old.pool.query(sql)).rejects.toThrow(/append-only/);
  });
});
