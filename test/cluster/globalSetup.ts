/**
 * The cluster tier's services: the Temporal server at the version docker-compose.yml pins, built
 * once with `go install` and cached, on fresh Postgres databases of its own with 4 history shards.
 * The schemas and the namespace are made by the compose file's own `temporal-setup` and
 * `temporal-namespace` scripts, run against this build; the server renders its config from the
 * compose's `temporal` environment (as the image does) with the compose's dynamic config, so what
 * users `docker compose up` is what these tests run (only hosts, logins, names and ports differ).
 */
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { loadConfig } from '../../src/config';
import { findOrBuildTemporalCli } from '../../src/dev/temporalCli';
import {
  findOrBuildTemporalServer,
  pinnedServerVersion,
  privatePortsEnvironment,
  startTemporalCluster,
  type ClusterDatabase,
} from '../../src/dev/temporalCluster';
import { splitDatabaseUrl } from '../../src/store/database';
import { compose, composeText, root, runServiceScript, serviceEnv, toolShims } from './compose';

declare module 'vitest' {
  export interface ProvidedContext {
    cairnCluster: { address: string; namespace: string };
  }
}

/** Private ports (frontend 7400, services 7401-7404, membership 7410-7413). */
const BASE_PORT = Number(process.env.CAIRN_TEST_CLUSTER_PORT ?? 7400);

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = (m: string) => process.stderr.write(`[cairn cluster setup] ${m}\n`);
  const config = loadConfig(process.env);
  const admin = new URL(splitDatabaseUrl(config.databaseUrl).maintenanceUrl);
  const db: ClusterDatabase = {
    host: admin.hostname,
    port: Number(admin.port || 5432),
    user: decodeURIComponent(admin.username),
    password: decodeURIComponent(admin.password),
    database: 'cairn_cluster_temporal',
    visibilityDatabase: 'cairn_cluster_visibility',
  };

  // A first `up`: the compose scripts start from no databases at all.
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    for (const name of [db.database, db.visibilityDatabase])
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await client.end();
  }

  const version = pinnedServerVersion(composeText);
  const [binaries, cli] = await Promise.all([
    findOrBuildTemporalServer({ version, log }),
    findOrBuildTemporalCli({ log }),
  ]);
  const dataDir = path.join(root, '.cairn', `test-cluster-${BASE_PORT}`);
  const shimDir = toolShims(path.join(dataDir, 'bin'), {
    'temporal-sql-tool': binaries.sqlTool,
    temporal: cli,
  });

  log(`running docker-compose.yml's temporal-setup against Postgres ${db.host}:${db.port}`);
  await runServiceScript('temporal-setup', {
    shimDir,
    timeoutMs: 180_000,
    overrides: {
      SQL_HOST: db.host,
      SQL_PORT: String(db.port),
      SQL_USER: db.user,
      SQL_PASSWORD: db.password,
      DBNAME: db.database,
      VISIBILITY_DBNAME: db.visibilityDatabase,
      SCHEMA_DIR: path.join(binaries.moduleDir, 'schema', 'postgresql', 'v12'),
    },
  });

  const dynamicConfigYaml = compose.configs?.['temporal-dynamic-config']?.content;
  if (!dynamicConfigYaml) throw new Error('docker-compose.yml has no temporal-dynamic-config content');
  // The compose's `temporal` service environment, pointed at local Postgres and private ports.
  const environment = {
    ...serviceEnv('temporal'),
    POSTGRES_SEEDS: db.host,
    DB_PORT: String(db.port),
    POSTGRES_USER: db.user,
    DBNAME: db.database,
    VISIBILITY_DBNAME: db.visibilityDatabase,
    LOG_LEVEL: 'warn',
    ...privatePortsEnvironment(BASE_PORT),
  };
  const cluster = await startTemporalCluster({
    binaries,
    dataDir,
    db,
    ports: { base: BASE_PORT },
    dynamicConfigYaml,
    environment,
    log,
  });
  try {
    log(`running docker-compose.yml's temporal-namespace against ${cluster.address}`);
    await runServiceScript('temporal-namespace', {
      shimDir,
      timeoutMs: 240_000,
      overrides: { TEMPORAL_ADDRESS: cluster.address },
    });
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  project.provide('cairnCluster', { address: cluster.address, namespace: 'default' });
  return () => cluster.stop();
}
