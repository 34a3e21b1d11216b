/**
 * Creating the database itself, for `cairn dev` / `cairn migrate` on a fresh server. Needs a
 * login allowed to CREATE DATABASE; connects to the server's `postgres` database to do it.
 */
import { Client, escapeIdentifier } from 'pg';
import { pgError } from './pool';

const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

/** The database a URL names, and a URL for the same server's maintenance database. */
export function splitDatabaseUrl(databaseUrl: string): { database: string; maintenanceUrl: string } {
  const url = new URL(databaseUrl);
  const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (database === '') throw new Error(`database URL must name a database, e.g. postgres://host:5432/cairn`);
  url.pathname = '/postgres';
  return { database, maintenanceUrl: url.toString() };
}

/** The same server and login, connected to its `postgres` maintenance database. */
export function adminUrlFor(databaseUrl: string): string {
  return splitDatabaseUrl(databaseUrl).maintenanceUrl;
}

export async function ensureDatabase(databaseUrl: string): Promise<{ created: boolean }> {
  const { database, maintenanceUrl } = splitDatabaseUrl(databaseUrl);
  const client = new Client({ connectionString: maintenanceUrl, application_name: 'cairn-ensure-database' });
  await client.connect();
  try {
    const exists = await client.query('select 1 from pg_database where datname = $1', [database]);
    if (exists.rowCount) return { created: false };
    try {
      await client.query(`create database ${escapeIdentifier(database)}`);
      return { created: true };
    } catch (err) {
      // Another process created it between our check and our CREATE (which of the two errors
      // depends on how far the other CREATE had got).
      const code = pgError(err)?.code;
      if (code === DUPLICATE_DATABASE || code === UNIQUE_VIOLATION) return { created: false };
      throw err;
    }
  } finally {
    await client.end();
  }
}
