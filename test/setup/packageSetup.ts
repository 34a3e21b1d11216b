/**
 * Global setup of the package tier: the package as a user gets it. `npm pack` (its prepack runs
 * the build) into a temporary folder, then a fresh project in the OS temp dir, outside the
 * repository, with `npm install <tarball>` plus the user's own tools (typescript, zod,
 * @types/node). Done once per run; the test files of the tier write their sources into it.
 * Offline-friendly: every package comes from npm's cache after `npm ci` (--prefer-offline).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { log } from './services';

const run = promisify(execFile);
const root = path.resolve(__dirname, '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

declare module 'vitest' {
  export interface ProvidedContext {
    cairnPackage: {
      /** The installed user project (has node_modules/@cairn-memory/cairn). */
      projectDir: string;
      tarball: string;
      /** Paths inside the tarball, as `npm pack --json` lists them. */
      files: string[];
    };
  }
}

/** The version the repository itself uses, so the install needs nothing beyond npm's cache. */
function devVersion(name: string): string {
  return (
    JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    }
  ).version;
}

export default async function setup(project: TestProject): Promise<() => void> {
  const work = mkdtempSync(path.join(os.tmpdir(), 'cairn-package-test-'));
  const started = Date.now();
  log(`npm pack (builds the package) into ${work}`);
  const packed = await run(npm, ['pack', '--json', '--pack-destination', work], {
    cwd: root,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
    filename: string;
    files: { path: string }[];
  }[];
  if (!info) throw new Error(`npm pack printed no package: ${packed.stdout}`);
  const tarball = path.join(work, path.basename(info.filename));

  const projectDir = path.join(work, 'user-project');
  mkdirSync(projectDir);
  writeFileSync(
    path.join(projectDir, 'package.json'),
    JSON.stringify({ name: 'user-project', private: true, version: '1.0.0' }, null, 2),
  );
  const deps = [tarball, ...['typescript', 'zod', '@types/node'].map((d) => `${d}@${devVersion(d)}`)];
  log(`npm install ${[path.basename(tarball), ...deps.slice(1)].join(' ')} (in ${projectDir})`);
  await run(npm, ['install', ...deps, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: projectDir,
    maxBuffer: 64 * 1024 * 1024,
  });
  log(`package installed in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  project.provide('cairnPackage', { projectDir, tarball, files: info.files.map((f) => f.path) });
  return () => rmSync(work, { recursive: true, force: true });
}
