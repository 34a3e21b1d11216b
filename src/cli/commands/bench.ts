/**
 * `cairn bench`: brings up what it needs (a fresh `cairn_bench` database, a Temporal dev server
 * if none answers), runs the benchmarks in bench/, prints medians and ratios against raw
 * baselines measured in the same run, writes bench/results/latest.json, and stops what it started.
 */
import { parseArgs } from 'node:util';
import { Client, escapeIdentifier } from 'pg';
import type { ResultsFile } from '../../../bench/suite';
import type { CairnConfig } from '../../config';
import type { TemporalServer } from '../../dev/temporalServer';
import { splitDatabaseUrl } from '../../store/database';
import { UsageError, type Command } from '../command';
import { printJson } from '../table';
import { bringUpDatabase, bringUpTemporal } from '../stack';

export const BENCH_DATABASE = 'cairn_bench';

export const benchCommand: Command = {
  name: 'bench',
  summary:
    'Run the benchmarks (fresh cairn_bench database, Temporal dev server) and print medians and ratios.',
  usage: 'cairn bench [--only SUBSTRING[|SUBSTRING…]] [--quick] [--rounds N] [--json] [--database NAME]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        only: { type: 'string' },
        quick: { type: 'boolean' },
        rounds: { type: 'string' },
        json: { type: 'boolean' },
        database: { type: 'string' },
      },
    });
    const quick = values.quick ?? false;
    const rounds = values.rounds === undefined ? undefined : Number(values.rounds);
    if (rounds !== undefined && (!Number.isInteger(rounds) || rounds < 1 || rounds > 1000))
      throw new UsageError('--rounds must be an integer from 1 to 1000');
    const json = values.json ?? false;
    // With --json, stdout carries only the JSON; progress goes to stderr either way.
    const log = (m: string) => ctx.io.err(`  ${m}`);
    const started = new Date();
    const t0 = Date.now();

    // Loaded here, not at the top: `cairn <anything else>` never pays for (or breaks on) bench
    // code. require, not import(): bin/cairn.js registers tsx for CommonJS only.
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
    const bench = require('../../../bench/suite') as typeof import('../../../bench/suite');
    // Two benches on one server (several people, one machine) must not drop each other's database.
    const database = values.database ?? BENCH_DATABASE;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(database))
      throw new UsageError('--database must be a lower-case Postgres identifier');
    const base = ctx.config();
    const config: CairnConfig = {
      ...base,
      databaseUrl: withDatabase(base.databaseUrl, database),
      // Its own task queues, so a development worker on the same server never takes bench work.
      taskQueuePrefix: `${base.taskQueuePrefix}-bench`,
    };
    const sizes = {
      ...(quick ? bench.QUICK_SIZES : bench.FULL_SIZES),
      ...(rounds !== undefined ? { rounds } : {}),
    };

    ctx.io.err(`» database ${database} (recreated, so every run starts from the same table sizes)`);
    await recreateDatabase(config.databaseUrl);
    await bringUpDatabase(config, log);

    const env = await bench.createBenchEnv({ config, sizes, log });
    let server: TemporalServer | undefined;
    let probe: Awaited<ReturnType<typeof bench.createCpuProbe>> | undefined;
    let rows: Awaited<ReturnType<typeof bench.runBenchmarks>>;
    try {
      const entries = bench.selectEntries(bench.allBenchmarks(env), values.only);
      if (entries.length === 0)
        throw new UsageError(`no benchmark matches --only ${JSON.stringify(values.only)}`);
      if (entries.some((e) => e.needsTemporal)) {
        ctx.io.err('» temporal');
        server = await bringUpTemporal(config, ctx.root, log, { headless: true });
      }
      ctx.io.err(
        `» ${entries.length} benchmarks, ${sizes.rounds} rounds + 1 warm-up, interleaved${quick ? ' (quick: a smoke test, not a measurement)' : ''}`,
      );
      // CPU split per row (Node vs Postgres backends); a probe that cannot start only costs the column.
      probe = await bench.createCpuProbe(config.databaseUrl).catch((err: unknown) => {
        log(`no CPU split: ${String(err)}`);
        return undefined;
      });
      const p = probe;
      const cpu = p ? () => p.read() : undefined;
      rows = await bench.runBenchmarks(entries, { rounds: sizes.rounds, log, ...(cpu ? { cpu } : {}) });
    } finally {
      await probe?.close().catch(() => undefined);
      await env.close();
      await server?.stop();
    }

    const durationSeconds = Math.round((Date.now() - t0) / 100) / 10;
    const results: ResultsFile = {
      startedAt: started.toISOString(),
      durationSeconds,
      options: { rounds: sizes.rounds, quick, only: values.only ?? null },
      machine: bench.machineInfo(await postgresVersion(config.databaseUrl)),
      rows,
    };
    const file = await bench.writeResults(ctx.root, results);
    if (json) {
      printJson(ctx.io, results);
    } else {
      ctx.io.out('');
      ctx.io.out(bench.renderReport(rows));
      ctx.io.out('');
      ctx.io.out(
        `${sizes.rounds} rounds per benchmark after a warm-up; ratios are medians of per-round subject/baseline pairs.`,
      );
      ctx.io.out(`Took ${durationSeconds} s on ${results.machine.cpus} CPUs. Results: ${file}`);
    }
    return rows.some((r) => r.verdict === 'error') ? 1 : 0;
  },
};

/** The same server and login as `databaseUrl`, another database. */
export function withDatabase(databaseUrl: string, database: string): string {
  const url = new URL(databaseUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

async function recreateDatabase(databaseUrl: string): Promise<void> {
  const { database, maintenanceUrl } = splitDatabaseUrl(databaseUrl);
  const client = new Client({ connectionString: maintenanceUrl, application_name: 'cairn-bench' });
  await client.connect();
  try {
    await client.query(`drop database if exists ${escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

async function postgresVersion(databaseUrl: string): Promise<string | null> {
  const client = new Client({ connectionString: databaseUrl, application_name: 'cairn-bench' });
  try {
    await client.connect();
    const r = await client.query<{ v: string }>('select version() as v');
    return r.rows[0]?.v ?? null;
  } catch {
    return null;
  } finally {
    await client.end().catch(() => undefined);
  }
}
