import { parseArgs } from 'node:util';
import { startTelemetry } from '../../telemetry/setup';
import { createWorker } from '../../worker';
import type { Command } from '../command';
import { UsageError } from '../command';
import { loadAgentModule } from '../agentModule';
import { bringUpDatabase } from '../stack';
import { installConciseRuntime } from '../logging';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'Run a worker: the task workflow and agent roles from an agent module.',
  usage: 'cairn worker [--agents <module>] [--roles a,b] [--no-tasks] [--no-migrate]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        agents: { type: 'string' },
        roles: { type: 'string' },
        'no-tasks': { type: 'boolean' },
        'no-migrate': { type: 'boolean' },
      },
    });
    const config = ctx.config();
    const mod = loadAgentModule(ctx.root, values.agents);
    const wanted = values.roles
      ?.split(',')
      .map((r) => r.trim())
      .filter(Boolean);
    const agents = wanted ? mod.agents.filter((a) => wanted.includes(a.role)) : mod.agents;
    if (wanted && agents.length !== wanted.length) {
      throw new UsageError(
        `unknown role in --roles; the module has: ${mod.agents.map((a) => a.role).join(', ')}`,
      );
    }
    // Migrating is safe when several workers start at once (advisory lock), so workers do it.
    if (!values['no-migrate']) await bringUpDatabase(config, (m) => ctx.io.out(`cairn worker: ${m}`));
    // CAIRN_OTEL: traces and metrics (off by default: nothing is registered).
    const telemetry = await startTelemetry(config, { installRuntime: false });
    installConciseRuntime((line) => ctx.io.out(line), 'INFO', telemetry.runtimeOptions);
    try {
      // The worker makes its own pool, sized from its concurrency (CAIRN_PG_POOL_MAX overrides).
      const worker = await createWorker({
        config,
        registry: mod.types,
        agents,
        serveTasks: !values['no-tasks'],
        telemetry,
      });
      const stop = () => void worker.shutdown();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      if (worker.schema.ahead.length > 0)
        ctx.io.out(
          `cairn worker: database schema is at version ${worker.schema.version}, ahead of this code by non-breaking migrations only (${worker.schema.ahead.join(', ')}); running`,
        );
      ctx.io.out(
        `cairn worker: serving ${worker.taskQueues.join(', ')} on ${config.temporalAddress} (Ctrl-C stops)`,
      );
      await worker.run();
    } finally {
      await telemetry.shutdown();
    }
    return 0;
  },
};
