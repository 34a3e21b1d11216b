/**
 * A real Temporal server (not `start-dev`): built from source with `go install` at the version
 * docker-compose.yml pins, persisting to Postgres with several history shards. It is what the
 * compose file gives users, run here without Docker so the cluster test tier can prove Cairn on it.
 *
 * The build is cached per version (a first build takes minutes); the config is written as JSON,
 * which is valid YAML, so no YAML library is needed at run time.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  closeSync,
  constants,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { isListening } from './ports';

const run = promisify(execFile);

export interface TemporalServerBinaries {
  server: string;
  sqlTool: string;
  /** The module's source directory (schema/ and config/ live here). */
  moduleDir: string;
}

/** The version in `image: temporalio/server:<version>` of a docker-compose.yml text. */
export function pinnedServerVersion(composeText: string): string {
  const m = /image:\s*temporalio\/server:(\d+\.\d+\.\d+)/.exec(composeText);
  if (!m) throw new Error('docker-compose.yml pins no temporalio/server:<x.y.z> image');
  return m[1]!;
}

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The server and its SQL schema tool at `version`, built with `go install` into a per-version cache
 * directory unless both binaries are already there. Built into a temporary directory and renamed,
 * so an interrupted build never leaves a half-written binary that would be taken as cached.
 */
