/**
 * What the benchmarks write and run: one observation type with a realistic mix of field
 * policies, a generator of its fields, and a no-op agent for the task-step benchmarks.
 */
import { z } from 'zod';
import { defineAgent } from '../src/agent';
import { defineObservationType, ObservationTypeRegistry } from '../src/shared/observationTypes';
import type { TaskInput } from '../src/shared/task';

export const BENCH_ENTITY_TYPE = 'bench';

/**
 * The everyday type: every policy whose state stays bounded however long the history (contested
 * values are capped), so reads and reductions of it show what the log and the snapshots cost.
 */
export const benchItem = defineObservationType({
  name: 'bench.item',
  version: 1,
  entity: BENCH_ENTITY_TYPE,
  description: 'Synthetic observation written by `cairn bench`.',
  fields: {
    n: z.number().int().nonnegative(),
    label: z.string().min(1).max(200),
    score: z.number(),
    status: z.enum(['new', 'open', 'closed']),
  },
  policies: { n: 'max', label: 'last-writer-wins', score: 'min', status: 'first-writer-wins' },
});

/**
 * A type with a set-union field: the state keeps every contributor of every element, so it
 * grows with the history. Measured separately, at sizes that stay affordable.
 */
export const benchTagged = defineObservationType({
  name: 'bench.tagged',
  version: 1,
  entity: BENCH_ENTITY_TYPE,
  description: 'Synthetic observation with a set-union field, written by `cairn bench`.',
  fields: {
    n: z.number().int().nonnegative(),
    tags: z.array(z.string().max(40)).max(10),
  },
  policies: { n: 'max', tags: 'set-union' },
});

export const benchTypes = new ObservationTypeRegistry([benchItem, benchTagged]);

const STATUSES = ['new', 'open', 'closed'] as const;
const TAGS = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta'];

/** Fields of the i-th `bench.item`: small, varied, deterministic. */
export function benchFields(i: number): {
  n: number;
  label: string;
  score: number;
  status: (typeof STATUSES)[number];
} {
  return {
    n: i,
    label: `observation ${i} of a synthetic entity`,
    score: (i * 7919) % 1000,
    status: STATUSES[i % STATUSES.length]!,
  };
}

/** Fields of the i-th `bench.tagged`: two tags from a vocabulary of eight. */
export function taggedFields(i: number): { n: number; tags: string[] } {
  return { n: i, tags: [TAGS[i % TAGS.length]!, TAGS[(i * 3 + 1) % TAGS.length]!] };
}

export const BENCH_ROLE = 'bench-noop';

/** An agent that does nothing: what a task step costs beyond the bare activity. */
export const benchNoopAgent = defineAgent({
  role: BENCH_ROLE,
  description: 'Does nothing; used by `cairn bench` to measure step overhead.',
  async handle() {
    return null;
  },
});

export const BENCH_SIZED_ROLE = 'bench-sized';

/** Returns an output of `bytes` characters (claim-check benchmark). */
export const benchSizedAgent = defineAgent({
  role: BENCH_SIZED_ROLE,
  description: 'Returns an output of the requested size; used by `cairn bench` to measure history bytes.',
  async handle(ctx) {
    const bytes = (ctx.step.input as { bytes?: number } | null)?.bytes ?? 0;
    return { blob: 'x'.repeat(bytes) };
  },
});

/** A chain of `steps` steps, each returning an output of `bytes` characters. */
export function benchSizedTask(taskKey: string, steps: number, bytes: number): TaskInput {
  return {
    taskKey,
    goal: `bench: ${steps} step(s) with ${bytes}-byte outputs`,
    steps: Array.from({ length: steps }, (_, i) => ({
      id: `s${i + 1}`,
      role: BENCH_SIZED_ROLE,
      title: `output ${i + 1}`,
      input: { bytes },
      dependsOn: i === 0 ? [] : [`s${i}`],
    })),
    rolePolicies: { [BENCH_SIZED_ROLE]: { timeoutMs: 30_000 } },
  };
}

/** A task of `steps` no-op steps run one after another (each depends on the previous one). */
export function benchTask(taskKey: string, steps: number): TaskInput {
  return {
    taskKey,
    goal: `bench: ${steps} no-op step${steps === 1 ? '' : 's'}`,
    steps: Array.from({ length: steps }, (_, i) => ({
      id: `s${i + 1}`,
      role: BENCH_ROLE,
      title: `no-op ${i + 1}`,
      dependsOn: i === 0 ? [] : [`s${i}`],
    })),
    // The same start-to-close timeout as the bare workflow's activity, so a task the loaded dev
    // server loses is retried after 30 s in both, not after the default 5 minutes here.
    rolePolicies: { [BENCH_ROLE]: { timeoutMs: 30_000 } },
  };
}
