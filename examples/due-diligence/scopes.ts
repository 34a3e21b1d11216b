/**
 * Scopes: what is learned about a company outlives the task, so company entities live in the
 * team scope `team:diligence` (every task that assesses the company adds to the same entity);
 * the report is the task's own (scope `task`, the default).
 */
export const DILIGENCE_SCOPE = 'team:diligence';

/** What the company-facing agents may read and write. */
export const companyScopes = {
  read: ['task', DILIGENCE_SCOPE, 'global'],
  write: ['task', DILIGENCE_SCOPE],
};
