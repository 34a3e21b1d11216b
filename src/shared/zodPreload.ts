/**
 * Loaded once per worker when Temporal's reusable V8 context is created (src/workflowBundle.ts),
 * so the zod modules the workflow code imports are evaluated once and shared by every workflow
 * run, instead of once per run. Sandbox-safe: zod holds no per-workflow state for parsing.
 *
 * Building a schema here is what makes it work: zod fills its global config on first use (the
 * default locale on the first schema built, the memoizer on the first object or array), and the
 * SDK freezes what a preload leaves behind, so those writes must happen now, not in a run. Using `z` also keeps the import: zod's
 * package is flagged side-effect-free, so a bare `require('zod')` in the preload list is dropped.
 */
import { z } from 'zod';

export const ZOD_PRELOADED: boolean = z
  .strictObject({ a: z.array(z.string()) })
  .safeParse({ a: [''] }).success;
