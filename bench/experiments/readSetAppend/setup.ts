/**
 * The experiment's database content: the bench types, 19 context entities (ctx-0…ctx-18, version
 * 1) and one decided entity per variant (d-<variant>, version 1). Run by measure.sh.
 */
import { benchFields, benchItem, benchTypes } from '../../fixtures';
import { appendObservations } from '../../../src/store/observations/append';
import { registerObservationTypes } from '../../../src/store/observations/registerTypes';
import { createPool } from '../../../src/store/pool';

async function main(): Promise<void> {
  const pool = createPool(process.env.DATABASE_URL!, { scopes: 'all' });
  const ctx = (activityId: string) => ({
    provenance: {
      taskKey: 't',
      workflowId: 'w',
      runId: '',
      activityId,
      attempt: 1,
      agentId: 'a',
      role: 'bench',
    },
    idempotencyPrefix: activityId,
    observedAt: new Date().toISOString(),
  });
  await registerObservationTypes(pool, benchTypes.all());
  const item = (entityId: string, i: number, kind: 'assertion' | 'decision') => ({
    entityType: 'bench',
    entityId,
    type: benchItem.name,
    kind,
    fields: benchFields(i),
  });
  await appendObservations(
    pool,
    benchTypes,
    Array.from({ length: 19 }, (_, i) => item(`ctx-${i}`, i, 'assertion')),
    ctx('setup'),
  );
  const variants = ['alone', 'two', 'two_fixed', 'p0', 'comb', 'comb2', 'two_off', 'comb_off'];
  await appendObservations(
    pool,
    benchTypes,
    variants.map((v) => item(`d-${v}`, 1, 'decision')),
    ctx('setup2'),
  );
  await pool.end();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
