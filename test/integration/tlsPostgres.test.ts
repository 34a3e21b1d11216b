/**
 * Postgres over TLS (issue 13, item 3): a private cluster with ssl = on that accepts only TLS
 * connections with a client certificate (pg_hba `hostssl … cert`), certificates made by the test.
 * Cairn connects with the settings an operator gives (PGSSLMODE, PGSSLROOTCERT, PGSSLCERT,
 * PGSSLKEY, or the same in DATABASE_URL), verifies the server, and still acts as cairn_app.
 */
import { copyFileSync, chmodSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config';
import { migrate } from '../../src/store/migrate';
import { createPool } from '../../src/store/pool';
import { startPrivatePostgres, type PrivatePostgres } from '../helpers/privatePostgres';
import { createTestCa, type Pem, type TestCa } from '../helpers/testCerts';

let pg: PrivatePostgres;
let ca: TestCa;
let otherCa: TestCa;
let client: Pem;
let plainUrl: string;

beforeAll(async () => {
  pg = await startPrivatePostgres();
  ca = createTestCa();
  otherCa = createTestCa('another-ca');
  const server = ca.issue('pg-server', { commonName: 'localhost', server: true });
  // Certificate authentication maps the certificate's CN to the login: root.
  client = ca.issue('pg-client', { commonName: 'root' });
  for (const [from, to] of [
    [server.cert, 'server.crt'],
    [server.key, 'server.key'],
    [ca.ca.cert, 'root.crt'],
  ] as const) {
    const target = path.join(pg.dataDir, to);
    copyFileSync(from, target);
    chmodSync(target, 0o600);
    pg.giveToServer(target);
  }
  appendFileSync(
    path.join(pg.dataDir, 'postgresql.conf'),
    "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'root.crt'\n",
  );
  writeFileSync(
    path.join(pg.dataDir, 'pg_hba.conf'),
    'local all all trust\nhostssl all all 127.0.0.1/32 cert\n',
  );
  await pg.stop();
  await pg.start();
  plainUrl = pg.url;
}, 180_000);

afterAll(async () => {
  await pg?.destroy();
  for (const c of [ca, otherCa]) if (c) rmSync(c.dir, { recursive: true, force: true });
});

async function whoAmI(databaseUrl: string): Promise<{ ssl: boolean; role: string }> {
  // pg_stat_ssl shows a session's row to its login, not to cairn_app: ask each its own question.
  const app = createPool(databaseUrl, { max: 1 });
  const login = createPool(databaseUrl, { max: 1, applicationRole: null });
  try {
    const { rows: r } = await app.query<{ role: string }>('select current_user as role');
    const { rows: s } = await login.query<{ ssl: boolean }>(
      'select ssl from pg_stat_ssl where pid = pg_backend_pid()',
    );
    return { ssl: s[0]!.ssl, role: r[0]!.role };
  } finally {
    await Promise.all([app.end(), login.end()]);
  }
}

describe('Postgres over TLS', () => {
  it('connects with verify-full and a client certificate from PGSSL* variables, as cairn_app', async () => {
    const config = loadConfig({
      DATABASE_URL: plainUrl,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: ca.ca.cert,
      PGSSLCERT: client.cert,
      PGSSLKEY: client.key,
    });
    expect(new URL(config.databaseUrl).searchParams.get('sslmode')).toBe('verify-full');
    expect(await whoAmI(config.databaseUrl)).toEqual({ ssl: true, role: 'cairn_app' });
    // The migrator connects the same way (nothing left to apply).
    expect((await migrate(config.databaseUrl)).applied).toEqual([]);
  });

  it('takes the same settings from DATABASE_URL, which wins over the variables', async () => {
    const url = `${plainUrl}?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.ca.cert)}&sslcert=${encodeURIComponent(client.cert)}&sslkey=${encodeURIComponent(client.key)}`;
    const config = loadConfig({ DATABASE_URL: url, PGSSLMODE: 'disable' });
    expect(new URL(config.databaseUrl).searchParams.get('sslmode')).toBe('verify-full');
    expect(await whoAmI(config.databaseUrl)).toEqual({ ssl: true, role: 'cairn_app' });
  });

  it('refuses a server certificate from another CA, a client without a certificate, and plaintext', async () => {
    const wrongCa = loadConfig({
      DATABASE_URL: plainUrl,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: otherCa.ca.cert,
      PGSSLCERT: client.cert,
      PGSSLKEY: client.key,
    });
    await expect(whoAmI(wrongCa.databaseUrl)).rejects.toThrow(/certificate/i);
    const noCert = loadConfig({
      DATABASE_URL: plainUrl,
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: ca.ca.cert,
    });
    await expect(whoAmI(noCert.databaseUrl)).rejects.toThrow(/certificate/i);
    const plain = loadConfig({ DATABASE_URL: plainUrl, PGSSLMODE: 'disable' });
    await expect(whoAmI(plain.databaseUrl)).rejects.toThrow(/pg_hba\.conf/);
  });

  it('names the variable of a bad sslmode', () => {
    expect(() => loadConfig({ PGSSLMODE: 'sometimes' })).toThrow(/PGSSLMODE must be disable, prefer/);
  });
});
