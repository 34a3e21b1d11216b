/**
 * The migrator on a real server: fresh databases, reruns, two migrators racing, a database
 * ahead of the code, an edited migration, a failing one (rolled back whole).
 */
import { cp, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client, escapeIdentifier } from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adminUrlFor, ensureDatabase } from '../../src/store/database';
import {
  DEFAULT_MIGRATIONS_DIR,
  migrate,
  MigrationError,
  NON_BREAKING_MARKER,
  readMigrations,
} from '../../src/store/migrate';
import { createEmptyDatabase } from '../helpers/database';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).map((c) => c()));
});

async function emptyDb() {
  const db = await createEmptyDatabase();
  cleanups.push(() => db.drop());
  return db;
}

async function query<T>(url: string, sql: string, values: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as T[];
  } finally {
    await client.end();
  }
}

/** A private copy of the migrations, to edit without touching the repository's. */
async function migrationsCopy(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cairn-migrations-'));
  await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

let files: Awaited<ReturnType<typeof readMigrations>>;
let names: string[];
beforeAll(async () => {
  files = await readMigrations();
  names = files.map((f) => f.name);
});

describe('migrate', () => {
  it('applies every migration to a fresh database, then nothing on a rerun', async () => {
    const db = await emptyDb();
    const log: string[] = [];
    const first = await migrate(db.url, { log: (m) => log.push(m) });
    expect(first).toEqual({ applied: names, version: files.length, ahead: [] });
    expect(names[0]).toBe('001_observation_log');
    expect(log).toEqual(names.map((n) => `applying migration ${n}`));

    const recorded = await query<{ version: number; name: string; checksum: string }>(
      db.url,
      'select version, name, checksum from cairn.schema_migrations order by version',
    );
    expect(recorded).toEqual(files.map((f) => ({ version: f.version, name: f.name, checksum: f.checksum })));

    const again = await migrate(db.url);
    expect(again).toEqual({ applied: [], version: files.length, ahead: [] });
    expect(await query(db.url, 'select count(*)::int as n from cairn.schema_migrations')).toEqual([
      { n: files.length },
    ]);
  });

  it('lets two migrators start at once: both succeed and each file is applied once', async () => {
    const db = await emptyDb();
    const [a, b] = await Promise.all([migrate(db.url), migrate(db.url)]);
    expect([...a.applied, ...b.applied].sort()).toEqual([...names].sort());
    // One of them did all the work; the other waited on the lock and found nothing to do.
    expect([a.applied.length, b.applied.length].sort()).toEqual([0, files.length]);
    expect(a.version).toBe(files.length);
    expect(b.version).toBe(files.length);
    expect(await query(db.url, 'select count(*)::int as n from cairn.schema_migrations')).toEqual([
      { n: files.length },
    ]);
  });

  it('refuses a database whose schema is newer than the code', async () => {
    const db = await emptyDb();
    await migrate(db.url);
    const ahead = files.length + 1;
    await query(
      db.url,
      `insert into cairn.schema_migrations (version, name, checksum) values ($1, 'from_the_future', 'x')`,
      [ahead],
    );
    const err = await migrate(db.url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect(err).toMatchObject({ code: 'SCHEMA_AHEAD', name: 'MigrationError' });
    expect((err as Error).message).toBe(
      `database schema is at version ${ahead} but this code only knows up to ${files.length}, and from_the_future is a breaking migration: code this old must not run against it; upgrade cairn`,
    );
  });

  /** A copy of the migrations with `extra` files after the repository's, applied to a fresh database. */
  async function dbAheadBy(extra: { name: string; sql: string }[]) {
    const db = await emptyDb();
    const dir = await migrationsCopy();
    for (const [i, e] of extra.entries())
      await writeFile(
        path.join(dir, `${String(files.length + 1 + i).padStart(3, '0')}_${e.name}.sql`),
        e.sql,
      );
    await migrate(db.url, { migrationsDir: dir });
    return db;
  }

  it('lets older code run against a database ahead only by non-breaking migrations', async () => {
    const db = await dbAheadBy([
      { name: 'add_note', sql: `${NON_BREAKING_MARKER}\ncreate table cairn.future_note (x int);\n` },
      {
        name: 'add_index',
        sql: `-- adds an index\n${NON_BREAKING_MARKER}\ncreate index on cairn.future_note (x);\n`,
      },
    ]);
    const n = files.length;
    const pad = (v: number) => String(v).padStart(3, '0');
    const log: string[] = [];
    // The repository's migrations are "the older code" here.
    const result = await migrate(db.url, { log: (m) => log.push(m) });
    expect(result).toEqual({
      applied: [],
      version: n + 2,
      ahead: [`${pad(n + 1)}_add_note`, `${pad(n + 2)}_add_index`],
    });
    expect(log).toEqual([
      `database schema is at version ${n + 2}, ahead of this code (${n}) by non-breaking migrations only (${pad(n + 1)}_add_note, ${pad(n + 2)}_add_index); running`,
    ]);
    expect(
      await query(
        db.url,
        'select version, breaking from cairn.schema_migrations where version > $1 order by version',
        [n],
      ),
    ).toEqual([
      { version: n + 1, breaking: false },
      { version: n + 2, breaking: false },
    ]);
    // The checksums of what the older code does know are still checked.
    const edited = await migrationsCopy();
    await appendFile(path.join(edited, '001_observation_log.sql'), '\n-- edited\n');
    await expect(migrate(db.url, { migrationsDir: edited })).rejects.toMatchObject({
      code: 'CHECKSUM_MISMATCH',
    });
  });

  it('stops older code at a breaking migration, naming it, even after non-breaking ones', async () => {
    const db = await dbAheadBy([
      { name: 'add_note', sql: `${NON_BREAKING_MARKER}\ncreate table cairn.future_note (x int);\n` },
      // The marker must be a line of its own: mentioning it in a comment does not count.
      { name: 'drop_note', sql: `-- not "${NON_BREAKING_MARKER}"\ndrop table cairn.future_note;\n` },
    ]);
    const n = files.length;
    const err = await migrate(db.url).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'MigrationError', code: 'SCHEMA_AHEAD' });
    expect((err as Error).message).toBe(
      `database schema is at version ${n + 2} but this code only knows up to ${n}, and ${String(n + 2).padStart(3, '0')}_drop_note is a breaking migration: code this old must not run against it; upgrade cairn`,
    );
  });

  it('reads the marker from the file and records it per migration', async () => {
    const dir = await migrationsCopy();
    await writeFile(
      path.join(dir, `${String(files.length + 1).padStart(3, '0')}_x.sql`),
      `select 1;\n${NON_BREAKING_MARKER}  \n`,
    );
    const read = await readMigrations(dir);
    expect(read.at(-1)).toMatchObject({
      name: `${String(files.length + 1).padStart(3, '0')}_x`,
      breaking: false,
    });
    // Unmarked is breaking: the safe default for every existing migration.
    expect(
      read.slice(0, files.length).every((f) => f.breaking === !f.sql.includes(NON_BREAKING_MARKER)),
    ).toBe(true);
    expect(files[0]!.breaking).toBe(true);
  });

  it('refuses when an applied migration file was edited afterwards', async () => {
    const db = await emptyDb();
    const dir = await migrationsCopy();
    await migrate(db.url, { migrationsDir: dir });
    await appendFile(path.join(dir, '001_observation_log.sql'), '\n-- an innocent-looking edit\n');
    const err = await migrate(db.url, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationError);
    expect(err).toMatchObject({ code: 'CHECKSUM_MISMATCH' });
    expect((err as Error).message).toMatch(
      /^migration 001_observation_log\.sql was changed after it was applied/,
    );
    expect((err as Error).message).toMatch(/forward-only: add a new file instead$/);
  });

  it('rolls a failing migration back whole and records nothing for it', async () => {
    const db = await emptyDb();
    const dir = await migrationsCopy();
    const broken = `${String(files.length + 1).padStart(3, '0')}_broken.sql`;
    await writeFile(path.join(dir, broken), 'create table cairn.half_done (x int);\nselect 1 / 0;\n');
    const err = await migrate(db.url, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'MigrationError', code: 'MIGRATION_FAILED' });
    expect((err as Error).message).toBe(`migration ${broken} failed: division by zero`);
    // The good files before it stay applied; the broken one left no trace.
    expect(await query(db.url, 'select max(version) as v from cairn.schema_migrations')).toEqual([
      { v: files.length },
    ]);
    expect(await query(db.url, `select to_regclass('cairn.half_done') as t`)).toEqual([{ t: null }]);
  });

  it('refuses badly named or numbered migration files', async () => {
    const dir = await migrationsCopy();
    await writeFile(path.join(dir, `${String(files.length + 2).padStart(3, '0')}_gap.sql`), 'select 1;');
    await expect(readMigrations(dir)).rejects.toMatchObject({ code: 'BAD_MIGRATION_FILES' });
  });
});

describe('ensureDatabase', () => {
  const created: string[] = [];
  afterAll(async () => {
    for (const url of created) {
      const name = decodeURIComponent(new URL(url).pathname.slice(1));
      await query(adminUrlFor(url), `drop database if exists ${escapeIdentifier(name)} with (force)`);
    }
  });

  it('creates a missing database once, even when two callers race', async () => {
    const probe = await emptyDb(); // borrow its server URL, then name a database that does not exist
    const url = new URL(probe.url);
    url.pathname = `/cairn_test_ensure_${Date.now().toString(36)}_"quoted"`;
    created.push(url.toString());
    const results = await Promise.all([ensureDatabase(url.toString()), ensureDatabase(url.toString())]);
    expect(results.map((r) => r.created).sort()).toEqual([false, true]);
    expect(await ensureDatabase(url.toString())).toEqual({ created: false });
    expect(await query(url.toString(), 'select current_database() as d')).toEqual([
      { d: decodeURIComponent(url.pathname.slice(1)) },
    ]);
  });
});
