/**
 * Micro-benchmark of the append path's client side, no database: what `prepareBatch` (item
 * shape, the type's field schema, hostile strings, sizes, canonical JSON, content hash) costs
 * per 1000-item batch and per single item, and what canonicalJson and contentHash cost alone.
 * Measured in CPU time of this process (not wall time), so a busy machine inflates it less.
 *
 *   npx tsx bench/appendValidation.micro.ts [--rounds 200]
 *
 * Not part of `cairn bench` (no baseline to compare with): a quick check that a change to
 * src/store/observations/{validate,jsonValue,hash}.ts or src/shared/canonicalJson.ts did not
 * make validation the bottleneck again. For reference, on a loaded 2-CPU machine: about 10 ms
 * per 1000-item batch and 20 µs per single item.
 */
import { parseArgs } from 'node:util';
import { canonicalJson } from '../src/shared/canonicalJson';
import type { Json } from '../src/shared/observation';
import { contentHash, type HashedContent } from '../src/store/observations/hash';
import type { AppendContext, AppendItem } from '../src/store/observations/types';
import { prepareBatch } from '../src/store/observations/validate';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from './fixtures';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '200' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 10) throw new Error('--rounds must be an integer of at least 10');

const ctx = (): AppendContext => ({
  provenance: {
    taskKey: 'micro',
    workflowId: 'micro',
    runId: '',
    activityId: 'a',
    attempt: 1,
    agentId: 'micro',
    role: 'micro',
  },
  idempotencyPrefix: 'micro:1',
  observedAt: new Date().toISOString(),
});
const batch: AppendItem[] = Array.from({ length: 1000 }, (_, i) => ({
  entityType: BENCH_ENTITY_TYPE,
  entityId: `micro-${i % 10}`,
  type: benchItem.name,
  fields: benchFields(i),
}));
const contents: HashedContent[] = batch.map((item) => ({
  entityType: item.entityType,
  entityId: item.entityId,
  type: item.type,
  schemaVersion: benchItem.version,
  kind: 'assertion',
  fields: item.fields as { [key: string]: Json },
  scope: 'task',
  derivedFrom: [],
  source: null,
  targetId: null,
  expectedVersion: null,
}));

const cases: [name: string, perRound: number, unit: string, run: () => void][] = [
  ['prepareBatch, one batch of 1000', 1, 'ms/batch', () => void prepareBatch(benchTypes, batch, ctx())],
  [
    'prepareBatch, 200 single items',
    200,
    'µs/item',
    () => {
      for (let i = 0; i < 200; i++) prepareBatch(benchTypes, [batch[i]!], ctx());
    },
  ],
  [
    'canonicalJson of 1000 contents',
    1,
    'ms/1000',
    () => {
      for (const c of contents) canonicalJson(c as unknown as Json);
    },
  ],
  [
    'contentHash of 1000 contents',
    1,
    'ms/1000',
    () => {
      for (const c of contents) contentHash(c);
    },
  ],
];

const samples = new Map<string, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const [name, perRound, unit, run] of cases) {
    const before = process.cpuUsage();
    run();
    const used = process.cpuUsage(before);
    const micros = (used.user + used.system) / perRound;
    samples.set(name, [...(samples.get(name) ?? []), unit.startsWith('ms') ? micros / 1000 : micros]);
  }
}

// The first third is warm-up (JIT); medians of the rest.
for (const [name, , unit] of cases) {
  const measured = (samples.get(name) ?? []).slice(Math.floor(rounds / 3)).sort((a, b) => a - b);
  const median = measured[Math.floor(measured.length / 2)] ?? NaN;
  console.log(`${name.padEnd(34)} ${median.toFixed(2).padStart(8)} ${unit}`);
}
