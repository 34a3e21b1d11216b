// `npm run build` (and `prepack`): the package as users install it, runnable with plain node.
//   1. tsc -p tsconfig.build.json               -> dist/{src,workflows,activities}
//   2. the SQL migrations, which tsc leaves out  -> dist/src/store/migrations
//   3. the workflows, bundled once, now           -> dist/workflow-bundle.js
//      and again with Temporal's OpenTelemetry workflow interceptors (CAIRN_OTEL on)
//                                                  -> dist/workflow-bundle-otel.js
// Step 3 is why a worker started from node_modules needs no webpack (Temporal's bundler cannot
// compile TypeScript inside node_modules, and bundling at every start costs seconds).
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const require = createRequire(import.meta.url);
const log = (m) => process.stderr.write(`[build] ${m}\n`);

rmSync(dist, { recursive: true, force: true });

log('tsc -p tsconfig.build.json');
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json'], {
  cwd: root,
  stdio: 'inherit',
});

const migrationsFrom = path.join(root, 'src', 'store', 'migrations');
const migrationsTo = path.join(dist, 'src', 'store', 'migrations');
mkdirSync(migrationsTo, { recursive: true });
const sql = readdirSync(migrationsFrom).filter((f) => f.endsWith('.sql'));
for (const f of sql) cpSync(path.join(migrationsFrom, f), path.join(migrationsTo, f));
log(`copied ${sql.length} migrations`);

// Bundled from the compiled JavaScript, so the bundle holds exactly what dist/ holds.
const { bundleWorkflowCode } = require('@temporalio/worker');
const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn: (m) => log(m), error: (m) => log(m) };
// The interceptor modules come from the compiled telemetry module, so the list is defined once.
const { telemetryWorkflowModules } = require(path.join(dist, 'src', 'telemetry', 'setup.js'));
// Modules evaluated once per worker instead of once per workflow run (src/workflowBundle.ts).
const { workflowBundlerOptions } = require(path.join(dist, 'src', 'workflowBundle.js'));
const bundles = [
  ['workflow-bundle.js', []],
  ['workflow-bundle-otel.js', telemetryWorkflowModules()],
];
for (const [file, workflowInterceptorModules] of bundles) {
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(dist, 'workflows', 'index.js'),
    workflowInterceptorModules,
    ...workflowBundlerOptions(),
    logger: quiet,
  });
  writeFileSync(path.join(dist, file), code);
  log(`dist/${file} (${Math.round(code.length / 1024)} KiB)`);
}
