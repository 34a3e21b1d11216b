/**
 * The worker's read-only schema check (src/store/schemaCheck.ts), run by createWorker whether or
 * not the process migrated: a database ahead only by non-breaking migrations lets older code run;
 * one ahead by a breaking migration, or behind the code, stops it with a message naming the
 * migrations. Checked as the application role (cairn_app), like a `--no-migrate` worker.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readMigrations } from '../../src/store/migrate';
import { checkSchemaCompatible } from '../../src/store/schemaCheck';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
let n: number;
const pad = (v: number) => String(v).padStart(3, '0');

beforeAll(async () => {
  db = await createTestDatabase();
  n = (await readMigrations()).length;
});
afterAll(async () => {
  await db?.drop();
});

async function record(version: number, name: string, breaking: boolean): Promise<void> {
  await db.adminPool.query(
    `insert into cairn.schema_migrations (version, name, checksum, breaking) values ($1, $2, 'x', $3)`,
    [version, name, breaking],
  );
}

it('passes a current schema, and one ahead by non-breaking migrations only (naming them)', async () => {
  expect(await checkSchemaCompatible(db.pool)).toEqual({ version: n, ahead: [] });
  await record(n + 1, `${pad(n + 1)}_add_note`, false);
  expect(await checkSchemaCompatible(db.pool)).toEqual({ version: n + 1, ahead: [`${pad(n + 1)}_add_note`] });
});

it('stops code older than a breaking migration, naming it', async () => {
  await record(n + 2, `${pad(n + 2)}_drop_note`, true);
  const err = await checkSchemaCompatible(db.pool).catch((e: unknown) => e);
  expect(err).toMatchObject({ name: 'MigrationError', code: 'SCHEMA_AHEAD' });
  expect((err as Error).message).toBe(
    `database schema is at version ${n + 2} but this code only knows up to ${n}, and ${pad(n + 2)}_drop_note is a breaking migration: code this old must not run against it; upgrade cairn`,
  );
});

it('stops code newer than the schema, naming the missing migrations', async () => {
  await db.adminPool.query('delete from cairn.schema_migrations where version >= $1', [n]);
  const last = (await readMigrations()).at(-1)!.name;
  const err = await checkSchemaCompatible(db.pool).catch((e: unknown) => e);
  expect(err).toMatchObject({ name: 'MigrationError', code: 'SCHEMA_BEHIND' });
  expect((err as Error).message).toBe(
    `database schema is at version ${n - 1} but this code needs ${n} (missing ${last}): run \`cairn migrate\` (or a worker without --no-migrate) first`,
  );
});
