/**
 * The agreement part of `cairn demo` (docs/agreements.md): the analyst and the writer had to
 * agree on publishing the report. Shows the decision, each vote with its observation, and the
 * decision observation derived from them.
 */
import type { Pool } from 'pg';
import { PUBLISH_AGREEMENT } from '../../examples/due-diligence/publication';
import type { CairnClient } from '../client';
import { agreementEntity, agreementWorkflowId, formatRule, type AgreementOutcome } from '../shared/agreement';
import { formatEntityRef } from '../shared/observation';
import { renderTable } from './table';

export async function showAgreement(opts: {
  client: CairnClient;
  pool: Pool;
  taskKey: string;
  out: (line?: string) => void;
  step: (title: string) => void;
}): Promise<AgreementOutcome> {
  const { client, pool, taskKey, out, step } = opts;
  const workflowId = agreementWorkflowId(taskKey, PUBLISH_AGREEMENT);
  const outcome = (await client.temporal.workflow.getHandle(workflowId).result()) as AgreementOutcome;
  out();
  step(
    `agreement "${PUBLISH_AGREEMENT}": ${outcome.status} (${formatRule(outcome.rule)} of ${outcome.voters.join(', ')}; about ${outcome.subject ?? '-'})`,
  );
  out(
    renderTable(
      ['voter', 'vote', 'reason', 'vote observation'],
      outcome.voters.map((voter) => {
        const v = outcome.votes.find((x) => x.voter === voter);
        return [
          voter,
          v ? (v.approve ? 'approve' : 'reject') : '(did not vote)',
          v?.reason ?? '',
          v?.voteObservationId ?? '',
        ];
      }),
    ),
  );
  const { rows } = await pool.query<{ derived_from: string[] }>(
    'select derived_from from cairn.observations where id = $1',
    [outcome.decisionObservationId],
  );
  out(
    `  decision ${outcome.decisionObservationId} on ${formatEntityRef(agreementEntity(taskKey, PUBLISH_AGREEMENT))}, derived from ${rows[0]?.derived_from.length ?? 0} vote(s)`,
  );
  out(`  Temporal UI: ${client.uiUrl(workflowId)}`);
  return outcome;
}
