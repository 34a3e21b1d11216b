/**
 * `cairn` — the command line for orchestrators and engineers. Each subcommand is a module in
 * ./commands; this file only dispatches and turns errors into one readable line.
 */
import { ConfigError, loadConfig, type CairnConfig } from '../config';
import { UsageError, type CliContext, type Command } from './command';
import { commands } from './commands';
import { repositoryRoot } from './repoOnly';

function help(list: Command[]): string {
  const width = Math.max(...list.map((c) => c.name.length));
  return [
    'usage: cairn <command> [options]',
    '',
    ...list.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'cairn <command> --help for details',
  ].join('\n');
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: CairnConfig | undefined;
  const ctx: CliContext = {
    config: () => (config ??= loadConfig(env)),
    io: { out: (l) => process.stdout.write(l + '\n'), err: (l) => process.stderr.write(l + '\n') },
    // In a clone: the repository (its .cairn/ holds dev-server state). Installed: the project the
    // command runs in, never node_modules.
    root: repositoryRoot() ?? process.cwd(),
  };
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    ctx.io.out(help(commands));
    return 0;
  }
  // `cairn task start` → command "task" with argv ["start", …]
  const command = commands.find((c) => c.name === name);
  if (!command) {
    ctx.io.err(`cairn: unknown command "${name}"\n\n${help(commands)}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    ctx.io.out(`usage: ${command.usage}\n\n${command.summary}`);
    return 0;
  }
  try {
    return (await command.run(rest, ctx)) ?? 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      ctx.io.err(`cairn: ${err.message}`);
      return 2;
    }
    if (err instanceof UsageError) {
      ctx.io.err(`cairn ${command.name}: ${err.message}\nusage: ${command.usage}`);
      return 2;
    }
    const e = err as Error;
    ctx.io.err(`cairn ${command.name}: ${e.message ?? String(err)}`);
    if (env.CAIRN_DEBUG) ctx.io.err(e.stack ?? '');
    return 1;
  }
}

/** Entry point used by bin/cairn.js. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`cairn: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
