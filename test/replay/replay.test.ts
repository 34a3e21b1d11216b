/**
 * Replays stored histories (every file under histories/, one folder per released version of the
 * workflow code; top-level files are 0.1.0's) (recorded with CAIRN_RECORD_HISTORIES=1 by
 * test/workflow/recordHistories.test.ts) against the current workflow code. No server needed.
 * A failure here means a workflow change is not replay-safe for runs already in flight: gate it
 * with `patched()` or version the workflow.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { WORKFLOWS_PATH } from '../../src/worker';
import { workflowBundlerOptions } from '../../src/workflowBundle';

const dir = path.join(__dirname, 'histories');
// Append-only: a history is never re-recorded or removed, so code in flight stays guarded.
const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.json')).sort();

it('has stored histories to replay', () => {
  expect(files.length).toBeGreaterThanOrEqual(2);
});

it('replays every stored history without non-determinism', async () => {
  const { code } = await bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    ...workflowBundlerOptions(),
    logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} },
  });
  // Replayed as shipped: zod preloaded once and shared by every history replayed in this one
  // context (src/workflowBundle.ts). The preload must survive bundling: webpack drops a bare
  // require of a side-effect-free package.
  expect(code).toMatch(/preloadModules\(\) \{\s*__webpack_require__\([^)]*zodPreload/);
  const histories = files.map((f) => ({
    workflowId: path.basename(f).replace(/\.json$/, ''),
    history: historyFromJSON(JSON.parse(readFileSync(path.join(dir, f), 'utf8'))),
  }));
  const outcomes: { workflowId: string; error: string | undefined }[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: { code } }, histories)) {
    outcomes.push({ workflowId: r.workflowId, error: r.error?.message });
  }
  expect(outcomes).toEqual(histories.map((h) => ({ workflowId: h.workflowId, error: undefined })));
  expect(outcomes).toHaveLength(files.length);
}, 120_000);
