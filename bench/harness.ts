/**
 * A tiny benchmark runner. Each benchmark is measured as N rounds of a fixed amount of work;
 * the first round is a discarded warm-up. Rounds of every selected benchmark are interleaved
 * (round 1 of each, then round 2 of each, with the order rotated every round), so a subject and
 * the baseline it is compared with see the same machine drift. Ratios are paired: the median of
 * subject_i / baseline_i over rounds i. Machines are noisy, so we report medians, not means.
 */
import { performance } from 'node:perf_hooks';

export type Unit = 'ops/s' | 'ms';

/**
 * What a subject must reach, as a ratio to its baseline (in the unit's own terms: for ops/s
 * higher is better, for ms lower is better). `approx`: |ratio - ratio goal| <= tolerance.
 */
export type Goal = { atLeast: number } | { atMost: number } | { approx: number; tolerance: number };

export interface RoundInfo {
  /** 0 is the warm-up round. */
  round: number;
  warmup: boolean;
  /** Units of work this round must do. */
  ops: number;
}

export interface BenchmarkSpec<S> {
  name: string;
  /** The issue or area it belongs to; rows are printed by group. */
  group: string;
  unit: Unit;
  /** Units of work per round (rows, workflows, reads…). */
  ops: number;
  /** What one unit is called, for the table: `rows` → "rows/s". Default `ops`. */
  opName?: string;
  /** Needs a Temporal server (the command skips bringing one up when nothing selected needs it). */
  needsTemporal?: boolean;
  setup?: () => Promise<S>;
  /** Untimed work before each round, e.g. building the rows the round inserts. */
  prepare?: (state: S, round: RoundInfo) => Promise<void> | void;
  /**
   * Does `round.ops` units of work. For unit `ms` it may return per-op latencies (ms); the
   * round's value is then their median, otherwise elapsed time / ops.
   */
  run: (state: S, round: RoundInfo) => Promise<void | number[]>;
  teardown?: (state: S) => Promise<void>;
  baseline?: Benchmark;
  goal?: Goal;
  note?: string;
}

export interface Benchmark {
  readonly kind: 'timed';
  readonly name: string;
  readonly group: string;
  readonly unit: Unit;
  readonly ops: number;
  readonly opName: string;
  readonly needsTemporal: boolean;
  readonly baseline: Benchmark | Metric | undefined;
  readonly goal: Goal | undefined;
  readonly note: string | undefined;
  /** Type-erased lifecycle: setup returns an opaque state handed back to run and teardown. */
  readonly setup: () => Promise<unknown>;
  readonly prepare: (state: unknown, round: RoundInfo) => Promise<void> | void;
  readonly run: (state: unknown, round: RoundInfo) => Promise<void | number[]>;
  readonly teardown: (state: unknown) => Promise<void>;
}

/** A number measured once per run (e.g. history events per step), not timed. */
export interface MetricSpec {
  name: string;
  group: string;
  /** Free text, e.g. `events/step`. */
  unit: string;
  needsTemporal?: boolean;
  measure: () => Promise<number>;
  baseline?: Metric;
  /** Ratio goal; for metrics lower is assumed better unless atLeast is used. */
  goal?: Goal;
  note?: string;
}

export interface Metric {
  readonly kind: 'metric';
  readonly name: string;
  readonly group: string;
  readonly unit: string;
  readonly needsTemporal: boolean;
  readonly baseline: Metric | undefined;
  readonly goal: Goal | undefined;
  readonly note: string | undefined;
  readonly measure: () => Promise<number>;
}

export type BenchEntry = Benchmark | Metric;

export function defineBenchmark<S = void>(spec: BenchmarkSpec<S>): Benchmark {
  if (!Number.isInteger(spec.ops) || spec.ops < 1)
    throw new Error(`benchmark ${spec.name}: ops must be a positive integer`);
  if (spec.baseline && spec.baseline.unit !== spec.unit)
    throw new Error(`benchmark ${spec.name}: baseline ${spec.baseline.name} has another unit`);
  const setup = spec.setup;
  const prepare = spec.prepare;
  const teardown = spec.teardown;
  return {
    kind: 'timed',
    name: spec.name,
    group: spec.group,
    unit: spec.unit,
    ops: spec.ops,
    opName: spec.opName ?? 'ops',
    needsTemporal: spec.needsTemporal ?? false,
    baseline: spec.baseline,
    goal: spec.goal,
    note: spec.note,
    setup: setup ? () => setup() : async () => undefined,
    prepare: prepare ? (state, round) => prepare(state as S, round) : () => undefined,
    run: (state, round) => spec.run(state as S, round),
    teardown: teardown ? (state) => teardown(state as S) : async () => undefined,
  };
}

