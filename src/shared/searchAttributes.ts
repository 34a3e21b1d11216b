/**
 * Search attributes Cairn sets on task workflows, registered by `cairn dev` and docker-compose.
 * Names are part of the public surface: `cairn task list` and the Temporal UI filter on them.
 */
export const SEARCH_ATTRIBUTES = {
  CairnTaskKey: 'Keyword',
  CairnTaskStatus: 'Keyword',
  CairnRoles: 'KeywordList',
} as const;

export type SearchAttributeName = keyof typeof SEARCH_ATTRIBUTES;
