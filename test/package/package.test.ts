/**
 * The built package, installed as a user installs it (test/setup/packageSetup.ts packs it and
 * installs the tarball into a fresh project outside the repository). The user project in
 * ./fixture imports only `@cairn-memory/cairn` and its subpaths; here it is typechecked with its
 * own tsc, its worker runs from node_modules with plain node against the test Temporal server and
 * a fresh database, and a task runs end to end.
 */
import { randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { findOrBuildTemporalCli } from '../../src/dev/temporalCli';
import { createEmptyDatabase } from '../helpers/database';
import { addFixture, node, projectDir, startNode, tsc, type Background, type TscResult } from './userProject';

const run = promisify(execFile);

let database: Awaited<ReturnType<typeof createEmptyDatabase>>;
let compiled: TscResult;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  database = await createEmptyDatabase();
  const temporal = inject('cairnTest');
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DATABASE_URL: database.url,
    TEMPORAL_ADDRESS: temporal.temporalAddress,
    TEMPORAL_NAMESPACE: temporal.namespace,
    CAIRN_TASK_QUEUE_PREFIX: `pkg${randomUUID().slice(0, 8)}`,
  };
  addFixture('fixture');
  // With the library check on (the fixture's tsconfig keeps tsc's usual skipLibCheck), so Cairn's
  // own declaration files are checked too. It still emits on errors; the tests below say which
  // diagnostics are acceptable (none of Cairn's).
  compiled = await tsc(['-p', 'tsconfig.json', '--skipLibCheck', 'false']);
});

afterAll(async () => {
  await database?.drop();
});

describe('the tarball', () => {
  it('ships the compiled code, the migrations, the workflow bundle and docs, and no tests, bench, examples or sources', () => {
    const files = inject('cairnPackage').files;
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'bin/cairn.js', 'dist/workflow-bundle.js']),
    );
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/src/index.js',
        'dist/src/index.d.ts',
        'dist/src/workflow.js',
        'dist/src/workflow.d.ts',
      ]),
    );
    expect(files).toEqual(expect.arrayContaining(['docs/getting-started.md']));
    const migrations = readdirSync(path.resolve(__dirname, '..', '..', 'src', 'store', 'migrations')).filter(
      (f) => f.endsWith('.sql'),
    );
    expect(migrations.length).toBeGreaterThan(0);
    for (const m of migrations) expect(files).toContain(`dist/src/store/migrations/${m}`);
    const stray = files.filter(
      (f) =>
        /^(test|bench|examples|src|workflows|activities|scripts|\.ci)\//.test(f) ||
        /Dockerfile|docker-compose|tsconfig|vitest/.test(f),
    );
    expect(stray).toEqual([]);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(
      files.filter(
        (f) => /^dist\/(bench|examples|test)\//.test(f) || /cli\/commands\/(demo|bench)\./.test(f),
      ),
    ).toEqual([]);
  });
});

describe('a user project importing only the package', () => {
  it("typechecks (strict, and the package's declaration files with skipLibCheck false) and compiles", () => {
    const diagnostics = compiled.output.split('\n').filter((line) => /error TS\d+/.test(line));
    // @temporalio/common's declarations import the untyped `ms`: any skipLibCheck-false build
    // reports it, it is not Cairn's, and users keep tsc's usual skipLibCheck. Everything else,
    // in the user's code and in Cairn's .d.ts files, must be clean.
    const temporalMs = (line: string) =>
      /^node_modules\/@temporalio\/common\/lib\/time\.d\.ts.*'ms'/.test(line);
    expect(diagnostics.filter((line) => !temporalMs(line))).toEqual([]);
    // The library check really ran (the known diagnostic shows it did).
    expect(diagnostics.some(temporalMs)).toBe(true);
    expect(existsSync(path.join(projectDir(), 'dist', 'worker.js'))).toBe(true);
    expect(existsSync(path.join(projectDir(), 'dist', 'start.js'))).toBe(true);
  });

  it('runs the cairn bin as compiled JavaScript: help, and migrate with the shipped migrations', async () => {
    const bin = path.join('node_modules', '@cairn-memory', 'cairn', 'bin', 'cairn.js');
    const help = await node([bin, 'help'], env);
    expect(help.stdout).toMatch(/demo .*\(repository only\)/);
    const migrated = await node([bin, 'migrate'], env);
    expect(migrated.stdout + migrated.stderr).toMatch(/applied migrations: 001_/);
    // A worker started without an agent module is told what to give, not handed the repo's examples.
    await expect(node([bin, 'worker', '--no-migrate'], env)).rejects.toMatchObject({
      stderr: expect.stringMatching(/--agents/),
    });
  });
});