export async function findOrBuildTemporalServer(opts: {
  version: string;
  cacheDir?: string;
  log: (m: string) => void;
}): Promise<TemporalServerBinaries> {
  const dir = opts.cacheDir ?? path.join(os.homedir(), '.cache', 'cairn-temporal-server', `v${opts.version}`);
  const server = path.join(dir, 'server');
  const sqlTool = path.join(dir, 'sql');
  const goEnv = { ...process.env, CGO_ENABLED: '0' };
  const { stdout: modCache } = await run('go', ['env', 'GOMODCACHE'], { env: goEnv });
  const moduleDir = path.join(modCache.trim(), `go.temporal.io/server@v${opts.version}`);
  if (executable(server) && executable(sqlTool)) return { server, sqlTool, moduleDir };

  opts.log(`Building the Temporal server v${opts.version} with go install (first time only; minutes)…`);
  const tmp = `${dir}.building-${process.pid}`;
  mkdirSync(tmp, { recursive: true });
  try {
    const pkgs = ['cmd/server', 'cmd/tools/sql'].map((p) => `go.temporal.io/server/${p}@v${opts.version}`);
    await run('go', ['install', ...pkgs], { env: { ...goEnv, GOBIN: tmp }, maxBuffer: 64 * 1024 * 1024 });
    mkdirSync(dir, { recursive: true });
    renameSync(path.join(tmp, 'sql'), sqlTool);
    renameSync(path.join(tmp, 'server'), server);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  opts.log(`Temporal server v${opts.version} built into ${dir}`);
  return { server, sqlTool, moduleDir };
}

export interface ClusterPorts {
  /** Frontend gRPC; the other services use the next ports, membership ports base + 10…13. */
  base: number;
}

export interface ClusterDatabase {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  visibilityDatabase: string;
}

/**
 * The server config: the module's development-postgres12.yaml reduced to what a private test
 * cluster needs (own databases and ports, loopback only, no metrics or pprof listeners that would
 * clash with other servers on the machine).
 */
export function clusterConfig(o: {
  db: ClusterDatabase;
  ports: ClusterPorts;
  shards: number;
  dynamicConfigFile: string;
}) {
  const sql = (database: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName: database,
      connectAddr: `${o.db.host}:${o.db.port}`,
      connectProtocol: 'tcp',
      user: o.db.user,
      password: o.db.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const b = o.ports.base;
  const svc = (grpcPort: number, membershipPort: number, extra: object = {}) => ({
    rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...extra },
  });
  return {
    log: { stdout: true, level: 'warn' },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: o.shards,
      datastores: {
        'postgres-default': sql(o.db.database, 20),
        'postgres-visibility': sql(o.db.visibilityDatabase, 4),
      },
    },
    global: { membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' } },
    services: {
      frontend: svc(b, b + 10, { httpPort: b + 4 }),
      history: svc(b + 1, b + 11),
      matching: svc(b + 2, b + 12),
      worker: svc(b + 3, b + 13),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${b}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    dynamicConfigClient: { filepath: o.dynamicConfigFile, pollInterval: '10s' },
  };
}

export interface TemporalCluster {
  address: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * The environment for the server's embedded config template (what the temporalio/server image
 * renders from its variables) that moves every listener onto private loopback ports from `base`.
 */
export function privatePortsEnvironment(base: number): Record<string, string> {
  return {
    BIND_ON_IP: '127.0.0.1',
    TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
    FRONTEND_GRPC_PORT: String(base),
    HISTORY_GRPC_PORT: String(base + 1),
    MATCHING_GRPC_PORT: String(base + 2),
    WORKER_GRPC_PORT: String(base + 3),
    FRONTEND_HTTP_PORT: String(base + 4),
    INTERNAL_FRONTEND_GRPC_PORT: String(base + 5),
    INTERNAL_FRONTEND_HTTP_PORT: String(base + 6),
    FRONTEND_MEMBERSHIP_PORT: String(base + 10),
    HISTORY_MEMBERSHIP_PORT: String(base + 11),
    MATCHING_MEMBERSHIP_PORT: String(base + 12),
    WORKER_MEMBERSHIP_PORT: String(base + 13),
    INTERNAL_FRONTEND_MEMBERSHIP_PORT: String(base + 15),
  };
}

/**
 * Starts the server on an already set-up schema (see the cluster tier's setup, which runs the
 * compose file's own schema script) and waits for the frontend port. With `environment` the
 * server renders its embedded config template from those variables, as the temporalio/server
 * image does (so a compose service's environment can be run as is); otherwise it gets a config
 * file from clusterConfig().
 */
export async function startTemporalCluster(o: {
  binaries: TemporalServerBinaries;
  dataDir: string;
  db: ClusterDatabase;
  ports: ClusterPorts;
  shards?: number;
  /** Dynamic config as YAML text (e.g. the compose file's `configs` content). */
  dynamicConfigYaml: string;
  /** Variables for the embedded config template; DYNAMIC_CONFIG_FILE_PATH is set here. */
  environment?: Record<string, string>;
  startupTimeoutMs?: number;
  log: (m: string) => void;
}): Promise<TemporalCluster> {
  const configDir = path.join(o.dataDir, 'config');
  mkdirSync(configDir, { recursive: true });
  const dynamicConfigFile = path.join(configDir, 'dynamic.yaml');
  writeFileSync(dynamicConfigFile, o.dynamicConfigYaml);
  const configFile = path.join(configDir, 'development.yaml');
  const config = clusterConfig({ db: o.db, ports: o.ports, shards: o.shards ?? 4, dynamicConfigFile });
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const address = `127.0.0.1:${o.ports.base}`;
  if (await isListening(o.ports.base, '127.0.0.1')) throw new Error(`port ${o.ports.base} is already in use`);
  const logFile = path.join(o.dataDir, 'server.log');
  const fd = openSync(logFile, 'w');
  let child: ChildProcess;
  try {
    const args = o.environment
      ? ['--allow-no-auth', 'start']
      : ['--config-file', configFile, '--allow-no-auth', 'start'];
    // Only the template's variables (plus PATH/HOME), so nothing from the caller's env leaks in.
    const env = o.environment
      ? {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          ...o.environment,
          DYNAMIC_CONFIG_FILE_PATH: dynamicConfigFile,
        }
      : process.env;
    child = spawn(o.binaries.server, args, {
      cwd: o.dataDir,
      env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    child.on('error', () => {});
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${o.binaries.server}`);
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const onExit = () => {
    if (!gone()) process.kill(-pid, 'SIGKILL');
  };
  process.on('exit', onExit);
  const cluster: TemporalCluster = {
    address,
    pid,
    logFile,
    async stop() {
      process.off('exit', onExit);
      if (gone()) return;
      process.kill(-pid, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (!gone() && Date.now() < deadline) await sleep(100);
      if (!gone()) process.kill(-pid, 'SIGKILL');
    },
  };
  const deadline = Date.now() + (o.startupTimeoutMs ?? 120_000);
  while (!(await isListening(o.ports.base, '127.0.0.1'))) {
    if (gone()) throw new Error(`the Temporal server exited during start-up; see ${logFile}`);
    if (Date.now() > deadline) {
      await cluster.stop();
      throw new Error(`the Temporal server did not open ${address} in time; see ${logFile}`);
    }
    await sleep(250);
  }
  o.log(
    `Temporal cluster (pid ${pid}, ${o.shards ?? 4} history shards, Postgres) on ${address}; logs: ${logFile}`,
  );
  return cluster;
}