export function defineMetric(spec: MetricSpec): Metric {
  return {
    kind: 'metric',
    name: spec.name,
    group: spec.group,
    unit: spec.unit,
    needsTemporal: spec.needsTemporal ?? false,
    baseline: spec.baseline,
    goal: spec.goal,
    note: spec.note,
    measure: spec.measure,
  };
}

export interface ResultRow {
  group: string;
  name: string;
  /** `ops/s`, `ms`, or a metric's unit. */
  unit: string;
  /** Display unit, e.g. `rows/s`. */
  label: string;
  median: number | null;
  p95: number | null;
  /** Per-round values after the warm-up (timed) or the single value (metric). */
  samples: number[];
  warmup: number | null;
  baseline: { name: string; median: number | null; label: string } | null;
  ratio: number | null;
  goal: string;
  verdict: 'meets' | 'below' | 'report' | 'error';
  error?: string;
  note?: string;
  /** CPU split between Node and Postgres over the measured rounds (when the run could read it). */
  cpu?: CpuShare;
}

export interface RunOptions {
  /** Measured rounds per benchmark (the warm-up round comes on top). */
  rounds: number;
  log?: (line: string) => void;
  /**
   * CPU time used so far (ms) by this process and by the Postgres backends serving it, read
   * before and after each measured round, so each row can say which side its time went to.
   */
  cpu?: () => Promise<CpuTimes>;
}

export interface CpuTimes {
  nodeMs: number;
  postgresMs: number;
}

/** Where a benchmark's CPU went over its measured rounds: shares of the total, and per op (µs). */
export interface CpuShare {
  nodeShare: number;
  postgresShare: number;
  nodeUsPerOp: number;
  postgresUsPerOp: number;
}

/**
 * The entries `only` selects (case-insensitive substring of `group/name`; several substrings
 * separated by `|` select their union), plus their baselines.
 */
export function selectEntries(all: readonly BenchEntry[], only: string | undefined): BenchEntry[] {
  const wanted = new Set<BenchEntry>();
  const add = (e: BenchEntry) => {
    if (wanted.has(e)) return;
    wanted.add(e);
    if (e.baseline) add(e.baseline);
  };
  const needles = only
    ?.toLowerCase()
    .split('|')
    .filter((x) => x.length > 0);
  const selected = (e: BenchEntry) =>
    !needles?.length || needles.some((n) => `${e.group}/${e.name}`.toLowerCase().includes(n));
  for (const e of all) if (selected(e)) add(e);
  // Baselines not in `all` (defined elsewhere) are kept too, after their subjects.
  return [...all.filter((e) => wanted.has(e)), ...[...wanted].filter((e) => !all.includes(e))];
}

interface TimedState {
  bench: Benchmark;
  state: unknown;
  ready: boolean;
  warmup: number | null;
  samples: number[];
  error?: string;
  cpu: CpuTimes;
  cpuOps: number;
}

