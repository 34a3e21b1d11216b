/**
 * Claims with expiry and fencing (invariant 6 of the design): `claim` grants a resource to one
 * holder or says who holds it until when; `renew`, `release`; a lapsed claim is taken over with
 * a new token; `appendFenced` refuses writes whose token is no longer current; `nextFree` hands
 * out `<kind>/<id>` resources one per caller. The rules live in 004_claims.sql.
 */
export { claim, release, renew } from './claim';
export { appendFenced, checkFences, mapFenceError } from './fence';
export {
  auditClaimEvents,
  listClaimEvents,
  listClaims,
  CLAIM_LIST_LIMIT,
  type ClaimAudit,
  type ClaimEvent,
  type ClaimRow,
  type ClaimStatus,
  type ListClaimsOptions,
} from './list';
export {
  completeWorkItem,
  listWorkItems,
  nextFree,
  registerWorkItems,
  type NextFreeSource,
} from './workItems';
export * from './types';
