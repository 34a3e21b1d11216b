/**
 * Where a benchmark's CPU goes: this process (process.cpuUsage) and the Postgres backends that
 * serve the bench's connections (utime + stime from /proc/<pid>/stat of every backend of the
 * bench database whose application_name starts with `cairn-bench`). pg_stat_statements would
 * need shared_preload_libraries, which a shared server may not allow; /proc needs Postgres on
 * this machine (the development setup). When no backend can be read, the probe fails and the
 * table simply has no CPU column for the run.
 *
 * Cumulative per backend: a backend that ends keeps its last reading, one that starts counts
 * from zero, so a round's difference is the CPU its backends spent during the round. Background
 * processes (WAL writer, checkpointer) are not counted.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import type { CpuTimes } from './harness';

export interface CpuProbe {
  read(): Promise<CpuTimes>;
  close(): Promise<void>;
}

export async function createCpuProbe(databaseUrl: string): Promise<CpuProbe> {
  const ticksPerSecond = clockTicks();
  // Its own connection, not counted (its application_name is not a bench one).
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'cpu-probe' });
  await client.connect();
  const lastTicks = new Map<number, number>();
  return {
    async read() {
      const { rows } = await client.query<{ pid: number }>(
        `select pid from pg_stat_activity
          where datname = current_database() and application_name like 'cairn-bench%'`,
      );
      let readable = 0;
      await Promise.all(
        rows.map(async ({ pid }) => {
          const ticks = await backendTicks(pid);
          if (ticks === undefined) return;
          readable++;
          lastTicks.set(pid, Math.max(ticks, lastTicks.get(pid) ?? 0));
        }),
      );
      if (rows.length > 0 && readable === 0)
        throw new Error('no Postgres backend readable in /proc (server on another machine?)');
      let total = 0;
      for (const t of lastTicks.values()) total += t;
      const own = process.cpuUsage();
      return { nodeMs: (own.user + own.system) / 1000, postgresMs: (total * 1000) / ticksPerSecond };
    },
    close: () => client.end(),
  };
}

/** utime + stime of a process, in clock ticks; undefined when it is gone or not ours to read. */
async function backendTicks(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at state (field 3).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
  } catch {
    return undefined;
  }
}

function clockTicks(): number {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}
