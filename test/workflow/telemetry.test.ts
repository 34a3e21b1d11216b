/**
 * Observability through the real dev server: with telemetry on (an in-memory span exporter and
 * metric reader in place of OTLP), a task's trace runs from the client's start through
 * Temporal's workflow and activity spans into Cairn's own read, append, claim and commit spans;
 * a stale refusal is an event on the commit span and a count by reason; Temporal's runtime
 * metrics arrive in the same reader. With telemetry off nothing is recorded.
 */
import { createNoopMeter, metrics, trace } from '@opentelemetry/api';
import { AggregationTemporality, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { DefaultLogger, NativeConnection } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { defineAgent, type AgentDefinition } from '../../src/agent';
import { CairnClient } from '../../src/client';
import type { CairnConfig } from '../../src/config';
import { retract } from '../../src/store/quarantine';
import { ATTR, EVENT, METRIC, SPAN } from '../../src/telemetry/attributes';
import { startTelemetry, type CairnTelemetry } from '../../src/telemetry/setup';
import { createWorker, WORKFLOWS_PATH } from '../../src/worker';
import { createTestDatabase, type TestDatabase } from '../helpers/database';
import { dealDecision, dealFacts, receiptTypes } from '../helpers/readReceipts';
import { testConfig } from '../helpers/temporal';

/** Collects on demand, like a Prometheus scrape. */
class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

/** Both deciders' first attempts wait here until both have read: one of them commits stale. */
const arrivals = new Map<string, { n: number; all: Promise<void>; release: () => void }>();
function barrier(key: string, parties: number): Promise<void> {
  let b = arrivals.get(key);
  if (!b) {
    let release!: () => void;
    const all = new Promise<void>((r) => (release = r));
    b = { n: 0, all, release };
    arrivals.set(key, b);
  }
  if (++b.n >= parties) b.release();
  // The timeout only keeps a broken run from hanging: 30 s, as a loaded machine can start the
  // second step more than 10 s after the first (then both would not have read before either wrote).
  return Promise.race([b.all, new Promise<void>((r) => setTimeout(r, 30_000))]);
}

const agents: AgentDefinition[] = [
  defineAgent({
    role: 'seeder',
    async handle(ctx) {
      ctx.append(dealFacts, ctx.task.taskKey, { price: 100, status: 'open' });
    },
  }),
  defineAgent({
    role: 'decider',
    async handle(ctx) {
      const seen = await ctx.memory.entity(dealFacts, ctx.task.taskKey);
      const status = seen.fields.status?.value;
      if (ctx.step.attempt === 1) await barrier(ctx.task.taskKey, 2);
      ctx.append(
        dealDecision,
        ctx.task.taskKey,
        { status: `${ctx.step.id}: ${String(status)}` },
        { kind: 'decision' },
      );
    },
  }),
  defineAgent({
    role: 'claimer',
    async handle(ctx) {
      const c = await ctx.claim(`deal-desk/${ctx.task.taskKey}`, { ttlMs: 5_000 });
      return { token: c.token };
    },
  }),
];

const steps = [
  { id: 'seed', role: 'seeder', title: 'seed the deal' },
  { id: 'decide-a', role: 'decider', title: 'decide A', dependsOn: ['seed'] },
  { id: 'decide-b', role: 'decider', title: 'decide B', dependsOn: ['seed'] },
  { id: 'desk', role: 'claimer', title: 'take the desk', dependsOn: ['seed'] },
];

let db: TestDatabase;
let telemetry: CairnTelemetry;
const spans = new InMemorySpanExporter();
const reader = new TestReader();

beforeAll(async () => {
  db = await createTestDatabase();
  // First thing in this process: the Temporal runtime is installed with its metrics bridged.
  telemetry = await startTelemetry(
    { ...testConfig(db.url), otel: 'otlp' },
    {
      spanExporter: spans,
      metricReader: reader,
      runtimeLogger: new DefaultLogger('WARN'),
      runtimeMetricsEveryMs: 100,
    },
  );
});
afterAll(async () => {
  await telemetry?.shutdown();
  await db?.drop();
});

async function runTask(
  config: CairnConfig,
  taskKey: string,
  t: CairnTelemetry,
  source: { workflowsPath: string } | { workflowBundle: { codePath: string } },
): Promise<void> {
  const connection = await NativeConnection.connect({ address: config.temporalAddress });
  const worker = await createWorker({
    config,
    pool: db.pool,
    registry: receiptTypes,
    agents,
    connection,
    heartbeatEveryMs: 200,
    workerOptions: { shutdownGraceTime: '2s' },
    telemetry: t,
    ...source,
  });
  const running = worker.run();
  const client = await CairnClient.connect(config, undefined, { telemetry: t });
  try {
    await client.startTask({
      taskKey,
      goal: 'observe one task',
      steps,
      rolePolicies: { decider: { maxAttempts: 3, initialRetryMs: 50 } },
    });
    await client.result(taskKey);
  } finally {
    await client.close();
    await worker.shutdown();
    await running;
    await connection.close();
  }
}

function ancestors(span: ReadableSpan, byId: Map<string, ReadableSpan>): ReadableSpan[] {
  const out: ReadableSpan[] = [];
  for (let p = span.parentSpanId; p !== undefined;) {
    const parent = byId.get(p);
    if (!parent) break;
    out.push(parent);
    p = parent.parentSpanId;
  }
  return out;
}

function sum(rm: ResourceMetrics, name: string, attrs: Record<string, unknown> = {}): number {
  let total = 0;
  for (const scope of rm.scopeMetrics)
    for (const m of scope.metrics) {
      if (m.descriptor.name !== name) continue;
      for (const dp of m.dataPoints as { attributes: Record<string, unknown>; value: unknown }[])
        if (Object.entries(attrs).every(([k, v]) => dp.attributes[k] === v) && typeof dp.value === 'number')
          total += dp.value;
    }
  return total;
}

it('a task is one trace: Temporal workflow and activity spans, Cairn read/append/claim/commit spans with their attributes; a stale refusal is an event and a count', async () => {
  const config = testConfig(db.url);
  const taskKey = 'otel-on';
  // Bundled at start-up from the sources: createWorker adds the OpenTelemetry workflow interceptors.
  await runTask(config, taskKey, telemetry, { workflowsPath: WORKFLOWS_PATH });

  // A retraction outside any step is a span of its own.
  const { rows } = await db.pool.query<{ id: string }>(
    `select id from cairn.observations where task_key = $1 and activity_id = 'step-seed'`,
    [taskKey],
  );
  await retract(db.pool, rows[0]!.id, { reason: 'bad source', by: 'telemetry-test' });
  await telemetry.flush();

  const finished = spans.getFinishedSpans();
  const byId = new Map(finished.map((s) => [s.spanContext().spanId, s]));
  const named = (name: string) => finished.filter((s) => s.name === name);

  // Temporal's spans: the workflow run and the activity executions.
  const runWorkflow = finished.find((s) => s.name === 'RunWorkflow:taskWorkflow');
  expect(runWorkflow, finished.map((s) => s.name).join(', ')).toBeDefined();
  const traceId = runWorkflow!.spanContext().traceId;
  expect(named('RunActivity:runAgentStep').length).toBeGreaterThanOrEqual(4);

  // Cairn's read, under the decider's activity span, in the workflow's trace.
  const reads = named(SPAN.read).filter((s) => s.attributes[ATTR.entityId] === taskKey);
  expect(reads.length).toBeGreaterThanOrEqual(3); // two deciders, one retry
  for (const read of reads) {
    expect(read.spanContext().traceId).toBe(traceId);
    const chain = ancestors(read, byId).map((s) => s.name);
    expect(chain).toContain('RunActivity:runAgentStep');
    expect(chain).toContain('RunWorkflow:taskWorkflow');
    expect(read.attributes).toMatchObject({
      [ATTR.operationName]: 'search_memory',
      [ATTR.entityType]: 'deal',
      [ATTR.entityId]: taskKey,
    });
    expect(read.attributes[ATTR.entityVersion]).toBeGreaterThanOrEqual(1);
  }

  // Appends: the seed's, and each decision's (the refused attempt's rolled back: no append span).
  const appends = named(SPAN.append).filter((s) => s.attributes[ATTR.taskKey] === taskKey);
  const seed = appends.find((s) => s.attributes[ATTR.agentName] === 'seeder');
  expect(seed?.spanContext().traceId).toBe(traceId);
  expect(ancestors(seed!, byId).map((s) => s.name)).toContain('RunActivity:runAgentStep');
  expect(seed!.attributes).toMatchObject({
    [ATTR.operationName]: 'create_memory',
    [ATTR.memoryRecordCount]: 1,
    [ATTR.entityType]: 'deal',
    [ATTR.entityId]: taskKey,
    [ATTR.entityVersion]: 1,
    [ATTR.observationKind]: 'assertion',
    [ATTR.replayed]: false,
  });
  expect(seed!.attributes[ATTR.memoryRecordId]).toBe(rows[0]!.id);
  const decisions = appends.filter((s) => s.attributes[ATTR.observationKind] === 'decision');
  expect(decisions.map((s) => s.attributes[ATTR.entityVersion]).sort()).toEqual([2, 3]);

  // The claim, with its fencing token.
  const claim = named(SPAN.claim).find((s) => s.attributes[ATTR.claimResource] === `deal-desk/${taskKey}`);
  expect(claim?.spanContext().traceId).toBe(traceId);
  expect(claim!.attributes).toMatchObject({ [ATTR.claimOutcome]: 'granted' });
  expect(claim!.attributes[ATTR.fencingToken]).toBeGreaterThanOrEqual(1);

  // The stale refusal: an event on the refused commit's span, status ERROR.
  const refused = named(SPAN.commit).filter((s) => s.events.some((e) => e.name === EVENT.staleRefusal));
  expect(refused).toHaveLength(1);
  expect(refused[0]!.spanContext().traceId).toBe(traceId);
  expect(refused[0]!.status.code).toBe(2); // SpanStatusCode.ERROR
  expect(refused[0]!.attributes[ATTR.errorType]).toBe('CairnStaleRead');
  const event = refused[0]!.events.find((e) => e.name === EVENT.staleRefusal)!;
  expect(event.attributes).toMatchObject({
    [ATTR.entityType]: 'deal',
    [ATTR.entityId]: taskKey,
    [ATTR.staleVersionRead]: 1,
    [ATTR.staleCurrentVersion]: 2,
    [ATTR.staleFields]: ['status'],
  });
  // …and the refusal reached the activity's span as an event with its reason.
  const refusalEvents = named('RunActivity:runAgentStep').flatMap((s) =>
    s.events.filter((e) => e.name === EVENT.refusal),
  );
  expect(refusalEvents.map((e) => e.attributes?.[ATTR.refusalReason])).toEqual(['CairnStaleRead']);

  // The retraction.
  const retraction = named(SPAN.retract).find((s) => s.attributes[ATTR.entityId] === taskKey);
  expect(retraction?.attributes).toMatchObject({
    [ATTR.operationName]: 'delete_memory',
    [ATTR.retractionCount]: 1,
  });
  expect(retraction!.events.find((e) => e.name === EVENT.retraction)?.attributes).toMatchObject({
    [ATTR.retractionTarget]: rows[0]!.id,
  });

  // Metrics: Cairn's counters and Temporal's runtime metrics, from the same reader.
  const { resourceMetrics } = await reader.collect();
  expect(sum(resourceMetrics, METRIC.refusals, { [ATTR.refusalReason]: 'CairnStaleRead' })).toBe(1);
  expect(sum(resourceMetrics, METRIC.staleDecisions, { [ATTR.staleOutcome]: 'refused' })).toBe(1);
  // seed + 2 decisions + the retraction
  expect(sum(resourceMetrics, METRIC.appends, { [ATTR.entityType]: 'deal' })).toBe(4);
  expect(sum(resourceMetrics, METRIC.claims, { [ATTR.claimOutcome]: 'granted' })).toBe(1);
  expect(sum(resourceMetrics, METRIC.reads)).toBeGreaterThanOrEqual(3);
  const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
  expect(names.filter((n) => n.startsWith('temporal_')).length, names.join(', ')).toBeGreaterThan(0);
  expect(sum(resourceMetrics, 'temporal_activity_execution_failed')).toBeGreaterThanOrEqual(1);
});

it('with telemetry off, nothing is registered and no span is recorded', async () => {
  await telemetry.shutdown(); // unregisters the providers of the test above
  const offSpans = new InMemorySpanExporter();
  const off = await startTelemetry(testConfig(db.url), { spanExporter: offSpans, installRuntime: false });
  expect(off.enabled).toBe(false);
  expect(off.workerOptions()).toEqual({});
  expect(off.clientInterceptors()).toEqual([]);

  const config = testConfig(db.url);
  await runTask(config, 'otel-off', off, {
    workflowBundle: { codePath: inject('cairnTest').workflowBundlePath },
  });
  await off.flush();

  expect(offSpans.getFinishedSpans()).toEqual([]);
  // Cairn's instrumentation met no-op providers: a span is not recorded, a meter is the no-op one.
  const probe = trace.getTracer('@cairn-memory/cairn').startSpan('probe');
  expect(probe.isRecording()).toBe(false);
  probe.end();
  expect(metrics.getMeterProvider().getMeter('@cairn-memory/cairn')).toBe(createNoopMeter());
  const rows = await db.pool.query(
    `select count(*)::int as n from cairn.observations where task_key = 'otel-off'`,
  );
  expect(rows.rows[0].n).toBe(3); // the task did run
});
