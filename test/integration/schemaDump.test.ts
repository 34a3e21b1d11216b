/**
 * docs/schema.sql is the net schema of a migrated database: a migration added or changed
 * without regenerating it (`npm run schema:dump`) fails here, so the reviewed dump is always
 * what the migrations produce.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { dumpSchema, SCHEMA_DUMP_PATH } from '../../src/dev/schemaDump';
import { testDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(async () => {
  await db?.drop();
});

it('docs/schema.sql is the dump of a freshly migrated database (regenerate: npm run schema:dump)', async () => {
  const committed = await readFile(SCHEMA_DUMP_PATH, 'utf8');
  const actual = await dumpSchema(db.url);
  // Line by line, so a failure shows which objects differ rather than two 1,800-line strings.
  expect(actual.split('\n'), 'docs/schema.sql is stale: run `npm run schema:dump`').toEqual(
    committed.split('\n'),
  );
});

it('the dump shows the protections a reviewer looks for', async () => {
  const dump = await readFile(SCHEMA_DUMP_PATH, 'utf8');
  expect(dump).toMatch(
    /CREATE TRIGGER observations_append_only BEFORE DELETE OR UPDATE ON cairn\.observations/,
  );
  expect(dump).toMatch(
    /CREATE TRIGGER observation_types_append_only BEFORE DELETE OR UPDATE ON cairn\.observation_types/,
  );
  expect(dump).toMatch(/create policy observations_read_in_scope on cairn\.observations/);
  expect(dump).toMatch(/grant DELETE, SELECT on table cairn\.entity_snapshots to cairn_app;/);
  expect(dump).not.toMatch(
    /grant [A-Z, ]*INSERT[A-Z, ]* on table cairn\.(observations|entity_snapshots|entity_heads) /,
  );
});
