/**
 * Cairn's own spans and metrics, on @opentelemetry/api alone. With no OpenTelemetry SDK
 * registered (the default: CAIRN_OTEL=off) the API is a no-op: a span is a non-recording
 * stand-in whose attributes are never built, and the counters are skipped, so the store's hot
 * paths pay a function call. Whoever registers a provider (src/telemetry/setup.ts, or the
 * application's own SDK) gets Cairn's spans as children of the active span (in a worker, the
 * activity span of Temporal's interceptor).
 *
 * The store's operations are wrapped where they are defined (`export const appendObservations
 * = tracedAppend(…)`), so every caller is covered and the store files change by one line each.
 */
import {
  createNoopMeter,
  INVALID_SPAN_CONTEXT,
  metrics,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Counter,
  type Meter,
  type MeterProvider,
  type Span,
} from '@opentelemetry/api';
import type { ClaimOptions, ClaimResult } from '../store/claims/types';
import type { EntityState, PolicyResolver } from '../shared/entityState';
import type { EntityRef } from '../shared/observation';
import type { AppendContext, AppendedObservation, AppendItem } from '../store/observations/types';
import type { EntityStateOptions } from '../store/observations/read';
import type { Queryable } from '../store/pool';
import { ATTR, EVENT, INSTRUMENTATION_SCOPE, METRIC, OPERATION, SPAN, STORE_ID } from './attributes';

const tracer = trace.getTracer(INSTRUMENTATION_SCOPE);
/** What the global tracer provider delegates to while none is registered. */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();
/** Handed to the wrapped operation when nothing traces: records nothing, costs nothing. */
const IDLE_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/** Whether a tracer provider is registered (the API's no-op path still costs a context and a span). */
function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_TRACER_PROVIDER;
}

interface Counters {
  appends: Counter;
  reads: Counter;
  refusals: Counter;
  staleDecisions: Counter;
  conflicts: Counter;
  claims: Counter;
}

/**
 * The metrics API has no proxy (unlike tracing): a meter taken before a provider is registered
 * stays a no-op. So the counters are made from whichever provider is global now, again when it
 * changes; undefined while there is none.
 */
let instruments: { provider: MeterProvider; counters: Counters | undefined } | undefined;
function counters(): Counters | undefined {
  const provider = metrics.getMeterProvider();
  if (instruments?.provider !== provider) {
    const meter = provider.getMeter(INSTRUMENTATION_SCOPE);
    instruments = { provider, counters: meter === createNoopMeter() ? undefined : makeCounters(meter) };
  }
  return instruments.counters;
}

function makeCounters(meter: Meter): Counters {
  const counter = (name: string, description: string) => meter.createCounter(name, { description });
  return {
    appends: counter(METRIC.appends, 'Observations appended (replays not counted)'),
    reads: counter(METRIC.reads, 'Entity reads'),
    refusals: counter(METRIC.refusals, 'Refusals, by reason (failure type)'),
    staleDecisions: counter(METRIC.staleDecisions, 'Stale decisions: refused (strict) or flagged (warn)'),
    conflicts: counter(METRIC.conflicts, 'Write conflicts: idempotency key reused, expected version behind'),
    claims: counter(METRIC.claims, 'Claims asked for, by outcome'),
  };
}

/**
 * Runs `fn` in an active span; `attrs` is called only when the span records. A thrown error is
 * recorded on the span (status ERROR, `error.type`) and rethrown.
 */
