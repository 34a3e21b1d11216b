/**
 * Commands and options that use the repository's examples/ and bench/ (`cairn demo`,
 * `cairn bench`, `cairn task start --example`). They run from a clone, where the CLI runs its
 * TypeScript sources with tsx. The installed package ships neither folder, and the library never
 * imports them: they are loaded here, lazily, by a path computed at run time, so the build does
 * not compile them either.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from './command';

/** The repository root when this file runs from the sources (src/cli/repoOnly.ts), else undefined. */
export function repositoryRoot(): string | undefined {
  if (!__filename.endsWith('.ts')) return undefined;
  const root = path.resolve(__dirname, '..', '..');
  return existsSync(path.join(root, 'examples')) ? root : undefined;
}

export class RepoOnlyError extends Error {
  override readonly name = 'RepoOnlyError';
}

/** Loads `relative` (from the repository root) or explains why it cannot be. */
export function requireFromRepository<T>(relative: string, what: string): T {
  const root = repositoryRoot();
  if (!root) {
    throw new RepoOnlyError(
      `${what} runs from a clone of the Cairn repository (it uses examples/ or bench/, which the installed package does not ship)`,
    );
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- chosen at run time, see above
  return require(path.join(root, relative)) as T;
}

/** A command whose implementation lives in the repository and is loaded only when it runs. */
export function repoOnlyCommand(spec: {
  name: string;
  summary: string;
  usage: string;
  module: string;
  exportName: string;
}): Command {
  return {
    name: spec.name,
    summary: repositoryRoot() ? spec.summary : `${spec.summary} (repository only)`,
    usage: spec.usage,
    run(argv, ctx) {
      const mod = requireFromRepository<Record<string, Command | undefined>>(
        spec.module,
        `cairn ${spec.name}`,
      );
      const command = mod[spec.exportName];
      if (!command) throw new Error(`${spec.module} does not export ${spec.exportName}`);
      return command.run(argv, ctx);
    },
  };
}
