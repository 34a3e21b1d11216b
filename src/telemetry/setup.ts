/**
 * Turning observability on: the OpenTelemetry SDK for a worker process (CAIRN_OTEL=otlp or
 * prometheus; off by default). It registers the global tracer and meter providers that Cairn's
 * own instrumentation (./instrument.ts, API only) and Temporal's OpenTelemetry interceptors
 * report to, the W3C trace-context propagator that carries a trace from the client through the
 * workflow into each activity, and a bridge that carries the Temporal runtime's own metrics
 * (Core's buffered metrics) into the same meter, so one exporter serves both.
 *
 * The SDK modules are loaded only when telemetry is on.
 */
import type { Attributes, Meter } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type { MetricReader } from '@opentelemetry/sdk-metrics';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { Logger, MetricsBuffer, RuntimeOptions, WorkerOptions } from '@temporalio/worker';
import type { CairnConfig } from '../config';

export interface StartTelemetryOptions {
  /** Spans go here instead of OTLP (tests: an InMemorySpanExporter). */
  spanExporter?: SpanExporter;
  /** Metrics are read by this instead of OTLP or Prometheus (tests: a reader they collect). */
  metricReader?: MetricReader;
  /**
   * Install the Temporal runtime with its metrics bridged (default true). With false the caller
   * installs it, passing `telemetry.runtimeOptions` (the CLI merges its logger in).
   */
  installRuntime?: boolean;
  /** The runtime's logger when startTelemetry installs it. */
  runtimeLogger?: Logger;
  /** How often Temporal's buffered metrics are carried over (default 1 s). */
  runtimeMetricsEveryMs?: number;
}

export interface CairnTelemetry {
  /** False with CAIRN_OTEL=off: nothing registered, everything below is empty. */
  readonly enabled: boolean;
  /** Runtime options that bridge Temporal's metrics (merge into Runtime.install); empty when off. */
  readonly runtimeOptions: Pick<RuntimeOptions, 'telemetryOptions'>;
  /** Temporal's activity interceptors and the workflow span sink, for Worker.create. */
  workerOptions(): Pick<WorkerOptions, 'interceptors' | 'sinks'>;
  /** Temporal's client interceptor (a task's trace starts at startTask). */
  clientInterceptors(): WorkflowClientInterceptor[];
  /** Exports what is buffered (spans, metrics, Temporal's metrics) now. */
  flush(): Promise<void>;
  /** Flushes, stops the exporters and unregisters the global providers. */
  shutdown(): Promise<void>;
}

/**
 * Workflow interceptor modules the workflow bundle needs when telemetry is on. The package
 * ships a second bundle built with them (dist/workflow-bundle-otel.js, scripts/build.mjs);
 * a custom bundle must be built with them too (`bundleWorkflowCode({ workflowInterceptorModules })`).
 */
