/**
 * Locating the `temporal` CLI, which Cairn uses as its development server (`temporal server
 * start-dev`). Nothing on npm ships it and the SDK's own launcher downloads it from the internet,
 * so when it is missing we build it with `go install` — the one route that works offline through
 * the Go module proxy.
 */
import { spawn, execFile } from 'node:child_process';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';

/** v1.5.1 is the newest CLI tag whose go.mod has no `replace` directive, so `go install` works. */
export const TEMPORAL_CLI_VERSION = '1.5.1';

const GO_INSTALL_ARGS = [
  'install',
  '-ldflags',
  `-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`,
  `github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`,
];

/** The exact command, for messages a user can copy. */
export const GO_INSTALL_COMMAND = `CGO_ENABLED=0 go install -ldflags "-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}" github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}`;

export interface FindTemporalCliOptions {
  /** Explicit path, normally from the TEMPORAL_CLI variable; wins over everything else. */
  configured?: string;
  log: (msg: string) => void;
  /** Only PATH, GOPATH and GOBIN are consulted. Defaults to `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** How often to print "still building…" during `go install`. */
  progressIntervalMs?: number;
}

const exeName = process.platform === 'win32' ? 'temporal.exe' : 'temporal';

/**
 * Returns an absolute path to a runnable `temporal` binary. Order: `configured`, `temporal` on PATH,
 * the Go install directory, then a one-time `go install`. Throws a one-line error when none works.
 */
export async function findOrBuildTemporalCli(opts: FindTemporalCliOptions): Promise<string> {
  const env = opts.env ?? process.env;

  if (opts.configured) {
    const configured = path.resolve(opts.configured);
    if (!(await isExecutableFile(configured))) {
      throw new Error(`TEMPORAL_CLI=${opts.configured} is not an executable file`);
    }
    return configured;
  }

  const onPath = await findOnPath(exeName, env.PATH ?? '');
  if (onPath) return onPath;

  const goDirs = await goInstallDirs(env);
  if (goDirs === null) {
    throw new Error(
      `Temporal CLI not found and Go is not installed: install the Temporal CLI (https://docs.temporal.io/cli#install) ` +
        `and put it on PATH, or set TEMPORAL_CLI=/path/to/temporal`,
    );
  }
  const installed = path.join(goDirs.binDir, exeName);
  if (await isExecutableFile(installed)) return installed;

  await goInstallCli(env, opts.log, opts.progressIntervalMs ?? 15_000);
  if (!(await isExecutableFile(installed))) {
    throw new Error(`go install finished but ${installed} is missing; is GOBIN set differently for go?`);
  }
  return installed;
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const s = await stat(file);
    if (!s.isFile()) return false;
    await access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string, pathVar: string): Promise<string | null> {
  for (const dir of pathVar.split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.resolve(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** Where `go install` puts binaries (GOBIN, else the first GOPATH entry's bin), or null without Go. */
async function goInstallDirs(env: NodeJS.ProcessEnv): Promise<{ binDir: string } | null> {
  const out = await new Promise<string | null>((resolve) => {
    execFile('go', ['env', 'GOBIN', 'GOPATH'], { env, timeout: 30_000 }, (err, stdout) =>
      resolve(err ? null : stdout),
    );
  });
  if (out === null) return null;
  const [gobin = '', gopath = ''] = out.split(/\r?\n/);
  if (gobin.trim()) return { binDir: gobin.trim() };
  const firstGopath = gopath.split(path.delimiter)[0]?.trim();
  if (!firstGopath) return null;
  return { binDir: path.join(firstGopath, 'bin') };
}

async function goInstallCli(env: NodeJS.ProcessEnv, log: (msg: string) => void, progressIntervalMs: number) {
  log(
    `Building the Temporal CLI v${TEMPORAL_CLI_VERSION} with go install (first time only, takes several minutes)…`,
  );
  log(`  ${GO_INSTALL_COMMAND}`);
  const started = Date.now();
  // Go prints one "go: downloading …" line per module; keep a count for progress and the tail for errors.
  let downloads = 0;
  const tail: string[] = [];
  const child = spawn('go', GO_INSTALL_ARGS, {
    env: { ...env, CGO_ENABLED: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const onData = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split(/\r?\n/)) {
      if (!line.trim()) continue;
      if (line.startsWith('go: downloading')) downloads++;
      tail.push(line);
      if (tail.length > 20) tail.shift();
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setInterval(() => {
    const secs = Math.round((Date.now() - started) / 1000);
    log(`  still building… (${secs} s, ${downloads} modules downloaded)`);
  }, progressIntervalMs);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c) => resolve(c));
    });
    if (code !== 0) {
      for (const line of tail) log(`  ${line}`);
      const last = tail.at(-1) ?? 'no output';
      throw new Error(`go install of the Temporal CLI failed (exit ${code}): ${last}`);
    }
  } finally {
    clearInterval(timer);
  }
  log(`Built the Temporal CLI in ${Math.round((Date.now() - started) / 1000)} s.`);
}
