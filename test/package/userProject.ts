/**
 * Helpers of the package tier: the installed user project (test/setup/packageSetup.ts), its
 * compiler and its processes. Everything runs with plain node from the project's own
 * node_modules: no tsx, nothing from this repository.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { inject } from 'vitest';

const run = promisify(execFile);

export function projectDir(): string {
  return inject('cairnPackage').projectDir;
}

/** Copies a fixture folder (test/package/<name>) into the user project. */
export function addFixture(name: string, to = '.'): void {
  cpSync(path.join(__dirname, name), path.join(projectDir(), to), { recursive: true });
}

export interface TscResult {
  code: number;
  /** tsc's diagnostics, one per line (`file(line,col): error TSxxxx: message`). */
  output: string;
}

/** Runs the user project's own TypeScript compiler. */
export async function tsc(args: string[]): Promise<TscResult> {
  const bin = path.join(projectDir(), 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    const r = await run(process.execPath, [bin, ...args], { cwd: projectDir(), maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: r.stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Runs `node <args>` in the user project to completion. */
export async function node(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, args, { cwd: projectDir(), env, maxBuffer: 16 * 1024 * 1024 });
}

export interface Background {
  child: ChildProcess;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Resolves when `pattern` appears in the output; rejects if the process exits first. */
  ready(pattern: RegExp): Promise<void>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `node <args>` in the user project and keeps it running. */
export function startNode(args: string[], env: NodeJS.ProcessEnv): Background {
  const child = spawn(process.execPath, args, { cwd: projectDir(), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const waiters: (() => void)[] = [];
  const onData = (b: Buffer) => {
    out += b.toString();
    for (const w of waiters) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    ready(pattern) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) resolve();
        };
        waiters.push(check);
        check();
        void exited.then((code) => reject(new Error(`exited with ${code} before ${pattern}:\n${out}`)));
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
