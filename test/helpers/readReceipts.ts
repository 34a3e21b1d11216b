/**
 * Fixtures for the read-receipt tests: one entity type with a few fields, agent steps that read
 * through a real ReadTracker and commit through the real read receipt (appendWithReads).
 */
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import { z } from 'zod';
import { ReadTracker } from '../../activities/readTracking';
import type { EntityRef } from '../../src/shared/observation';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';
import { policyResolverFor } from '../../src/shared/reducer';
import type { ReadSetEntry } from '../../src/shared/readSets';
import type { AppendContext } from '../../src/store/observations/append';
import { getEntityState } from '../../src/store/observations/read';
import { appendWithReads, type StepAppendItem } from '../../src/store/staleness';

export const dealFacts = defineObservationType({
  name: 'deal.facts',
  version: 1,
  entity: 'deal',
  fields: {
    price: z.number().optional(),
    status: z.string().optional(),
    risk: z.string().optional(),
    tags: z.array(z.string()).optional(),
  },
  policies: { tags: 'set-union' },
});
export const dealDecision = defineObservationType({
  name: 'deal.decision',
  version: 1,
  entity: 'deal',
  fields: {
    verdict: z.string().optional(),
    price: z.number().optional(),
    status: z.string().optional(),
    risk: z.string().optional(),
  },
});
export const receiptTypes = new ObservationTypeRegistry([dealFacts, dealDecision]);
export const receiptPolicies = policyResolverFor(receiptTypes);

export const deal = (id: string): EntityRef => ({ entityType: 'deal', entityId: id });

export function stepContext(step: string, attempt = 1, taskKey = 'receipts'): AppendContext {
  return {
    provenance: {
      taskKey,
      workflowId: `wf-${step}`,
      runId: 'run-1',
      activityId: `step-${step}`,
      attempt,
      agentId: `agent-${step}`,
      role: 'analyst',
    },
    idempotencyPrefix: `wf-${step}:step-${step}`,
    observedAt: '2025-01-31T12:00:00.000Z',
  };
}

/** A tracker reading straight from the pool (no scopes), as a step's view does. */
export function tracker(pool: Pool): ReadTracker {
  return new ReadTracker({
    policyOf: receiptPolicies,
    read: (ref, opts) => getEntityState(pool, receiptPolicies, ref, opts),
    withDb: (fn) => fn(pool),
  });
}

/** Appends facts outside any step (no read set). Returns the observation id. */
export async function fact(
  pool: Pool,
  id: string,
  fields: Record<string, unknown>,
  extra: Partial<StepAppendItem> = {},
): Promise<string> {
  const { appended } = await appendWithReads(
    pool,
    receiptTypes,
    [{ entityType: 'deal', entityId: id, type: 'deal.facts', fields, ...extra }],
    stepContext(`fact-${randomUUID()}`),
    [],
  );
  return appended[0]!.id;
}

/** One step attempt: its reads so far (`entries`) and what it appends. */
export function commitStep(
  pool: Pool,
  step: string,
  entries: readonly ReadSetEntry[],
  items: StepAppendItem[],
  attempt = 1,
) {
  return appendWithReads(pool, receiptTypes, items, stepContext(step, attempt), entries);
}
