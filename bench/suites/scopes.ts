/**
 * Scopes (issue "Coordination", invariant 7): what a step's scoped entity read costs over a
 * read as it was before scopes. A scoped read is a transaction whose settings row-level
 * security reads (readEntityInScope: the role, the settings and the read in one message, which
 * Postgres runs as one implicit transaction; src/store/pool.ts queryInline).
 * Two more rows split that cost into the transaction's and the policies'.
 */
import type { EntityRef } from '../../src/shared/observation';
import { policyResolverFor } from '../../src/shared/reducer';
import type { ScopeGrant } from '../../src/shared/scopes';
import { appendObservations } from '../../src/store/observations/append';
import { getEntityState } from '../../src/store/observations/read';
import { withTransaction } from '../../src/store/pool';
import { readEntityInScope, withScope } from '../../src/store/scope';
import type { BenchEnv } from '../env';
import { benchFields, benchItem, benchTypes, BENCH_ENTITY_TYPE } from '../fixtures';
import { defineBenchmark, runSequentially, type Benchmark, type BenchmarkSpec } from '../harness';
import { benchProvenance } from '../raw';

export const SCOPES = 'scopes';

const policyOf = policyResolverFor(benchTypes);

export function scopeBenchmarks(env: BenchEnv): Benchmark[] {
  const { sizes, runId } = env;
  const reads = Math.max(50, sizes.reads * 10);
  const size = sizes.smallHistory;
  // The entity is in its task's scope, named as an agent step names it (`task` resolved to
  // `task:<key>`); the grant reads it among others.
  const taskKey = `bench-scopes-${runId}`;
  const grant: ScopeGrant = {
    read: ['global', `task:${taskKey}`, 'team:research'],
    write: [`task:${taskKey}`],
  };

  let entity: Promise<EntityRef> | undefined;
  const built = () => (entity ??= buildEntity(env, taskKey, `scoped-${runId}`, size));

  const read = (
    name: string,
    fn: (ref: EntityRef) => Promise<unknown>,
    extra: Partial<Pick<BenchmarkSpec<EntityRef>, 'baseline' | 'goal' | 'note'>> = {},
  ) =>
    defineBenchmark<EntityRef>({
      name: `${name}, ${size.toLocaleString('en-US')} history`,
      group: SCOPES,
      unit: 'ops/s',
      opName: 'reads',
      ops: reads,
      ...extra,
      setup: built,
      run: (ref, round) => runSequentially(round.ops, () => fn(ref)).then(() => undefined),
    });

  // As before scopes: no RLS (the owner; the application role without policies reads the same
  // way), no transaction.
  const unscoped = read('entity read without scopes (no RLS, no transaction)', (ref) =>
    getEntityState(env.ownerPool, policyOf, ref),
  );
  const scoped = read(
    'scoped entity read (readEntityInScope: transaction + RLS)',
    (ref) => readEntityInScope(env.pool, grant, 'bench', policyOf, ref),
    {
      baseline: unscoped,
      goal: { atLeast: 0.9 },
    },
  );
  // The two parts of the cost: the transaction (two round trips), then the policies alone.
  const ownerTx = read(
    'entity read in a transaction, no RLS',
    (ref) => withTransaction(env.ownerPool, (c) => getEntityState(c, policyOf, ref)),
    {
      baseline: unscoped,
    },
  );
  const rlsTx = read(
    'entity read in withScope (RLS)',
    (ref) => withScope(env.pool, grant, (c) => getEntityState(c, policyOf, ref)),
    {
      baseline: ownerTx,
    },
  );
  // Engineers' tools: the all-scopes session grant, no transaction.
  const allScopes = read(
    'entity read with the all-scopes session grant',
    (ref) => getEntityState(env.pool, policyOf, ref),
    { baseline: unscoped },
  );
  return [scoped, unscoped, ownerTx, rlsTx, allScopes];
}

async function buildEntity(
  env: BenchEnv,
  taskKey: string,
  entityId: string,
  size: number,
): Promise<EntityRef> {
  const ref = { entityType: BENCH_ENTITY_TYPE, entityId };
  for (let done = 0; done < size; done += env.sizes.batchSize) {
    const count = Math.min(env.sizes.batchSize, size - done);
    const items = Array.from({ length: count }, (_, i) => ({
      ...ref,
      type: benchItem.name,
      fields: benchFields(done + i),
      scope: `task:${taskKey}`,
    }));
    await appendObservations(env.pool, benchTypes, items, {
      provenance: { ...benchProvenance(env.runId, `scopes-${done}`), taskKey },
      idempotencyPrefix: `bench:${env.runId}:scopes:${done}`,
      observedAt: new Date().toISOString(),
    });
  }
  // The first read folds the history and stores its snapshots; measured reads start from them.
  await getEntityState(env.pool, policyOf, ref);
  return ref;
}