describe("the user project's worker, run from node_modules with plain node", () => {
  let worker: Background;

  beforeAll(async () => {
    expect(compiled.code === 0 || existsSync(path.join(projectDir(), 'dist', 'worker.js'))).toBe(true);
    worker = startNode(['dist/worker.js'], env);
    await worker.ready(/worker ready: .*-tasks/);
  });

  afterAll(async () => {
    if (worker) expect(await worker.stop()).toBe(0);
  });

  it('serves a two-agent task started by the client, whose typed state reads back', async () => {
    const taskKey = `pkg-${randomUUID().slice(0, 8)}`;
    const { stdout } = await node(['dist/start.js', taskKey], env);
    const result = JSON.parse(stdout.trim().split('\n').pop()!) as unknown;
    expect(result).toEqual({
      workflowId: `cairn-task-${taskKey}`,
      expectedId: `cairn-task-${taskKey}`,
      status: 'completed',
      version: 2,
      fields: { headquarters: 'Berlin', employees: 120, verdict: 'approve', reason: 'headquarters Berlin' },
      headquarters: 'Berlin',
    });
  });

  it("runs the user's unit test of its agents with the /testing helpers (no Temporal)", async () => {
    const { stdout } = await node(['--test', 'dist/agents.check.js'], env);
    expect(stdout).toMatch(/# pass 2/);
    expect(stdout).toMatch(/# fail 0/);
  });

  it('loaded the prebuilt workflow bundle instead of bundling at start-up', () => {
    // Temporal's bundler logs this line (at INFO, which the worker prints) whenever it bundles.
    expect(worker.output()).toMatch(/worker ready/);
    expect(worker.output()).not.toContain('Workflow bundle created');
  });

  it('serves a task started with the stock temporal CLI exactly as docs/getting-started.md shows', async () => {
    const doc = readFileSync(path.resolve(__dirname, '..', '..', 'docs', 'getting-started.md'), 'utf8');
    const command = /temporal workflow start \\\n([\s\S]*?)\ntemporal workflow result/.exec(doc)?.[1];
    expect(command).toBeDefined();
    const flags = Object.fromEntries(
      [...command!.matchAll(/--([a-z-]+) ('[^']*'|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^'|'$/g, '')]),
    );
    expect(flags).toMatchObject({
      'task-queue': 'cairn-tasks',
      type: 'taskWorkflow',
      'workflow-id': 'cairn-task-review-globex',
    });
    // The documented payload, with this test's task key and task-queue prefix.
    const input = JSON.parse(flags.input!) as { taskQueuePrefix: string; task: { taskKey: string } };
    const taskKey = `cli-${randomUUID().slice(0, 8)}`;
    const prefix = env.CAIRN_TASK_QUEUE_PREFIX!;
    const payload = JSON.stringify({ ...input, taskQueuePrefix: prefix, task: { ...input.task, taskKey } });
    const cli = await findOrBuildTemporalCli({ log: () => {} });
    const common = ['--address', env.TEMPORAL_ADDRESS!, '--namespace', env.TEMPORAL_NAMESPACE!];
    const workflowId = `cairn-task-${taskKey}`;
    await run(cli, [
      'workflow',
      'start',
      ...common,
      '--task-queue',
      `${prefix}-tasks`,
      '--type',
      flags.type!,
      '--workflow-id',
      workflowId,
      '--id-conflict-policy',
      flags['id-conflict-policy']!,
      '--id-reuse-policy',
      flags['id-reuse-policy']!,
      '--input',
      payload,
    ]);
    const { stdout } = await run(cli, [
      'workflow',
      'result',
      ...common,
      '--workflow-id',
      workflowId,
      '--output',
      'json',
    ]);
    expect(stdout).toMatch(/"status":\s*"completed"/);
    expect(stdout).toMatch(/"verdict":\s*"approve"/);
  });
});