export function telemetryWorkflowModules(): string[] {
  return [require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors')];
}

const OFF: CairnTelemetry = {
  enabled: false,
  runtimeOptions: {},
  workerOptions: () => ({}),
  clientInterceptors: () => [],
  flush: async () => undefined,
  shutdown: async () => undefined,
};

export async function startTelemetry(
  config: CairnConfig,
  opts: StartTelemetryOptions = {},
): Promise<CairnTelemetry> {
  const mode = config.otel ?? 'off';
  if (mode === 'off') return OFF;

  const api = await import('@opentelemetry/api');
  const { Resource } = await import('@opentelemetry/resources');
  const traceSdk = await import('@opentelemetry/sdk-trace-base');
  const metricsSdk = await import('@opentelemetry/sdk-metrics');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const temporalOtel = await import('@temporalio/interceptors-opentelemetry');
  const { MetricsBuffer, Runtime } = await import('@temporalio/worker');

  const resource: Resource = new Resource({ 'service.name': config.otelServiceName ?? 'cairn' });
  const endpoint = (config.otlpEndpoint ?? 'http://127.0.0.1:4318').replace(/\/$/, '');

  // Traces: always over OTLP with `otlp`; with `prometheus` only when an endpoint was given.
  let spanExporter = opts.spanExporter;
  if (!spanExporter && (mode === 'otlp' || config.otlpEndpoint !== undefined)) {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    spanExporter = new OTLPTraceExporter({ url: `${endpoint}/v1/traces` });
  }
  const spanProcessor: SpanProcessor | undefined = spanExporter
    ? new traceSdk.BatchSpanProcessor(spanExporter, { scheduledDelayMillis: 1000 })
    : undefined;
  const tracerProvider = new traceSdk.BasicTracerProvider({
    resource,
    spanProcessors: spanProcessor ? [spanProcessor] : [],
  });
  tracerProvider.register({
    contextManager: new AsyncLocalStorageContextManager().enable(),
    propagator: new W3CTraceContextPropagator(),
  });

  let reader = opts.metricReader;
  if (!reader && mode === 'prometheus') {
    const { PrometheusExporter } = await import('@opentelemetry/exporter-prometheus');
    const [host, port] = splitHostPort(config.prometheusAddress ?? '127.0.0.1:9464');
    reader = new PrometheusExporter({ host, port });
  } else if (!reader) {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
    reader = new metricsSdk.PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${endpoint}/v1/metrics` }),
      exportIntervalMillis: 10_000,
    });
  }
  const meterProvider = new metricsSdk.MeterProvider({ resource, readers: [reader] });
  api.metrics.setGlobalMeterProvider(meterProvider);

  // Temporal's runtime metrics (task slots, poll and schedule-to-start latencies, workflow and
  // activity outcomes, …) arrive buffered from Core and are recorded on the same meter.
  const buffer = new MetricsBuffer({ maxBufferSize: 50_000 });
  const runtimeOptions: Pick<RuntimeOptions, 'telemetryOptions'> = {
    telemetryOptions: { metrics: { buffer } },
  };
  if (opts.installRuntime ?? true) {
    Runtime.install({ ...runtimeOptions, ...(opts.runtimeLogger ? { logger: opts.runtimeLogger } : {}) });
  }
  const pump = bridgeRuntimeMetrics(buffer, meterProvider.getMeter('temporal-runtime'));
  const timer = setInterval(pump, opts.runtimeMetricsEveryMs ?? 1000);
  timer.unref();

  const tracer = tracerProvider.getTracer('@temporalio/interceptors-opentelemetry');
  let stopped = false;
  const flush = async () => {
    pump();
    await tracerProvider.forceFlush();
    await meterProvider.forceFlush();
  };
  return {
    enabled: true,
    runtimeOptions,
    workerOptions: () => ({
      interceptors: {
        activity: [
          (ctx) => ({
            inbound: new temporalOtel.OpenTelemetryActivityInboundInterceptor(ctx, { tracer }),
            outbound: new temporalOtel.OpenTelemetryActivityOutboundInterceptor(ctx),
          }),
        ],
      },
      ...(spanProcessor
        ? { sinks: { exporter: temporalOtel.makeWorkflowExporter(spanProcessor, resource) } }
        : {}),
    }),
    clientInterceptors: () => [new temporalOtel.OpenTelemetryWorkflowClientInterceptor({ tracer })],
    flush,
    async shutdown() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      await flush();
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
      api.trace.disable();
      api.metrics.disable();
      api.propagation.disable();
      api.context.disable();
    },
  };
}

/** Records each buffered update of a Temporal runtime metric on an instrument of the same name. */
function bridgeRuntimeMetrics(buffer: MetricsBuffer, meter: Meter): () => void {
  type Recorder = (value: number, attributes: Attributes) => void;
  const recorders = new Map<string, Recorder>();
  const recorderFor = (m: { name: string; kind: string; unit?: string; description?: string }): Recorder => {
    let r = recorders.get(m.name);
    if (r) return r;
    const name = m.name.startsWith('temporal_') ? m.name : `temporal_${m.name}`;
    const options = {
      ...(m.unit ? { unit: m.unit } : {}),
      ...(m.description ? { description: m.description } : {}),
    };
    if (m.kind === 'counter') {
      const c = meter.createCounter(name, options);
      r = (v, a) => c.add(v, a);
    } else if (m.kind === 'up-down-counter') {
      const c = meter.createUpDownCounter(name, options);
      r = (v, a) => c.add(v, a);
    } else if (m.kind === 'gauge') {
      const g = meter.createGauge(name, options);
      r = (v, a) => g.record(v, a);
    } else {
      const h = meter.createHistogram(name, options);
      r = (v, a) => h.record(v, a);
    }
    recorders.set(m.name, r);
    return r;
  };
  return () => {
    for (const u of buffer.retrieveUpdates()) recorderFor(u.metric)(u.value, u.attributes);
  };
}

function splitHostPort(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))];
}
