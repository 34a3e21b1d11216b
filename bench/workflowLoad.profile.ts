/**
 * What a workflow run pays for loading the workflow bundle (bench/README.md, "Task throughput,
 * round 2"): replays one stored 1-step task history (test/replay/histories/0.3.0/cairn-v3b-refs.json)
 * many times, each replay a fresh workflow in the reusable V8 context (so each pays the per-run
 * module evaluation, as a run after a cache eviction does), against the bundle with and without
 * the zod preload (src/workflowBundle.ts), rounds interleaved; prints Node CPU µs per replay.
 * No server needed:
 *
 *   npx tsx bench/workflowLoad.profile.ts [--rounds 3] [--ops 200]
 *
 * Not part of `cairn bench`: an experiment that isolates the bundle's per-run load cost.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { bundleWorkflowCode, Runtime, Worker, type BundleOptions } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { WORKFLOWS_PATH } from '../src/worker';
import { workflowBundlerOptions } from '../src/workflowBundle';
import { median } from './harness';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, ops: { type: 'string', default: '200' } },
});
const rounds = Number(values.rounds);
const ops = Number(values.ops);

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };
Runtime.install({ logger: quiet });
const historyFile = path.join(__dirname, '..', 'test', 'replay', 'histories', '0.3.0', 'cairn-v3b-refs.json');
const history = historyFromJSON(JSON.parse(readFileSync(historyFile, 'utf8')));

const variants: [string, Partial<BundleOptions>][] = [
  ['no preload', {}],
  ['preload (workflowBundlerOptions)', workflowBundlerOptions()],
];

async function main(): Promise<void> {
  const bundles = await Promise.all(
    variants.map(async ([name, extra]) => {
      const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quiet, ...extra });
      return { name, code, samples: [] as number[] };
    }),
  );
  for (let r = 0; r < rounds + 1; r++) {
    for (const b of bundles) {
      const histories = Array.from({ length: ops }, (_, i) => ({ workflowId: `wf-${r}-${i}`, history }));
      const t0 = process.cpuUsage();
      for await (const res of Worker.runReplayHistories({ workflowBundle: { code: b.code } }, histories)) {
        if (res.error) throw res.error;
      }
      const d = process.cpuUsage(t0);
      if (r > 0) b.samples.push((d.user + d.system) / ops); // round 0 warms up
    }
  }
  for (const b of bundles)
    process.stdout.write(
      `${b.name.padEnd(36)} ${Math.round(median(b.samples))} µs Node CPU per replayed 1-step task (rounds: ${b.samples.map(Math.round).join(', ')})\n`,
    );
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
