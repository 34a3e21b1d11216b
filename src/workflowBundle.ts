/**
 * How Cairn bundles its workflow code, in one place for every bundle made: `npm run build`
 * (scripts/build.mjs), a worker bundling Cairn's sources at start (src/worker.ts), the tests and
 * the bench.
 *
 * Temporal's reusable V8 context gives each workflow run fresh module state: every module the
 * workflow code imports is evaluated again per run (and per replay after a cache eviction),
 * except the modules preloaded once when the context is created, which runs share. zod holds no
 * per-workflow state for parsing (Cairn's schemas are still built by Cairn's own modules, per
 * run), and its module initialisation was a large part of a run's load cost (bench/README.md,
 * "Task throughput, round 2"), so it is preloaded. A preloaded module's exports are frozen and
 * shared by every run: only modules without per-workflow state belong here.
 *
 * What the freeze rules out in workflow code bundled this way: zod string formats whose pattern
 * is one of zod's own constant regexes (z.guid(), z.email(), z.cuid(), z.ulid(), z.nanoid(),
 * z.base64(), z.ipv4(), z.url(), …) fail at parse time, because zod resets the pattern's
 * lastIndex and the frozen regex refuses the write. Give them a pattern of your own
 * (`z.guid({ pattern: /…/ })`, as src/shared/agreement.ts does). Formats that build their regex
 * per schema (z.uuid(), z.iso.datetime(), .regex(…)) are unaffected. Hence a worker applies this
 * to Cairn's own sources only unless asked (CreateWorkerOptions.bundlerOptions).
 */
import path from 'node:path';

/** Modules evaluated once per worker instead of once per workflow run (absolute paths). */
export function workflowPreloadModules(): string[] {
  // src/shared/zodPreload.ts here, dist/src/shared/zodPreload.js once built: the bundler resolves either.
  return [path.join(__dirname, 'shared', 'zodPreload')];
}

/** Options for `bundleWorkflowCode` (and `WorkerOptions.bundlerOptions`) shared by every bundle. */
export function workflowBundlerOptions(): { preloadModules: string[] } {
  return { preloadModules: workflowPreloadModules() };
}
