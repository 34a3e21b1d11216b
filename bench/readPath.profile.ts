/**
 * Where an entity read's time goes (issue 14, "entity read vs raw SELECT"): getEntityState of a
 * 1,000-observation entity against the raw SELECT by key of its state stored as one jsonb
 * document, and the read's parts (the one statement alone, the read without its span), rounds
 * interleaved, with the CPU of this process and of the Postgres backend per op. In a database
 * of its own that it creates and drops:
 *
 *   npx tsx bench/readPath.profile.ts [--rounds 7] [--ops 500] [--database cairn_read_profile]
 *
 * Not part of `cairn bench`: an experiment that names the read's remaining cost (bench/README.md).
 * Run it under `node --cpu-prof` (`node --cpu-prof --import tsx bench/readPath.profile.ts`) for
 * the Node side's profile.
 */
import { parseArgs } from 'node:util';
import type { EntityRef } from '../src/shared/observation';
import { policyResolverFor } from '../src/shared/reducer';
import { appendObservations } from '../src/store/observations/append';
import { getEntityState, getEntityStateUntraced, latestQuery } from '../src/store/observations/read';
import { registerObservationTypes } from '../src/store/observations/registerTypes';
import { createPool } from '../src/store/pool';
import { readEntityInScope } from '../src/store/scope';
import { createCpuProbe } from './cpu';
import { createProfileDatabase } from './profileDatabase';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';
import { median } from './harness';
import { benchProvenance } from './raw';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    ops: { type: 'string', default: '500' },
    history: { type: 'string', default: '1000' },
    keep: { type: 'boolean', default: false },
    database: { type: 'string', default: 'cairn_read_profile' },
  },
});
const rounds = Number(values.rounds);
const ops = Number(values.ops);
const history = Number(values.history);
const DB = values.database;
const policyOf = policyResolverFor(benchTypes);

async function main(): Promise<void> {
  const scratch = await createProfileDatabase(DB);
  const url = scratch.url;
  // One connection each, so one backend serves each variant's statements.
  const pool = createPool(url, { max: 1, scopes: 'all', applicationName: 'cairn-bench-profile' });
  const owner = createPool(url, {
    max: 1,
    applicationRole: null,
    applicationName: 'cairn-bench-owner',
  });
  const probe = await createCpuProbe(url);
  try {
    await registerObservationTypes(pool, benchTypes);
    const ref: EntityRef = { entityType: BENCH_ENTITY_TYPE, entityId: 'profile' };
    const scope = 'task:profile';
    for (let done = 0; done < history; done += 1000) {
      const count = Math.min(1000, history - done);
      await appendObservations(
        pool,
        benchTypes,
        Array.from({ length: count }, (_, i) => ({
          ...ref,
          type: benchItem.name,
          fields: benchFields(done + i),
          scope,
        })),
        {
          provenance: { ...benchProvenance('profile', `a${done}`), taskKey: 'profile' },
          idempotencyPrefix: `profile:${done}`,
          observedAt: new Date().toISOString(),
        },
      );
    }
    const state = await getEntityState(pool, policyOf, ref);
    await owner.query(`create schema bench_raw;
      create table bench_raw.documents (key text primary key, doc jsonb not null);
      grant usage on schema bench_raw to cairn_app;
      grant select on bench_raw.documents to cairn_app;`);
    await owner.query('insert into bench_raw.documents (key, doc) values ($1, $2)', [
      'profile',
      JSON.stringify(state),
    ]);
    const grant = { read: ['global', scope], write: [scope] };

    const variants: { name: string; op: () => Promise<unknown> }[] = [
      {
        name: 'raw SELECT of the document',
        op: () =>
          pool.query({ text: 'select doc from bench_raw.documents where key = $1', values: ['profile'] }),
      },
      { name: 'getEntityState', op: () => getEntityState(pool, policyOf, ref) },
      { name: 'getEntityState without its span', op: () => getEntityStateUntraced(pool, policyOf, ref) },
      { name: 'the read statement alone (pool.query)', op: () => pool.query(latestQuery(ref)) },
      { name: 'readEntityInScope', op: () => readEntityInScope(pool, grant, 'profile', policyOf, ref) },
      {
        name: 'getEntityState as the owner (no role, no RLS)',
        op: () => getEntityState(owner, policyOf, ref),
      },
    ];
    const wall = new Map<string, number[]>();
    const node = new Map<string, number[]>();
    const postgres = new Map<string, number[]>();
    for (const v of variants) for (let i = 0; i < 50; i++) await v.op();
    for (let r = 0; r < rounds; r++) {
      for (const v of variants) {
        const before = await probe.read();
        const t0 = performance.now();
        for (let i = 0; i < ops; i++) await v.op();
        const t1 = performance.now();
        const after = await probe.read();
        const push = (m: Map<string, number[]>, x: number) => m.set(v.name, [...(m.get(v.name) ?? []), x]);
        push(wall, ((t1 - t0) * 1000) / ops);
        push(node, ((after.nodeMs - before.nodeMs) * 1000) / ops);
        push(postgres, ((after.postgresMs - before.postgresMs) * 1000) / ops);
      }
    }
    const rawWall = median(wall.get(variants[0]!.name) ?? []);
    console.log(`history ${history}, ${rounds} rounds of ${ops} sequential ops (medians, µs/op)`);
    console.log(
      'variant'.padEnd(42),
      'wall'.padStart(7),
      'vs raw'.padStart(7),
      'pg cpu'.padStart(7),
      'node cpu'.padStart(9),
    );
    for (const v of variants) {
      const w = median(wall.get(v.name) ?? []);
      console.log(
        v.name.padEnd(42),
        w.toFixed(0).padStart(7),
        `${(rawWall / w).toFixed(2)}×`.padStart(7),
        median(postgres.get(v.name) ?? [])
          .toFixed(0)
          .padStart(7),
        median(node.get(v.name) ?? [])
          .toFixed(0)
          .padStart(9),
      );
    }
  } finally {
    await probe.close();
    await pool.end();
    await owner.end();
    await scratch.drop({ keep: Boolean(values.keep) });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
