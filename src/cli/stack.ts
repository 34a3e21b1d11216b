/**
 * Bringing up what Cairn needs on a development machine: the database (created and migrated)
 * and a Temporal dev server (reused if one answers, otherwise started — building the CLI first
 * if needed). Shared by `cairn dev`, `cairn demo` and `cairn worker --dev`.
 */
import path from 'node:path';
import type { CairnConfig } from '../config';
import { ensurePostgresRunning } from '../dev/postgres';
import { ensureTemporalServer, type TemporalServer } from '../dev/temporalServer';
import { ensureDatabase } from '../store/database';
import { migrate } from '../store/migrate';

export async function bringUpDatabase(config: CairnConfig, log: (m: string) => void): Promise<void> {
  await ensurePostgresRunning(config.databaseUrl, log);
  const { created } = await ensureDatabase(config.databaseUrl);
  if (created) log(`created database ${new URL(config.databaseUrl).pathname.slice(1)}`);
  const { applied, version } = await migrate(config.databaseUrl, { log });
  log(
    applied.length
      ? `applied migrations: ${applied.join(', ')}`
      : `database schema is current (version ${version})`,
  );
}

export async function bringUpTemporal(
  config: CairnConfig,
  root: string,
  log: (m: string) => void,
  opts: { keepRunning?: boolean; headless?: boolean } = {},
): Promise<TemporalServer> {
  return ensureTemporalServer({
    address: config.temporalAddress,
    namespace: config.temporalNamespace,
    dataDir: path.join(root, '.cairn', 'temporal'),
    ...(config.temporalCli ? { cliPath: config.temporalCli } : {}),
    ...(opts.keepRunning !== undefined ? { keepRunning: opts.keepRunning } : {}),
    ...(opts.headless !== undefined ? { headless: opts.headless } : {}),
    log,
  });
}
