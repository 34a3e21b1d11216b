/**
 * Task workflows (issue "task workflows"): what a Cairn task with one no-op agent step costs
 * beyond a bare workflow with one no-op activity, in latency, throughput and history events.
 */
import type { benchNoopWorkflow } from '../workflows/benchNoop';
import { taskWorkflowId, taskWorkflowQueue } from '../../src/shared/task';
import type { BenchEnv, TemporalEnv } from '../env';
import { benchTask } from '../fixtures';
import { defineBenchmark, defineMetric, runConcurrently, runSequentially, type BenchEntry } from '../harness';
import type { calibrationBenchmarks } from './calibration';

export const TASKS = 'task workflows';

export function taskBenchmarks(
  env: BenchEnv,
  calibration: ReturnType<typeof calibrationBenchmarks>,
): BenchEntry[] {
  const { sizes, runId } = env;
  let seq = 0;
  /** Starts a task and waits for its result; fails loudly if the task did not complete. */
  const runTask = async (t: TemporalEnv, steps: number): Promise<string> => {
    const taskKey = `bench-${runId}-task${steps}-${seq++}`;
    await t.client.startTask(benchTask(taskKey, steps));
    const result = await t.client.result(taskKey);
    if (result.status !== 'completed')
      throw new Error(`task ${taskKey} ended ${result.status}: ${JSON.stringify(result.steps)}`);
    return taskWorkflowId(taskKey);
  };

  const latency = defineBenchmark<TemporalEnv>({
    name: 'task with 1 no-op agent step, p50 of sequential runs',
    group: TASKS,
    unit: 'ms',
    ops: sizes.sequential,
    needsTemporal: true,
    baseline: calibration.bareLatency,
    goal: { atMost: 1.3 },
    setup: () => env.temporal(),
    run: (t, round) => runSequentially(round.ops, () => runTask(t, 1)),
  });

  const throughput = defineBenchmark<TemporalEnv>({
    name: `task with 1 no-op agent step, ${sizes.concurrency} in flight`,
    group: TASKS,
    unit: 'ops/s',
    opName: 'tasks',
    ops: sizes.workflows,
    needsTemporal: true,
    baseline: calibration.bareThroughput,
    goal: { atLeast: 0.75 },
    setup: () => env.temporal(),
    async run(t, round) {
      await runConcurrently(round.ops, sizes.concurrency, () => runTask(t, 1));
    },
  });

  const eventsOf = async (t: TemporalEnv, workflowId: string): Promise<number> => {
    const history = await t.client.temporal.workflow.getHandle(workflowId).fetchHistory();
    return history.events?.length ?? 0;
  };

  const bareEvents = defineMetric({
    name: 'history events: bare workflow, 1 no-op activity',
    group: TASKS,
    unit: 'events/activity',
    needsTemporal: true,
    async measure() {
      const t = await env.temporal();
      const workflowId = `bench-${runId}-bare-history`;
      await t.client.temporal.workflow.execute<typeof benchNoopWorkflow>('benchNoopWorkflow', {
        taskQueue: taskWorkflowQueue(env.config.taskQueuePrefix),
        workflowId,
      });
      return eventsOf(t, workflowId);
    },
  });

  const taskEvents = new Map<number, Promise<number>>();
  const eventsOfTask = (steps: number) => {
    let events = taskEvents.get(steps);
    if (!events) {
      events = env.temporal().then(async (t) => eventsOf(t, await runTask(t, steps)));
      taskEvents.set(steps, events);
    }
    return events;
  };

  const perStep = (steps: number) =>
    defineMetric({
      name: `history events per step: ${steps}-step task`,
      group: TASKS,
      unit: 'events/step',
      needsTemporal: true,
      baseline: bareEvents,
      note: 'total events / steps; ratio vs the bare workflow’s events',
      measure: async () => (await eventsOfTask(steps)) / steps,
    });

  const marginal = defineMetric({
    name: 'history events per added step (5-step minus 1-step, / 4)',
    group: TASKS,
    unit: 'events/step',
    needsTemporal: true,
    baseline: bareEvents,
    measure: async () => ((await eventsOfTask(5)) - (await eventsOfTask(1))) / 4,
  });

  return [latency, throughput, bareEvents, perStep(1), perStep(5), marginal];
}
