/**
 * Making sure a Postgres server answers. On the development machines Postgres is a system
 * service; if it is down and `pg_ctlcluster` exists (Debian), start it. Otherwise say what to do.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import pg from 'pg';

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    return true;
  } catch (err) {
    // A missing database still proves the server is up.
    return (err as { code?: string }).code === '3D000';
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function ensurePostgresRunning(databaseUrl: string, log: (m: string) => void): Promise<void> {
  if (await answers(databaseUrl)) return;
  const host = new URL(databaseUrl).hostname;
  const local = host === '127.0.0.1' || host === 'localhost' || host === '::1' || host === '';
  if (local && existsSync('/etc/postgresql')) {
    for (const version of readdirSync('/etc/postgresql')) {
      log(`Postgres is not answering; starting cluster ${version}/main with pg_ctlcluster`);
      try {
        execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], {
          stdio: 'inherit',
        });
      } catch {
        // fall through to the check below, which reports clearly
      }
    }
    for (let i = 0; i < 30; i++) {
      if (await answers(databaseUrl)) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new Error(`Postgres at ${host} does not answer; start it or set DATABASE_URL`);
}
