/**
 * A worker's check of the schema it is about to use, read-only (the worker's login may not
 * migrate: `cairn worker --no-migrate`, the compose file's worker): the database must have every
 * migration this code knows, and may be ahead of it only by non-breaking ones (see migrate.ts).
 */
import { MigrationError, readMigrations, schemaAheadError } from './migrate';
import type { Queryable } from './pool';

export interface SchemaCheck {
  /** The database's schema version. */
  version: number;
  /** Migrations the database has that this code does not know (all non-breaking). */
  ahead: string[];
}

export async function checkSchemaCompatible(
  db: Queryable,
  opts: { migrationsDir?: string } = {},
): Promise<SchemaCheck> {
  const files = await readMigrations(opts.migrationsDir);
  let rows: { version: number; name: string; breaking: boolean }[];
  try {
    ({ rows } = await db.query<{ version: number; name: string; breaking: boolean }>(
      'select version, name, breaking from cairn.schema_migrations order by version',
    ));
  } catch (err) {
    // 42P01 undefined_table, 3F000 invalid_schema_name: never migrated.
    const code = (err as { code?: unknown }).code;
    if (code !== '42P01' && code !== '3F000') throw err;
    rows = [];
  }
  const newest = files.length;
  const current = rows.length === 0 ? 0 : rows[rows.length - 1]!.version;
  if (current < newest) {
    const missing = files.slice(current).map((f) => f.name);
    throw new MigrationError(
      'SCHEMA_BEHIND',
      `database schema is at version ${current} but this code needs ${newest} (missing ${missing.join(', ')}): ` +
        'run `cairn migrate` (or a worker without --no-migrate) first',
    );
  }
  const ahead = rows.filter((r) => r.version > newest);
  const breaking = ahead.filter((r) => r.breaking);
  if (breaking.length > 0) throw schemaAheadError(current, newest, breaking);
  return { version: current, ahead: ahead.map((r) => r.name) };
}
