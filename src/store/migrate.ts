/**
 * Forward-only schema migrations: numbered plain-SQL files `NNN_name.sql`, applied in order,
 * each in its own transaction, recorded in cairn.schema_migrations with a checksum.
 *
 * Runs as the connecting login (the schema owner, or a superuser on a development machine),
 * never as the application role. Safe when several processes start at once: the whole run
 * holds a session advisory lock, so a second migrator waits, then finds nothing left to do.
 *
 * Rolling deploys: a migration is breaking unless its file carries the line
 * `-- cairn: non-breaking` (it only adds what older code ignores: a table, a nullable column, an
 * index, a trigger that changes no result older code relies on). The flag is recorded per
 * migration, so older code meeting a database that is ahead only by non-breaking migrations
 * keeps running; ahead by a breaking one, it refuses with a message naming it.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Client } from 'pg';

export type MigrationErrorCode =
  | 'BAD_MIGRATION_FILES'
  | 'SCHEMA_AHEAD'
  | 'SCHEMA_BEHIND'
  | 'CHECKSUM_MISMATCH'
  | 'HISTORY_GAP'
  | 'MIGRATION_FAILED';

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
  constructor(
    readonly code: MigrationErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface MigrationFile {
  version: number;
  /** File name without `.sql`, e.g. `001_observation_log`. */
  name: string;
  sql: string;
  checksum: string;
  /** False when the file carries NON_BREAKING_MARKER: older code may run against it. */
  breaking: boolean;
}

/** The line that declares a migration safe for code that predates it (see the module comment). */
export const NON_BREAKING_MARKER = '-- cairn: non-breaking';
const NON_BREAKING_LINE = /^-- cairn: non-breaking\s*$/m;

export interface MigrateOptions {
  log?: (message: string) => void;
  migrationsDir?: string;
}

/** Arbitrary but fixed: every cairn migrator of one database contends on this key. */
const MIGRATION_LOCK_KEY = 0x6361_6972_6e; // "cairn"

export const DEFAULT_MIGRATIONS_DIR = path.join(__dirname, 'migrations');

const FILE_PATTERN = /^(\d{3})_([a-z0-9_]+)\.sql$/;

export async function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<MigrationFile[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  } catch (err) {
    throw new MigrationError('BAD_MIGRATION_FILES', `cannot read migrations from ${dir}`, { cause: err });
  }
  const files: MigrationFile[] = [];
  for (const [i, file] of entries.entries()) {
    const match = FILE_PATTERN.exec(file);
    if (!match)
      throw new MigrationError('BAD_MIGRATION_FILES', `migration file ${file} is not named NNN_name.sql`);
    const version = Number(match[1]);
    if (version !== i + 1) {
      throw new MigrationError(
        'BAD_MIGRATION_FILES',
        `migration ${file}: expected version ${i + 1} (files must be numbered 001, 002, … without gaps or duplicates)`,
      );
    }
    // Normalize line endings so a checkout with CRLF does not look like an edited migration.
    const sql = (await readFile(path.join(dir, file), 'utf8')).replace(/\r\n/g, '\n');
    files.push({
      version,
      name: file.slice(0, -'.sql'.length),
      sql,
      checksum: sha256(sql),
      breaking: !NON_BREAKING_LINE.test(sql),
    });
  }
  return files;
}

export interface MigrateResult {
  applied: string[];
  /** The database's schema version after the run (above the code's when it is ahead). */
  version: number;
  /** Migrations the database has that this code does not know: all non-breaking, or it throws. */
  ahead: string[];
}

export async function migrate(databaseUrl: string, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const log = opts.log ?? (() => undefined);
  const files = await readMigrations(opts.migrationsDir);
  const client = new Client({ connectionString: databaseUrl, application_name: 'cairn-migrate' });
  await client.connect();
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      return await migrateLocked(client, files, log);
    } finally {
      await client.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

async function migrateLocked(client: Client, files: MigrationFile[], log: (m: string) => void) {
  // Bootstrap the bookkeeping table (under the lock, so concurrent first runs cannot collide).
  await client.query(`
    set client_min_messages = warning;
    create schema if not exists cairn;
    create table if not exists cairn.schema_migrations (
      version    int primary key,
      name       text not null,
      checksum   text not null,
      applied_at timestamptz not null default clock_timestamp()
    );
    -- Rows recorded before the flag existed count as breaking: the safe reading.
    alter table cairn.schema_migrations add column if not exists breaking boolean not null default true;
    reset client_min_messages;`);
  const { rows } = await client.query<{ version: number; name: string; checksum: string; breaking: boolean }>(
    'select version, name, checksum, breaking from cairn.schema_migrations order by version',
  );
  const newest = files.length;
  const current = rows.length === 0 ? 0 : rows[rows.length - 1]!.version;
  const ahead = rows.filter((r) => r.version > newest);
  const breaking = ahead.filter((r) => r.breaking);
  if (breaking.length > 0) throw schemaAheadError(current, newest, breaking);
  for (const [i, row] of rows.entries()) {
    if (row.version !== i + 1) {
      throw new MigrationError(
        'HISTORY_GAP',
        `cairn.schema_migrations has no version ${i + 1} but has ${row.version}; the migration history is damaged`,
      );
    }
    const file = files[i];
    if (file === undefined) continue; // ahead of this code, non-breaking (checked above)
    if (row.checksum !== file.checksum || row.name !== file.name) {
      throw new MigrationError(
        'CHECKSUM_MISMATCH',
        `migration ${file.name}.sql was changed after it was applied as ${row.name} (checksum ${row.checksum.slice(0, 12)}… in the database, ${file.checksum.slice(0, 12)}… on disk); migrations are forward-only: add a new file instead`,
      );
    }
  }
  const applied: string[] = [];
  for (const file of files.slice(current)) {
    log(`applying migration ${file.name}`);
    try {
      await client.query('begin');
      await client.query(file.sql);
      await client.query(
        'insert into cairn.schema_migrations (version, name, checksum, breaking) values ($1, $2, $3, $4)',
        [file.version, file.name, file.checksum, file.breaking],
      );
      await client.query('commit');
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      const reason = err instanceof Error ? err.message : String(err);
      throw new MigrationError('MIGRATION_FAILED', `migration ${file.name}.sql failed: ${reason}`, {
        cause: err,
      });
    }
    applied.push(file.name);
  }
  if (ahead.length > 0)
    log(
      `database schema is at version ${current}, ahead of this code (${newest}) by non-breaking ` +
        `migrations only (${ahead.map((r) => r.name).join(', ')}); running`,
    );
  else if (applied.length === 0) log(`schema is up to date at version ${current}`);
  return { applied, version: Math.max(current, newest), ahead: ahead.map((r) => r.name) };
}

/** The refusal of code older than a breaking migration the database has (migrate and the worker's check). */
export function schemaAheadError(
  current: number,
  newest: number,
  breaking: readonly { name: string }[],
): MigrationError {
  return new MigrationError(
    'SCHEMA_AHEAD',
    `database schema is at version ${current} but this code only knows up to ${newest}, and ` +
      `${breaking.map((r) => r.name).join(', ')} ${breaking.length === 1 ? 'is a breaking migration' : 'are breaking migrations'}: ` +
      'code this old must not run against it; upgrade cairn',
  );
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}
