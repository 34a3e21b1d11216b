/** The registry of subcommands, in the order `cairn help` lists them. */
import type { Command } from '../command';
import { blastCommand } from './blast';
import { claimsCommand } from './claims';
import { devCommand } from './dev';
import { entityCommand } from './entity';
import { episodesCommand } from './episodes';
import { inboxCommand } from './inbox';
import { logCommand } from './log';
import { maintenanceCommand } from './maintenance';
import { migrateCommand } from './migrate';
import { retractCommand } from './retract';
import { taskCommand } from './task';
import { traceCommand } from './trace';
import { verifyCommand } from './verify';
import { workerCommand } from './worker';
import { repoOnlyCommand } from '../repoOnly';
import { agentsCommand, mcpCommand } from './mcpCommands';

// demo and bench use examples/ and bench/: loaded only when run, and only from a clone.
const demoCommand = repoOnlyCommand({
  name: 'demo',
  summary: 'Run the due-diligence example end to end on a real Temporal server and Postgres.',
  usage:
    'cairn demo [--keep] [--task-key KEY] [--company ID] [--llm [--provider openai|anthropic] [--model ID]]',
  module: 'src/cli/commands/demo.ts',
  exportName: 'demoCommand',
});
const benchCommand = repoOnlyCommand({
  name: 'bench',
  summary:
    'Run the benchmarks (fresh cairn_bench database, Temporal dev server) and print medians and ratios.',
  usage: 'cairn bench [--only SUBSTRING] [--quick] [--rounds N] [--json]',
  module: 'src/cli/commands/bench.ts',
  exportName: 'benchCommand',
});

export const commands: Command[] = [
  benchCommand,
  demoCommand,
  devCommand,
  migrateCommand,
  taskCommand,
  workerCommand,
  entityCommand,
  traceCommand,
  logCommand,
  blastCommand,
  retractCommand,
  verifyCommand,
  claimsCommand,
  inboxCommand,
  episodesCommand,
  maintenanceCommand,
  mcpCommand,
  agentsCommand,
];