export async function runBenchmarks(entries: readonly BenchEntry[], opts: RunOptions): Promise<ResultRow[]> {
  const log = opts.log ?? (() => undefined);
  const timed: TimedState[] = entries
    .filter((e): e is Benchmark => e.kind === 'timed')
    .map((bench) => ({
      bench,
      state: undefined,
      ready: false,
      warmup: null,
      samples: [],
      cpu: { nodeMs: 0, postgresMs: 0 },
      cpuOps: 0,
    }));
  const metricValues = new Map<Metric, { value: number | null; error?: string }>();
  try {
    for (const t of timed) {
      const t0 = performance.now();
      try {
        t.state = await t.bench.setup();
        t.ready = true;
        log(`setup  ${t.bench.name} (${fmtSeconds(performance.now() - t0)})`);
      } catch (err) {
        t.error = `setup: ${errorText(err)}`;
        log(`setup  ${t.bench.name} failed: ${t.error}`);
      }
    }
    for (let round = 0; round <= opts.rounds; round++) {
      const live = timed.filter((t) => t.ready && !t.error);
      if (live.length === 0) break;
      const shift = round % live.length;
      const order = [...live.slice(shift), ...live.slice(0, shift)];
      const r0 = performance.now();
      for (const t of order) {
        const info: RoundInfo = { round, warmup: round === 0, ops: t.bench.ops };
        try {
          const value = await timeRound(t.bench, t.state, info, round === 0 ? undefined : opts.cpu, t);
          if (round === 0) t.warmup = value;
          else t.samples.push(value);
        } catch (err) {
          t.error = `round ${round}: ${errorText(err)}`;
          log(`round ${round} ${t.bench.name} failed: ${t.error}`);
        }
      }
      log(
        `${round === 0 ? 'warm-up round' : `round ${round}/${opts.rounds}`} done (${fmtSeconds(performance.now() - r0)})`,
      );
    }
    for (const e of entries) {
      if (e.kind !== 'metric') continue;
      try {
        const value = await e.measure();
        metricValues.set(e, { value });
        log(`metric ${e.name}: ${value}`);
      } catch (err) {
        metricValues.set(e, { value: null, error: errorText(err) });
        log(`metric ${e.name} failed: ${errorText(err)}`);
      }
    }
  } finally {
    for (const t of [...timed].reverse()) {
      if (!t.ready) continue;
      try {
        await t.bench.teardown(t.state);
      } catch (err) {
        log(`teardown ${t.bench.name} failed: ${errorText(err)}`);
      }
    }
  }

  const byBench = new Map(timed.map((t) => [t.bench as BenchEntry, t]));
  return entries.map((e): ResultRow => {
    if (e.kind === 'metric') {
      const m = metricValues.get(e) ?? { value: null };
      const base = e.baseline ? (metricValues.get(e.baseline)?.value ?? null) : null;
      const ratio = m.value !== null && base !== null && base !== 0 ? m.value / base : null;
      return finishRow(e, {
        unit: e.unit,
        label: e.unit,
        median: m.value,
        p95: null,
        samples: m.value === null ? [] : [m.value],
        warmup: null,
        baseline: e.baseline ? { name: e.baseline.name, median: base, label: e.baseline.unit } : null,
        ratio,
        ...(m.error !== undefined ? { error: m.error } : {}),
      });
    }
    const t = byBench.get(e)!;
    const baseState = e.baseline ? byBench.get(e.baseline) : undefined;
    return finishRow(e, {
      unit: e.unit,
      label: labelOf(e),
      median: t.samples.length ? median(t.samples) : null,
      p95: t.samples.length ? percentile(t.samples, 95) : null,
      samples: t.samples,
      warmup: t.warmup,
      baseline: e.baseline
        ? {
            name: e.baseline.name,
            median: baseState?.samples.length ? median(baseState.samples) : null,
            label: labelOf(e.baseline),
          }
        : null,
      ratio: baseState && !t.error && !baseState.error ? pairedRatio(t.samples, baseState.samples) : null,
      ...(t.error !== undefined ? { error: t.error } : {}),
      ...(cpuShareOf(t) ? { cpu: cpuShareOf(t) } : {}),
    });
  });
}

function cpuShareOf(t: TimedState): CpuShare | undefined {
  const total = t.cpu.nodeMs + t.cpu.postgresMs;
  if (t.cpuOps === 0 || total <= 0) return undefined;
  return {
    nodeShare: t.cpu.nodeMs / total,
    postgresShare: t.cpu.postgresMs / total,
    nodeUsPerOp: (t.cpu.nodeMs * 1000) / t.cpuOps,
    postgresUsPerOp: (t.cpu.postgresMs * 1000) / t.cpuOps,
  };
}

function labelOf(e: BenchEntry): string {
  if (e.kind === 'metric') return e.unit;
  return e.unit === 'ops/s' ? `${e.opName}/s` : 'ms';
}

