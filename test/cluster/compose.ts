/**
 * Runs docker-compose.yml's own pieces outside Docker: a service's shell script with its
 * environment (plus overrides that point it at local services), with the image's tools replaced by
 * locally built binaries of the same version on PATH. A broken compose script fails here.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

export const root = path.resolve(__dirname, '..', '..');

interface Service {
  image?: string;
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
}
interface Compose {
  services: Record<string, Service>;
  configs?: Record<string, { content?: string }>;
}

export const composeText = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');
export const compose = parse(composeText) as Compose;

export function service(name: string): Service {
  const s = compose.services[name];
  if (!s) throw new Error(`docker-compose.yml has no service "${name}"`);
  return s;
}

/** Environment as a map, whichever of the two compose syntaxes is used. */
export function serviceEnv(name: string): Record<string, string> {
  const e = service(name).environment;
  if (Array.isArray(e))
    return Object.fromEntries(e.map((x) => [x.split('=')[0]!, x.slice(x.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e ?? {}).map(([k, v]) => [k, String(v)]));
}

/** The command as argv, with compose's `$$` escapes undone (what the container really runs). */
export function serviceCommand(name: string): string[] {
  const c = service(name).command;
  const argv = Array.isArray(c) ? c : (c ?? '').split(' ');
  return argv.map((a) => a.replaceAll('$$', '$'));
}

/** A directory of symlinks named like the image's tools, for PATH. */
export function toolShims(dir: string, tools: Record<string, string>): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, target] of Object.entries(tools)) symlinkSync(target, path.join(dir, name));
  return dir;
}

/** Runs a one-shot service's `sh -ec` script; rejects with its output when it exits non-zero. */
export function runServiceScript(
  name: string,
  opts: { overrides: Record<string, string>; shimDir: string; timeoutMs: number },
): Promise<string> {
  const script = serviceCommand(name).join('\n');
  const env = {
    ...process.env,
    ...serviceEnv(name),
    ...opts.overrides,
    PATH: `${opts.shimDir}:${process.env.PATH ?? ''}`,
  };
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-ec', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`compose service ${name} failed (${signal ?? `exit ${code}`}):\n${out}`));
    });
  });
}
