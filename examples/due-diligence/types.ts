/** Observation types of the due-diligence example. */
import { z } from 'zod';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';

export const companyProfile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  description: 'Facts about a company gathered from a source.',
  fields: {
    name: z.string().min(1).max(200).optional(),
    headquarters: z.string().min(1).max(200).optional(),
    employees: z.number().int().nonnegative().optional(),
    sources: z.array(z.string().max(500)).max(50).optional(),
  },
  policies: {
    headquarters: 'last-writer-wins',
    employees: 'max',
    name: 'first-writer-wins',
    sources: 'set-union',
  },
});

export const riskAssessment = defineObservationType({
  name: 'company.risk',
  version: 1,
  entity: 'company',
  description: "An analyst's decision on a company's risk.",
  fields: {
    risk: z.enum(['low', 'medium', 'high']),
    rationale: z.string().min(1).max(2000),
  },
  policies: { risk: 'last-writer-wins', rationale: 'last-writer-wins' },
});

export const complianceReview = defineObservationType({
  name: 'company.compliance',
  version: 1,
  entity: 'company',
  description: "Compliance's decision on how deep to review a vendor.",
  fields: {
    review: z.enum(['standard', 'enhanced']),
    basis: z.string().min(1).max(2000),
  },
});

/** A reviewer's sign-off on signing with the vendor (the demo's MCP agent appends it). */
export const signoff = defineObservationType({
  name: 'company.signoff',
  version: 1,
  entity: 'company',
  description: "A reviewer's decision whether to sign with the vendor, and on what conditions.",
  fields: {
    approve: z.boolean(),
    conditions: z.string().min(1).max(2000),
  },
});

export const reportSummary = defineObservationType({
  name: 'report.summary',
  version: 1,
  entity: 'report',
  fields: { text: z.string().min(1).max(5000), risk: z.enum(['low', 'medium', 'high']) },
});

export const dueDiligenceTypes = new ObservationTypeRegistry([
  companyProfile,
  riskAssessment,
  complianceReview,
  signoff,
  reportSummary,
]);