async function timeRound(
  bench: Benchmark,
  state: unknown,
  info: RoundInfo,
  cpu: RunOptions['cpu'],
  acc: Pick<TimedState, 'cpu' | 'cpuOps'>,
): Promise<number> {
  await bench.prepare(state, info);
  // Read outside the timed part; a failed read only costs the row its CPU column.
  const c0 = cpu ? await cpu().catch(() => undefined) : undefined;
  const t0 = performance.now();
  const latencies = await bench.run(state, info);
  const elapsed = performance.now() - t0;
  const c1 = c0 && cpu ? await cpu().catch(() => undefined) : undefined;
  if (c0 && c1) {
    acc.cpu.nodeMs += c1.nodeMs - c0.nodeMs;
    acc.cpu.postgresMs += Math.max(0, c1.postgresMs - c0.postgresMs);
    acc.cpuOps += info.ops;
  }
  if (bench.unit === 'ops/s') return info.ops / (elapsed / 1000);
  return latencies && latencies.length ? median(latencies) : elapsed / info.ops;
}

function finishRow(
  e: BenchEntry,
  r: Omit<ResultRow, 'group' | 'name' | 'goal' | 'verdict' | 'note'>,
): ResultRow {
  let verdict: ResultRow['verdict'] = 'report';
  let error = r.error;
  if (error === undefined && e.goal && r.ratio === null)
    error = `no ratio: baseline ${e.baseline?.name ?? '(none)'} has no result`;
  if (error !== undefined) verdict = 'error';
  else if (e.goal && r.ratio !== null) verdict = meetsGoal(e.goal, r.ratio) ? 'meets' : 'below';
  return {
    group: e.group,
    name: e.name,
    ...r,
    goal: e.goal ? formatGoal(e.goal) : '',
    verdict,
    ...(error !== undefined ? { error } : {}),
    ...(e.note !== undefined ? { note: e.note } : {}),
  };
}

export function meetsGoal(goal: Goal, ratio: number): boolean {
  if ('atLeast' in goal) return ratio >= goal.atLeast;
  if ('atMost' in goal) return ratio <= goal.atMost;
  return Math.abs(ratio - goal.approx) <= goal.tolerance;
}

export function formatGoal(goal: Goal): string {
  if ('atLeast' in goal) return `≥ ${goal.atLeast.toFixed(2)}×`;
  if ('atMost' in goal) return `≤ ${goal.atMost.toFixed(2)}×`;
  return `≈ ${goal.approx.toFixed(2)}× ±${goal.tolerance}`;
}

/** Median of subject_i / baseline_i over the rounds both completed. */
export function pairedRatio(subject: readonly number[], baseline: readonly number[]): number | null {
  const n = Math.min(subject.length, baseline.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    const b = baseline[i]!;
    if (b > 0) ratios.push(subject[i]! / b);
  }
  return ratios.length ? median(ratios) : null;
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Linear interpolation between closest ranks (the common "type 7" definition). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const pos = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/** Runs `total` calls of `fn` with at most `concurrency` in flight; returns each call's latency (ms). */
export async function runConcurrently(
  total: number,
  concurrency: number,
  fn: (i: number) => Promise<unknown>,
): Promise<number[]> {
  const latencies: number[] = new Array<number>(total);
  let next = 0;
  const lane = async () => {
    while (next < total) {
      const i = next++;
      const t0 = performance.now();
      await fn(i);
      latencies[i] = performance.now() - t0;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
  return latencies;
}

/** Runs `total` calls one after another; returns each call's latency (ms). */
export async function runSequentially(total: number, fn: (i: number) => Promise<unknown>): Promise<number[]> {
  return runConcurrently(total, 1, fn);
}

export function fmtSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The message and its causes (a WorkflowFailedError says little without them). */
function errorText(err: unknown): string {
  const parts: string[] = [];
  for (
    let e: unknown = err;
    e !== undefined && e !== null && parts.length < 4;
    e = (e as { cause?: unknown }).cause
  ) {
    parts.push(e instanceof Error ? e.message : JSON.stringify(e));
  }
  return parts.join(': ');
}
