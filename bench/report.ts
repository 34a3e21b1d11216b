/** The printed table and bench/results/latest.json. */
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderTable } from '../src/cli/table';
import type { ResultRow } from './harness';

export function renderReport(rows: readonly ResultRow[]): string {
  const headers = [
    'group',
    'benchmark',
    'median',
    'p95',
    'baseline',
    'ratio',
    'goal',
    'verdict',
    'cpu pg/node',
  ];
  const body = rows.map((r) => [
    r.group,
    r.name,
    value(r.median, r.label),
    value(r.p95, r.label),
    r.baseline ? value(r.baseline.median, r.baseline.label) : '',
    r.ratio === null ? '' : `${r.ratio.toFixed(2)}×`,
    r.goal,
    r.verdict === 'error' ? `error: ${r.error ?? ''}` : r.verdict,
    r.cpu ? cpuColumn(r.cpu) : '',
  ]);
  return renderTable(headers, body);
}

/** "pg 62% · node 38%, 410/250 µs/op": where the row's CPU went (Postgres backends vs this process). */
function cpuColumn(c: NonNullable<ResultRow['cpu']>): string {
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  return `pg ${pct(c.postgresShare)} · node ${pct(c.nodeShare)}, ${number(c.postgresUsPerOp)}/${number(c.nodeUsPerOp)} µs/op`;
}

function value(v: number | null, label: string): string {
  if (v === null) return '';
  // Sub-millisecond latencies read better in microseconds.
  if (label === 'ms' && v < 1) return `${number(v * 1000)} µs`;
  return `${number(v)} ${label}`;
}

function number(v: number): string {
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export interface ResultsFile {
  startedAt: string;
  durationSeconds: number;
  options: { rounds: number; quick: boolean; only: string | null };
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGb: number;
    node: string;
    platform: string;
    postgres: string | null;
  };
  rows: readonly ResultRow[];
}

/** Writes bench/results/latest.json (git-ignored); returns its path. */
export async function writeResults(root: string, results: ResultsFile): Promise<string> {
  const dir = path.join(root, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'latest.json');
  await writeFile(file, JSON.stringify(results, null, 2) + '\n');
  return file;
}

export function machineInfo(postgres: string | null): ResultsFile['machine'] {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${os.release()}`,
    postgres,
  };
}
