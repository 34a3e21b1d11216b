/**
 * The read-receipt part of `cairn demo` (docs/read-receipts.md): the compliance decision that
 * was refused as stale and what it saw on the retry; then the press headcount — the wrong fact
 * the analyst and compliance built on — is retracted, and its blast radius and the taint show.
 */
import type { Pool } from 'pg';
import type { PolicyResolver } from '../shared/entityState';
import { describeConflict } from '../shared/readSets';
import { blastRadius } from '../store/blastRadius';
import { listObservations } from '../store/observations/list';
import { getEntityState } from '../store/observations/read';
import { loadTaint, retract, taintedFields, withoutTainted } from '../store/quarantine';
import { readReceipt } from '../store/readSets';
import { listStaleRefusals } from '../store/staleness';
import { formatValue, formatWriter } from './format';
import { renderBlastRadius, renderQuarantine, renderReadReceipt } from './formatReads';

export async function showReadReceipts(opts: {
  pool: Pool;
  policyOf: PolicyResolver;
  taskKey: string;
  company: string;
  out: (line?: string) => void;
  step: (title: string) => void;
}): Promise<void> {
  const { pool, policyOf, taskKey, company, out, step } = opts;
  const ref = { entityType: 'company', entityId: company };
  const written = await listObservations(pool, { taskKey, limit: 100 });

  const refusals = await listStaleRefusals(pool, { taskKey });
  out();
  step(`stale decisions refused (${refusals.length}); each re-read and decided again`);
  for (const r of refusals)
    out(
      `  ${r.role}, attempt ${r.attempt} of ${r.activityId}: ${r.conflicts.map(describeConflict).join('; ')}`,
    );
  const retried = written.find((o) => o.type === 'company.compliance');
  const receipt = retried && (await readReceipt(pool, policyOf, retried.id));
  if (receipt) out(renderReadReceipt(receipt));

  const wrong = written.find((o) => o.provenance.activityId === 'step-press');
  if (!wrong) return;
  out();
  step('the press headcount was a misquote: retract it');
  const { quarantine } = await retract(pool, wrong.id, {
    reason: 'press misquoted the headcount',
    by: 'cairn demo',
  });
  out(`  ${renderQuarantine(quarantine)}`);
  out(renderBlastRadius(await blastRadius(pool, wrong.id, { policyOf })));

  const state = await getEntityState(pool, policyOf, ref);
  const taint = await loadTaint(pool);
  out();
  step(
    `company/${company} now (version ${state.version}): the retraction cleared what the fact won; what rests on it is tainted`,
  );
  for (const t of taintedFields(state, taint)) {
    const f = state.fields[t.field]!;
    out(
      `  ${t.field} = ${formatValue(f.value, 40)}  tainted: ${formatWriter(f.winner)} v${f.winner.entityVersion} rests on the retracted fact`,
    );
  }
  const clean = await withoutTainted(pool, policyOf, state, taint);
  const shown = Object.keys(clean.fields)
    .sort()
    .map((f) => `${f}=${formatValue(clean.fields[f]!.value, 24)}`);
  out(`  read with excludeTainted, an agent sees: ${shown.join(', ')}`);
}
