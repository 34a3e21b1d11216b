/**
 * Step payloads by reference (issue 14 item 2): the history bytes a step costs as its output
 * grows from 1 KiB to 1 MiB (goal: flat above the claim-check threshold, 16 KiB by default),
 * and per step of a 50-step task. History size is the server's own count (describe's
 * historySizeBytes); each measurement also checks the task completed and that the largest
 * output resolved whole through CairnClient.result().
 */
import { isPayloadRef } from '../../src/shared/payloadRefs';
import { taskWorkflowId } from '../../src/shared/task';
import type { BenchEnv, TemporalEnv } from '../env';
import { benchSizedTask } from '../fixtures';
import { defineMetric, type BenchEntry } from '../harness';

export const PAYLOADS = 'step payloads by reference';

const KiB = 1024;

export function payloadBenchmarks(env: BenchEnv): BenchEntry[] {
  const { runId } = env;
  let seq = 0;
  /** Runs a chain of `steps` steps with `bytes`-byte outputs; returns history bytes per step. */
  const bytesPerStep = async (t: TemporalEnv, steps: number, bytes: number): Promise<number> => {
    const taskKey = `bench-${runId}-payload${steps}x${bytes}-${seq++}`;
    await t.client.startTask(benchSizedTask(taskKey, steps, bytes));
    const result = await t.client.result(taskKey);
    if (result.status !== 'completed') throw new Error(`task ${taskKey} ended ${result.status}`);
    // Invariant: the caller gets every output whole, by reference or not.
    for (const s of result.steps) {
      const blob = (s.output as { blob?: string } | null)?.blob;
      if (isPayloadRef(s.output) || blob?.length !== bytes)
        throw new Error(`task ${taskKey}: step ${s.id} output did not resolve to ${bytes} bytes`);
    }
    const described = await t.client.temporal.workflow.getHandle(taskWorkflowId(taskKey)).describe();
    if (described.historySize === undefined) throw new Error('the server did not report historySizeBytes');
    return described.historySize / steps;
  };

  const cache = new Map<string, Promise<number>>();
  const measured = (steps: number, bytes: number) => {
    const key = `${steps}x${bytes}`;
    let m = cache.get(key);
    if (!m) {
      m = env.temporal().then((t) => bytesPerStep(t, steps, bytes));
      cache.set(key, m);
    }
    return m;
  };

  const oneKiB = defineMetric({
    name: 'history bytes per step: 1-step task, 1 KiB output',
    group: PAYLOADS,
    unit: 'bytes/step',
    needsTemporal: true,
    measure: () => measured(1, KiB),
  });
  // Just above the default threshold: the first size stored by reference, the flat line's base.
  const above = defineMetric({
    name: 'history bytes per step: 1-step task, 32 KiB output',
    group: PAYLOADS,
    unit: 'bytes/step',
    needsTemporal: true,
    baseline: oneKiB,
    note: 'ratio vs a 1 KiB output',
    measure: () => measured(1, 32 * KiB),
  });
  // Just below the threshold: inline, in the step's completion, the task's result and the episode's input.
  const below = defineMetric({
    name: 'history bytes per step: 1-step task, 15 KiB output (inline)',
    group: PAYLOADS,
    unit: 'bytes/step',
    needsTemporal: true,
    baseline: oneKiB,
    note: 'ratio vs a 1 KiB output',
    measure: () => measured(1, 15 * KiB),
  });
  const sized = [256, 1024].map((kib) =>
    defineMetric({
      name: `history bytes per step: 1-step task, ${kib === 1024 ? '1 MiB' : `${kib} KiB`} output`,
      group: PAYLOADS,
      unit: 'bytes/step',
      needsTemporal: true,
      baseline: above,
      // Above the threshold the history must not grow with the output.
      goal: { atMost: 1.25 },
      note: 'ratio vs a 32 KiB output (stored by reference)',
      measure: () => measured(1, kib * KiB),
    }),
  );
  const fifty = defineMetric({
    name: 'history bytes per step: 50-step task, 1 KiB outputs',
    group: PAYLOADS,
    unit: 'bytes/step',
    needsTemporal: true,
    baseline: oneKiB,
    note: 'ratio vs a 1-step task',
    measure: () => measured(50, KiB),
  });
  return [oneKiB, below, above, ...sized, fifty];
}