function inSpan<T>(name: string, attrs: () => Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!tracing()) return fn(IDLE_SPAN);
  return tracer.startActiveSpan(name, { kind: SpanKind.INTERNAL }, async (span) => {
    if (span.isRecording()) span.setAttributes(attrs());
    try {
      return await fn(span);
    } catch (err) {
      markFailed(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

function markFailed(span: Span, err: unknown): void {
  if (!span.isRecording()) return;
  const e = err instanceof Error ? err : new Error(String(err));
  const code = (err as { code?: unknown }).code;
  span.setAttribute(ATTR.errorType, typeof code === 'string' ? code : e.name);
  span.setStatus({ code: SpanStatusCode.ERROR, message: e.message });
  span.recordException(e);
}

// --- append ---

type AppendFn = (
  db: Queryable,
  registry: never,
  items: AppendItem[],
  ctx: AppendContext,
) => Promise<AppendedObservation[]>;

/** appendObservations in a `cairn.append` (or `cairn.retract`) span, counting appends and conflicts. */
export function tracedAppend<F extends AppendFn>(append: F): F {
  const traced = (db: Queryable, registry: never, items: AppendItem[], ctx: AppendContext) => {
    const retractions = items.filter((i) => i.kind === 'retraction').length;
    const onlyRetractions = retractions > 0 && retractions === items.length;
    return inSpan(
      onlyRetractions ? SPAN.retract : SPAN.append,
      () => appendAttributes(items, ctx, onlyRetractions, retractions),
      async (span) => {
        let out: AppendedObservation[];
        try {
          out = await append(db, registry, items, ctx);
        } catch (err) {
          countConflict(err);
          throw err;
        }
        const c = counters();
        if (c) for (const o of out) if (!o.replayed) c.appends.add(1, appendedAttributes(items[o.index]));
        if (span.isRecording()) describeAppended(span, items, out);
        return out;
      },
    );
  };
  return traced as unknown as F;
}

function appendAttributes(
  items: AppendItem[],
  ctx: AppendContext,
  onlyRetractions: boolean,
  retractions: number,
): Attributes {
  const first = items[0];
  const oneEntity =
    first !== undefined &&
    items.every((i) => i.entityType === first.entityType && i.entityId === first.entityId);
  return {
    [ATTR.operationName]: onlyRetractions ? OPERATION.delete : OPERATION.create,
    [ATTR.memoryStoreId]: STORE_ID,
    [ATTR.memoryRecordCount]: items.length,
    [ATTR.agentName]: ctx.provenance.role,
    [ATTR.agentId]: ctx.provenance.agentId,
    [ATTR.taskKey]: ctx.provenance.taskKey,
    ...(retractions > 0 ? { [ATTR.retractionCount]: retractions } : {}),
    ...(oneEntity ? { [ATTR.entityType]: first.entityType, [ATTR.entityId]: first.entityId } : {}),
    ...(items.length === 1 && first
      ? { [ATTR.observationType]: first.type, [ATTR.observationKind]: first.kind ?? 'assertion' }
      : {}),
  };
}

function appendedAttributes(item: AppendItem | undefined): Attributes {
  return {
    [ATTR.entityType]: item?.entityType ?? '',
    [ATTR.observationKind]: item?.kind ?? 'assertion',
  };
}

function describeAppended(span: Span, items: AppendItem[], out: AppendedObservation[]): void {
  const first = out[0];
  if (out.length === 1 && first) {
    span.setAttributes({
      [ATTR.memoryRecordId]: first.id,
      [ATTR.entityVersion]: first.entityVersion,
      [ATTR.replayed]: first.replayed,
    });
  } else if (first && out.every((o) => o.entityType === first.entityType && o.entityId === first.entityId)) {
    span.setAttribute(ATTR.entityVersion, Math.max(...out.map((o) => o.entityVersion)));
  }
  for (const o of out) {
    const item = items[o.index];
    if (item?.kind !== 'retraction') continue;
    span.addEvent(EVENT.retraction, {
      [ATTR.memoryRecordId]: o.id,
      [ATTR.retractionTarget]: item.targetId ?? '',
      [ATTR.entityType]: o.entityType,
      [ATTR.entityId]: o.entityId,
      [ATTR.entityVersion]: o.entityVersion,
    });
  }
}

function countConflict(err: unknown): void {
  const name = (err as { name?: unknown } | null)?.name;
  const kind =
    name === 'IdempotencyConflictError'
      ? 'idempotency'
      : name === 'StaleVersionError'
        ? 'expected_version'
        : undefined;
  if (kind) counters()?.conflicts.add(1, { [ATTR.conflictKind]: kind });
}

// --- read ---

type ReadFn = (
  db: Queryable,
  policyOf: PolicyResolver,
  ref: EntityRef,
  opts?: EntityStateOptions,
) => Promise<EntityState>;

/** getEntityState in a `cairn.read` span. */
export function tracedRead<F extends ReadFn>(read: F): F {
  const traced = (db: Queryable, policyOf: PolicyResolver, ref: EntityRef, opts?: EntityStateOptions) =>
    inSpan(
      SPAN.read,
      () => ({
        [ATTR.operationName]: OPERATION.search,
        [ATTR.memoryStoreId]: STORE_ID,
        [ATTR.entityType]: ref.entityType,
        [ATTR.entityId]: ref.entityId,
        ...(opts?.minVersion !== undefined ? { [ATTR.readMinVersion]: opts.minVersion } : {}),
        ...(opts?.asOfVersion !== undefined ? { [ATTR.readAsOfVersion]: opts.asOfVersion } : {}),
        ...(opts?.without ? { [ATTR.tainted]: opts.without.ids.size } : {}),
      }),
      async (span) => {
        const state = await read(db, policyOf, ref, opts);
        counters()?.reads.add(1, { [ATTR.entityType]: ref.entityType });
        if (span.isRecording()) {
          span.setAttributes({
            [ATTR.entityVersion]: state.version,
            [ATTR.memoryRecordCount]: state.version === 0 ? 0 : 1,
          });
        }
        return state;
      },
    );
  return traced as unknown as F;
}

// --- claim ---

type ClaimFn = (db: Queryable, resource: string, opts: ClaimOptions) => Promise<ClaimResult>;

/** claim in a `cairn.claim` span, counting outcomes. */
export function tracedClaim<F extends ClaimFn>(claim: F): F {
  const traced = (db: Queryable, resource: string, opts: ClaimOptions) =>
    inSpan(
      SPAN.claim,
      () => ({ [ATTR.claimResource]: resource, [ATTR.agentId]: opts.holder }),
      async (span) => {
        const result = await claim(db, resource, opts);
        counters()?.claims.add(1, { [ATTR.claimOutcome]: result.outcome });
        if (span.isRecording()) {
          span.setAttributes({
            [ATTR.claimOutcome]: result.outcome,
            // A refused claim's token is the holder's, not ours.
            ...(result.granted ? { [ATTR.fencingToken]: result.token } : {}),
          });
        }
        return result;
      },
    );
  return traced as unknown as F;
}

// --- a step's commit and its read receipt ---

interface StaleConflictLike {
  entityType: string;
  entityId: string;
  versionRead: number;
  currentVersion: number;
  fields: string[] | null;
}

type CommitFn = (pool: never, plan: never, run: () => Promise<unknown>, opts?: never) => Promise<unknown>;

/**
 * withReadReceipt in a `cairn.commit` span. A stale refusal (StaleReadError) becomes the span
 * event `cairn.stale_refusal` (entity, version read and current, fields) with status ERROR, and
 * counts as a refused stale decision.
 */
export function tracedCommit<F extends CommitFn>(commit: F): F {
  const traced = (pool: never, plan: never, run: () => Promise<unknown>, opts?: never) =>
    inSpan(
      SPAN.commit,
      () => ({}),
      async (span) => {
        try {
          return await commit(pool, plan, run, opts);
        } catch (err) {
          const e = err as { name?: unknown; conflicts?: StaleConflictLike[]; readSetId?: unknown };
          if (e?.name === 'StaleReadError') {
            counters()?.staleDecisions.add(1, { [ATTR.staleOutcome]: 'refused' });
            if (span.isRecording())
              for (const c of e.conflicts ?? [])
                span.addEvent(EVENT.staleRefusal, staleAttributes(c, e.readSetId));
          }
          throw err;
        }
      },
    );
  return traced as unknown as F;
}

/** Counts the stale conflicts of items written and flagged (`dependsOnReads: 'warn'`). */
export function countFlaggedStale(receipt: { refused: boolean; conflicts: readonly unknown[] } | null): void {
  if (receipt && !receipt.refused && receipt.conflicts.length > 0)
    counters()?.staleDecisions.add(1, { [ATTR.staleOutcome]: 'flagged' });
}

function staleAttributes(c: StaleConflictLike, readSetId: unknown): Attributes {
  return {
    [ATTR.entityType]: c.entityType,
    [ATTR.entityId]: c.entityId,
    [ATTR.staleVersionRead]: c.versionRead,
    [ATTR.staleCurrentVersion]: c.currentVersion,
    ...(c.fields ? { [ATTR.staleFields]: c.fields } : {}),
    ...(typeof readSetId === 'string' ? { [ATTR.readSetId]: readSetId } : {}),
  };
}

// --- refusals at the step's boundary ---

/**
 * One of Cairn's refusals (an error with a Cairn failure type as `code`) leaving a step or a
 * tool: counted by reason, and an event with the reason on the active span.
 */
export function recordRefusal(err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !code.startsWith('Cairn') || code === 'CairnAgentFailed') return;
  counters()?.refusals.add(1, { [ATTR.refusalReason]: code });
  const span = trace.getActiveSpan();
  if (span?.isRecording()) {
    span.addEvent(EVENT.refusal, {
      [ATTR.refusalReason]: code,
      ...(err instanceof Error ? { 'exception.message': err.message } : {}),
    });
  }
}
