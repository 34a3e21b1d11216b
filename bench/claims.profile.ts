/**
 * Node's side of claim + release and nextFree + release (issue 14, claims round 4): N operations
 * through the store's functions on a pool of `--lanes` connections (the bench uses 8) against an
 * existing, migrated database, printing Node CPU per operation (process.cpuUsage). Run it under
 * `node --import tsx --cpu-prof` to see where Node's time goes:
 *
 *   node --import tsx --cpu-prof bench/claims.profile.ts --database cairn_bench_claims --ops 20000
 *
 * Not part of `cairn bench`: an experiment that names the remaining cost (see bench/README.md).
 */
import { parseArgs } from 'node:util';
import { claim, nextFree, release } from '../src/store/claims';
import { createPool } from '../src/store/pool';

const { values } = parseArgs({
  options: {
    database: { type: 'string', default: 'cairn_bench_claims' },
    ops: { type: 'string', default: '10000' },
    lanes: { type: 'string', default: '8' },
    only: { type: 'string', default: 'claim,next' },
  },
});
const ops = Number(values.ops);
const lanes = Number(values.lanes);
const url = `postgres://root@127.0.0.1:5432/${values.database}`;
const ids = Array.from({ length: 50 }, (_, i) => `r${i}`);
const run = `p${process.pid}`;

async function loop(n: number, op: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < n) await op(next++);
    }),
  );
}

async function main(): Promise<void> {
  const pool = createPool(url, { max: lanes, applicationName: 'cairn-bench-profile' });
  try {
    const claimOp = async (i: number) => {
      const resource = `prof/${run}/${ids[i % 50]!}`;
      const holder = `h-${i}`;
      const r = await claim(pool, resource, { holder, ttlMs: 30_000 });
      if (r.granted) await release(pool, resource, { holder, token: r.token });
    };
    const nextOp = async (i: number) => {
      const holder = `n-${i}`;
      const g = await nextFree(pool, `prof.${run}`, ids, { holder, ttlMs: 30_000 });
      if (g) await release(pool, g.resource, { holder, token: g.token });
    };
    for (const which of values.only.split(',')) {
      const op = which === 'next' ? nextOp : claimOp;
      await loop(Math.min(1000, ops), op);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await loop(ops, op);
      const c = process.cpuUsage(c0);
      const ms = performance.now() - t0;
      console.log(
        `${which}: ${ops} ops, ${((c.user + c.system) / ops).toFixed(1)} µs Node CPU/op, ${((ms * 1000) / ops).toFixed(0)} µs wall/op`,
      );
    }
  } finally {
    await pool.end();
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
