/** The shape of a `cairn` subcommand. Each lives in its own module under src/cli/commands/. */
import type { CairnConfig } from '../config';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export interface CliContext {
  /** Parsed lazily: commands such as `help` work even with a bad environment. */
  config(): CairnConfig;
  io: CliIo;
  /** The repository root (where .cairn/ lives). */
  root: string;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(argv: string[], ctx: CliContext): Promise<number | void>;
}

/** Thrown for wrong arguments: printed as one line plus the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
