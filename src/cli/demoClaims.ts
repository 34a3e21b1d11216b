/**
 * The claims part of `cairn demo` (docs/coordination.md): a second, small task in which several
 * researcher steps start at once and race for the same sources through claims (nextFree over
 * registered work items). Each source has exactly one winner; the audit of the claim history
 * shows no double grant.
 */
import type { Pool } from 'pg';
import { SOURCE_IDS, sourceRaceTask, sourceWorkKind } from '../../examples/due-diligence/agents';
import type { CairnClient } from '../client';
import { auditClaimEvents, listWorkItems } from '../store/claims';
import { renderTable } from './table';

const RACERS = SOURCE_IDS.length + 1;

export async function showClaimRace(opts: {
  client: CairnClient;
  pool: Pool;
  taskKey: string;
  company: string;
  out: (line?: string) => void;
  step: (title: string) => void;
}): Promise<void> {
  const { client, pool, company, out, step } = opts;
  const taskKey = `${opts.taskKey}-race`;
  const kind = sourceWorkKind(taskKey);
  out();
  step(
    `claims: ${RACERS} researcher steps race for ${SOURCE_IDS.length} sources (ctx.registerWorkItems, then ctx.nextFree over work items "${kind}")`,
  );
  await client.startTask(sourceRaceTask(taskKey, company, RACERS));
  const result = await client.result(taskKey);
  out(
    renderTable(
      ['step', 'status', 'source won', 'fencing token'],
      result.steps.map((s) => {
        const o = (s.output ?? {}) as { source?: string | null; token?: number | null };
        return [s.id, s.status, o.source ?? '(none free)', o.token ?? ''];
      }),
    ),
  );
  const audit = await auditClaimEvents(pool, { prefix: `${kind}/` });
  const done = (await listWorkItems(pool, kind)).filter((w) => w.done).length;
  out(
    `  ${audit.grants} grants, ${done}/${SOURCE_IDS.length} sources done, ${audit.doubleGrants} double grants in cairn.claim_events`,
  );
  out(`  see them: cairn claims --all --resource ${kind}/`);
}
