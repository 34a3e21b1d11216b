/**
 * A private Postgres cluster for fault tests: its own data directory and port, so a test can
 * stop and start the server without touching the shared one. initdb and pg_ctl refuse to run as
 * root, so they run as the `postgres` OS user when the test runs as root.
 */
import { execFile } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import { getFreePort } from '../../src/dev/ports';
import { migrate } from '../../src/store/migrate';

const run = promisify(execFile);

export interface PrivatePostgres {
  port: number;
  /** The cluster's data directory (postgresql.conf, pg_hba.conf), owned by the server's user. */
  dataDir: string;
  /** Gives a file written into the data directory to the server's user (chown when root). */
  giveToServer(file: string): void;
  /** The migrated `cairn` database, as the superuser `root` (trust auth over TCP). */
  url: string;
  start(): Promise<void>;
  /** `pg_ctl stop -m fast`: open sessions get admin_shutdown (57P01), new ones are refused. */
  stop(): Promise<void>;
  /** Stops the server and deletes its files. */
  destroy(): Promise<void>;
}

async function binDir(): Promise<string> {
  return (await run('pg_config', ['--bindir'])).stdout.trim();
}

async function asPostgres(cmd: string, args: string[]): Promise<void> {
  const asRoot = process.getuid?.() === 0;
  await run(asRoot ? 'runuser' : cmd, asRoot ? ['-u', 'postgres', '--', cmd, ...args] : args, {
    timeout: 120_000,
  });
}

export async function startPrivatePostgres(extraConf: string[] = []): Promise<PrivatePostgres> {
  const bin = await binDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-pg-'));
  if (process.getuid?.() === 0) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = path.join(dir, 'data');
  await asPostgres(path.join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'root',
    '--auth=trust',
    '-E',
    'UTF8',
    '--no-sync',
  ]);
  const port = await getFreePort();
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    ...extraConf,
  ].join(' ');
  const pgctl = path.join(bin, 'pg_ctl');
  const start = () =>
    asPostgres(pgctl, [
      '-D',
      data,
      '-l',
      path.join(dir, 'server.log'),
      '-o',
      options,
      '-w',
      '-t',
      '60',
      'start',
    ]);
  const stop = () => asPostgres(pgctl, ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  await start();
  const admin = new Client({ connectionString: `postgres://root@127.0.0.1:${port}/postgres` });
  await admin.connect();
  await admin.query('create database cairn');
  await admin.end();
  const url = `postgres://root@127.0.0.1:${port}/cairn`;
  await migrate(url);
  let destroyed = false;
  const owner =
    process.getuid?.() === 0
      ? {
          uid: Number((await run('id', ['-u', 'postgres'])).stdout.trim()),
          gid: Number((await run('id', ['-g', 'postgres'])).stdout.trim()),
        }
      : undefined;
  return {
    port,
    dataDir: data,
    giveToServer(file) {
      if (owner) chownSync(file, owner.uid, owner.gid);
    },
    url,
    start,
    stop,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
