/**
 * Test databases on the real Postgres server: the global setup migrates one template per run;
 * each test file clones it (CREATE DATABASE … TEMPLATE is a file copy, far faster than
 * migrating) and drops its clone at the end.
 */
import { randomBytes } from 'node:crypto';
import { Client, escapeIdentifier, Pool } from 'pg';
import { loadConfig } from '../../src/config';
import { adminUrlFor } from '../../src/store/database';
import { migrate } from '../../src/store/migrate';
import { createPool, pgError } from '../../src/store/pool';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Every tier that uses Postgres (test/setup/databaseSetup.ts, globalSetup.ts). */
    cairnDatabase: { adminUrl: string; template: string };
    /** The tiers that run workflows (test/setup/globalSetup.ts). */
    cairnTest: {
      adminUrl: string;
      template: string;
      temporalAddress: string;
      namespace: string;
      uiUrl: string;
      workflowBundlePath: string;
    };
  }
}

export interface TestDatabase {
  name: string;
  url: string;
  /**
   * Acts as cairn_app, like the application, with an explicit grant of every scope for the
   * session (as engineers' tools have). Scoped access: withScope, or `createPool(url)`.
   */
  pool: Pool;
  /** The login itself (a superuser on development machines), no SET ROLE. */
  adminPool: Pool;
  drop(): Promise<void>;
}

const OBJECT_IN_USE = '55006';

/** The same server and login as `adminUrl`, connected to database `name`. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/** Drops (forcibly) and recreates `name`, then migrates it. */
export async function createTemplateDatabase(adminUrl: string, name: string): Promise<void> {
  await withAdmin(adminUrl, async (admin) => {
    await admin.query(`drop database if exists ${escapeIdentifier(name)} with (force)`);
    await admin.query(`create database ${escapeIdentifier(name)}`);
  });
  await migrate(databaseUrl(adminUrl, name));
}

/**
 * A fresh, migrated database of its own. With no options it clones the global setup's
 * template; when there is none (a test run without the global setup) it creates and migrates
 * a database directly.
 */
export async function createTestDatabase(opts?: {
  adminUrl: string;
  template: string;
}): Promise<TestDatabase> {
  const source = opts ?? (await injected());
  const adminUrl = source?.adminUrl ?? (await resolveAdminUrl());
  const name = `cairn_test_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, async (admin) => {
    const create = `create database ${escapeIdentifier(name)}${source ? ` template ${escapeIdentifier(source.template)}` : ''}`;
    // Cloning fails while anything is connected to the template (e.g. its migrator's session
    // still closing); that passes quickly.
    for (let attempt = 1; ; attempt++) {
      try {
        await admin.query(create);
        return;
      } catch (err) {
        if (pgError(err)?.code !== OBJECT_IN_USE || attempt >= 50) throw err;
        await sleep(20 + Math.random() * 80);
      }
    }
  });
  const url = databaseUrl(adminUrl, name);
  if (!source) await migrate(url);
  const pool = createPool(url, { max: 10, applicationName: 'cairn-test', scopes: 'all' });
  const adminPool = createPool(url, { max: 4, applicationRole: null, applicationName: 'cairn-test-admin' });
  let dropped = false;
  return {
    name,
    url,
    pool,
    adminPool,
    async drop() {
      if (dropped) return;
      dropped = true;
      await Promise.allSettled([pool.end(), adminPool.end()]);
      await withAdmin(adminUrl, (admin) =>
        admin.query(`drop database if exists ${escapeIdentifier(name)} with (force)`),
      );
    },
  };
}

/** An empty database (not migrated), for tests of the migrator itself. */
export async function createEmptyDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const adminUrl = await resolveAdminUrl();
  const name = `cairn_test_${randomBytes(6).toString('hex')}`;
  await withAdmin(adminUrl, (admin) => admin.query(`create database ${escapeIdentifier(name)}`));
  return {
    name,
    url: databaseUrl(adminUrl, name),
    drop: () =>
      withAdmin(adminUrl, (admin) =>
        admin.query(`drop database if exists ${escapeIdentifier(name)} with (force)`),
      ).then(() => undefined),
  };
}

/** The admin URL of the global setup, or the one derived from DATABASE_URL without it. */
export async function resolveAdminUrl(): Promise<string> {
  return (await injected())?.adminUrl ?? adminUrlFor(loadConfig(process.env).databaseUrl);
}

/** The same as `createTestDatabase()`: what a test file calls in its `beforeAll`. */
export function testDatabase(): Promise<TestDatabase> {
  return createTestDatabase();
}

async function injected(): Promise<{ adminUrl: string; template: string } | undefined> {
  try {
    // Imported lazily: the global setup imports this module, and 'vitest' must not be loaded there.
    const { inject } = await import('vitest');
    return inject('cairnDatabase');
  } catch {
    return undefined;
  }
}

async function withAdmin<T>(adminUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminUrl, application_name: 'cairn-test-admin' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
