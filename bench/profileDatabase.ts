/**
 * The scratch database of a profile script (`bench/*.profile.ts`): dropped and created afresh on
 * the server DATABASE_URL names, optionally configured, then migrated. `drop()` removes it and
 * closes the maintenance connection.
 */
import pg from 'pg';
import { loadConfig } from '../src/config';
import { splitDatabaseUrl } from '../src/store/database';
import { migrate } from '../src/store/migrate';

export interface ProfileDatabase {
  /** The scratch database's URL. */
  url: string;
  /** Drops the database (unless `keep`) and closes the maintenance connection. */
  drop(opts?: { keep?: boolean }): Promise<void>;
}

export async function createProfileDatabase(
  name: string,
  opts: { settings?: Record<string, string> } = {},
): Promise<ProfileDatabase> {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`database name ${name}: a plain lower-case name`);
  const url = new URL(loadConfig(process.env).databaseUrl);
  url.pathname = `/${name}`;
  const admin = new pg.Client({ connectionString: splitDatabaseUrl(url.toString()).maintenanceUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name}`);
  await admin.query(`create database ${name}`);
  for (const [setting, value] of Object.entries(opts.settings ?? {}))
    await admin.query(`alter database ${name} set ${setting} = ${pg.escapeLiteral(value)}`);
  await migrate(url.toString());
  return {
    url: url.toString(),
    async drop({ keep = false } = {}) {
      if (!keep) await admin.query(`drop database if exists ${name}`);
      await admin.end();
    },
  };
}
