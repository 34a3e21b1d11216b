/**
 * A local Temporal server for `cairn dev`, the demo and the integration tests.
 *
 * If something already answers on the address we reuse it; otherwise we spawn
 * `temporal server start-dev` backed by a SQLite file under `dataDir`, in its own process group so
 * it can outlive us when asked to. Either way we then make sure the namespace and Cairn's search
 * attributes exist — `start-dev --search-attribute` only applies when the namespace is first
 * created, so a reused database file would otherwise miss attributes added later.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection, isGrpcServiceError } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes';
import { msToTs } from '@temporalio/common/lib/time';
import { SEARCH_ATTRIBUTES } from '../shared/searchAttributes';
import { findOrBuildTemporalCli } from './temporalCli';
import { formatHostPort, isListening, isPortFree, parseHostPort } from './ports';

export interface EnsureTemporalServerOptions {
  /** Path to the `temporal` binary; resolved with findOrBuildTemporalCli only if we must spawn. */
  cliPath?: string;
  /** host:port of the frontend gRPC endpoint. The UI goes on port + 1000. */
  address: string;
  namespace: string;
  /** Holds dev.sqlite, server.log and server.pid, e.g. `<repo>/.cairn/temporal`. */
  dataDir: string;
  headless?: boolean;
  /** Extra `--dynamic-config-value key=<JSON>` entries, e.g. a lower continue-as-new threshold for tests. */
  dynamicConfig?: Record<string, unknown>;
  /**
   * Start from an empty database: delete dev.sqlite before spawning. Ignored when a running server
   * is reused (its history is left alone).
   */
  freshDatabase?: boolean;
  /**
   * Leave a server we start running when this process exits (same as calling detach()). Otherwise
   * it is sent SIGTERM on process exit; on Ctrl-C, call stop() from your SIGINT handler, since Node
   * does not run exit handlers when killed by a signal.
   */
  keepRunning?: boolean;
  /** How long to wait for a server we started to answer. Default 120 s (slow on a busy 2-core box). */
  startupTimeoutMs?: number;
  log: (msg: string) => void;
}

export interface TemporalServer {
  address: string;
  uiUrl: string | null;
  /** False when we reused a server that was already running; stop() is then a no-op. */
  startedByUs: boolean;
  pid: number | null;
  /** SIGTERM to the server's process group, SIGKILL after a grace period. Idempotent. */
  stop(): Promise<void>;
  /** Let the server outlive this process; `stopTemporalServerFromPidFile(dataDir)` stops it later. */
  detach(): void;
}

const SERVER_VERSION_CHECK_OFF = { 'frontend.enableServerVersionCheck': false };
const NAMESPACE_RETENTION = '1 day';
const RUN_HEADER = '=== cairn:';
// gRPC status codes (we avoid depending on @grpc/grpc-js directly for two constants).
const GRPC_NOT_FOUND = 5;
const GRPC_ALREADY_EXISTS = 6;

export function serverFiles(dataDir: string) {
  return {
    db: path.join(dataDir, 'dev.sqlite'),
    log: path.join(dataDir, 'server.log'),
    pid: path.join(dataDir, 'server.pid'),
  };
}

export async function ensureTemporalServer(opts: EnsureTemporalServerOptions): Promise<TemporalServer> {
  const { host, port } = parseHostPort(opts.address);
  const files = serverFiles(opts.dataDir);

  if (await answers(opts.address, 3_000)) {
    opts.log(`Temporal is already running on ${opts.address}; reusing it.`);
    await ensureNamespaceAndSearchAttributes({
      address: opts.address,
      namespace: opts.namespace,
      log: opts.log,
    });
    return reusedServer(opts.address, await probeUi(host, port));
  }

  // A server from an earlier run may still be starting up: wait for it rather than starting a
  // second server on the same SQLite file.
  const earlierPid = await readPidFile(files.pid);
  if (earlierPid !== null && isAlive(earlierPid) && (await looksLikeTemporal(earlierPid))) {
    opts.log(`A Temporal server (pid ${earlierPid}) is starting on ${opts.address}; waiting for it.`);
    const exited = () => (isAlive(earlierPid) ? null : `pid ${earlierPid} is gone`);
    await waitUntilAnswering(opts.address, opts.startupTimeoutMs ?? 120_000, opts.log, exited);
    await ensureNamespaceAndSearchAttributes({
      address: opts.address,
      namespace: opts.namespace,
      log: opts.log,
    });
    return reusedServer(opts.address, await probeUi(host, port));
  }
  if (!(await isPortFree(port, host))) {
    throw new Error(
      `Port ${port} on ${host} is in use by something that does not answer as a Temporal server`,
    );
  }

  const cliPath = opts.cliPath ?? (await findOrBuildTemporalCli({ log: opts.log }));
  mkdirSync(opts.dataDir, { recursive: true });
  if (opts.freshDatabase) {
    for (const suffix of ['', '-journal', '-wal', '-shm']) await rm(files.db + suffix, { force: true });
  }
  const args = startDevArgs({ ...opts, host, port, dbFile: files.db });
  const child = spawnDetached(cliPath, args, files.log);
  const pid = child.pid!;
  await writeFile(files.pid, `${pid}\n`);

  const server = ownServer(
    opts.address,
    opts.headless ? null : `http://${formatHostPort(host, port + 1000)}`,
    child,
    files.pid,
  );
  if (opts.keepRunning) server.detach();
  try {
    const exited = () => {
      if (child.signalCode !== null) return `signal ${child.signalCode}`;
      return child.exitCode !== null ? `exit code ${child.exitCode}` : null;
    };
    opts.log(`Started the Temporal dev server (pid ${pid}); logs: ${files.log}`);
    await waitUntilAnswering(opts.address, opts.startupTimeoutMs ?? 120_000, opts.log, exited, files.log);
    await ensureNamespaceAndSearchAttributes({
      address: opts.address,
      namespace: opts.namespace,
      log: opts.log,
    });
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** The `temporal server start-dev` command line; exported so tests can check it without a server. */
export function startDevArgs(o: {
  host: string;
  port: number;
  dbFile: string;
  namespace: string;
  headless?: boolean;
  dynamicConfig?: Record<string, unknown>;
}): string[] {
  const args = ['server', 'start-dev', '--ip', o.host, '--port', String(o.port), '--db-filename', o.dbFile];
  args.push('--namespace', o.namespace, '--log-level', 'warn');
  if (o.headless) args.push('--headless');
  else args.push('--ui-port', String(o.port + 1000));
  for (const [key, value] of Object.entries({ ...SERVER_VERSION_CHECK_OFF, ...o.dynamicConfig })) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  return args;
}

function spawnDetached(cliPath: string, args: string[], logFile: string): ChildProcess {
  // Output goes straight to a file (not a pipe) so the server keeps running after we exit.
  const fd = openSync(logFile, 'a');
  try {
    writeSync(fd, `\n${RUN_HEADER} ${new Date().toISOString()} ${cliPath} ${args.join(' ')}\n`);
    const child = spawn(cliPath, args, { detached: true, stdio: ['ignore', fd, fd] });
    // Without a listener a spawn failure (e.g. ENOENT) would be an uncaught 'error' event.
    child.on('error', () => {});
    if (child.pid === undefined) throw new Error(`Could not start the Temporal CLI at ${cliPath}`);
    child.unref(); // never keep the caller's event loop alive just for the server
    return child;
  } finally {
    closeSync(fd);
  }
}

function ownServer(
  address: string,
  uiUrl: string | null,
  child: ChildProcess,
  pidFile: string,
): TemporalServer {
  const pid = child.pid!;
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  // Best effort when the caller just exits: 'exit' handlers must be synchronous, so only SIGTERM.
  const onExit = () => {
    if (!gone()) signalGroup(pid, 'SIGTERM');
  };
  process.on('exit', onExit);
  let stopping: Promise<void> | null = null;
  return {
    address,
    uiUrl,
    startedByUs: true,
    pid,
    detach: () => {
      process.off('exit', onExit);
    },
    stop: () => {
      stopping ??= (async () => {
        process.off('exit', onExit);
        await killGroup(pid, gone);
        await rm(pidFile, { force: true });
      })();
      return stopping;
    },
  };
}

function reusedServer(address: string, uiUrl: string | null): TemporalServer {
  return { address, uiUrl, startedByUs: false, pid: null, stop: async () => {}, detach: () => {} };
}

/**
 * Stops a server left running by an earlier `ensureTemporalServer` (e.g. `cairn dev --stop`).
 * Returns false when there was nothing to stop. Checks the pid still belongs to `temporal` first,
 * since pids are reused after a reboot.
 */
export async function stopTemporalServerFromPidFile(
  dataDir: string,
  log: (msg: string) => void,
): Promise<boolean> {
  const pidFile = serverFiles(dataDir).pid;
  const pid = await readPidFile(pidFile);
  if (pid === null) return false;
  if (!isAlive(pid) || !(await looksLikeTemporal(pid))) {
    await rm(pidFile, { force: true });
    return false;
  }
  log(`Stopping the Temporal dev server (pid ${pid})…`);
  await killGroup(pid, () => !isAlive(pid));
  await rm(pidFile, { force: true });
  return true;
}

async function killGroup(pid: number, gone: () => boolean, graceMs = 10_000): Promise<void> {
  if (gone()) return;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (!gone() && Date.now() < deadline) await sleep(100);
  if (gone()) return;
  signalGroup(pid, 'SIGKILL');
  const killDeadline = Date.now() + 5_000;
  while (!gone() && Date.now() < killDeadline) await sleep(100);
}

function signalGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal); // negative pid: the whole process group (the child is its leader)
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readPidFile(file: string): Promise<number | null> {
  try {
    const pid = Number((await readFile(file, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

async function looksLikeTemporal(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('temporal');
  } catch {
    // No /proc (macOS): ask ps.
    return new Promise((resolve) => {
      execFile('ps', ['-o', 'command=', '-p', String(pid)], (err, stdout) =>
        resolve(!err && stdout.includes('temporal')),
      );
    });
  }
}

/**
 * One getSystemInfo call on a fresh connection (a long-lived channel would back off for minutes).
 * A TCP check comes first because the SDK retries UNAVAILABLE until the deadline.
 */
async function answers(address: string, timeoutMs: number): Promise<boolean> {
  const { host, port } = parseHostPort(address);
  if (!(await isListening(port, host))) return false;
  const connection = Connection.lazy({ address, connectTimeout: timeoutMs });
  try {
    await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({}));
    return true;
  } catch {
    return false;
  } finally {
    await connection.close();
  }
}

async function waitUntilAnswering(
  address: string,
  timeoutMs: number,
  log: (msg: string) => void,
  exited: () => string | null,
  logFile?: string,
): Promise<void> {
  const started = Date.now();
  log(`Waiting up to ${Math.round(timeoutMs / 1000)} s for Temporal to answer on ${address}…`);
  let lastReport = started;
  for (;;) {
    if (await answers(address, 2_000)) {
      log(`Temporal is answering on ${address} after ${((Date.now() - started) / 1000).toFixed(1)} s.`);
      return;
    }
    const code = exited();
    if (code !== null) {
      const hint = logFile ? `: ${await lastLine(logFile)} (full log: ${logFile})` : '';
      throw new Error(`The Temporal dev server exited (${code}) before answering on ${address}${hint}`);
    }
    if (Date.now() - started > timeoutMs) {
      throw new Error(
        `Temporal did not answer on ${address} within ${Math.round(timeoutMs / 1000)} s${logFile ? `; see ${logFile}` : ''}`,
      );
    }
    if (Date.now() - lastReport >= 15_000) {
      lastReport = Date.now();
      log(`  still waiting for Temporal… (${Math.round((Date.now() - started) / 1000)} s)`);
    }
    await sleep(500);
  }
}

/** The server's last output line from its latest run (after our "=== <time> <command>" header). */
async function lastLine(file: string): Promise<string> {
  try {
    const text = await readFile(file, 'utf8');
    const header = text.lastIndexOf(RUN_HEADER);
    const run = header < 0 ? text : text.slice(text.indexOf('\n', header) + 1);
    return (
      run
        .split('\n')
        .filter((l) => l.trim())
        .at(-1)
        ?.trim() ?? 'no output'
    );
  } catch {
    return 'no log';
  }
}

async function probeUi(host: string, port: number): Promise<string | null> {
  const url = `http://${formatHostPort(host, port + 1000)}`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return res.ok ? url : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Namespace and search attributes

/** CLI-style type names (as in SEARCH_ATTRIBUTES and `temporal operator search-attribute create`). */
const SDK_TYPE = {
  Text: SearchAttributeType.TEXT,
  Keyword: SearchAttributeType.KEYWORD,
  Int: SearchAttributeType.INT,
  Double: SearchAttributeType.DOUBLE,
  Bool: SearchAttributeType.BOOL,
  Datetime: SearchAttributeType.DATETIME,
  KeywordList: SearchAttributeType.KEYWORD_LIST,
} as const;
type CliTypeName = keyof typeof SDK_TYPE;

function indexedValueType(type: CliTypeName): number {
  return encodeSearchAttributeIndexedValueType(SDK_TYPE[type])!;
}

function typeName(indexed: number): string {
  return (
    (Object.keys(SDK_TYPE) as CliTypeName[]).find((t) => indexedValueType(t) === indexed) ??
    `type #${indexed}`
  );
}

/**
 * Makes sure `namespace` exists and every attribute in `attributes` (default: SEARCH_ATTRIBUTES) is
 * registered with the right type, then waits until they are all listed — registration is applied
 * asynchronously, and a workflow started before that fails on the unknown attribute.
 * Idempotent; throws if an attribute exists with a different type.
 */
export async function ensureNamespaceAndSearchAttributes(opts: {
  address: string;
  namespace: string;
  attributes?: Readonly<Record<string, CliTypeName>>;
  timeoutMs?: number;
  log: (msg: string) => void;
}): Promise<void> {
  const attributes = opts.attributes ?? SEARCH_ATTRIBUTES;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const connection = await Connection.connect({ address: opts.address });
  const rpc = <T>(fn: () => Promise<T>) => connection.withDeadline(Date.now() + 10_000, fn);
  // Right after a namespace is created, describeNamespace already finds it but the operator
  // service's namespace cache may not yet (NOT_FOUND): retry those until the deadline.
  const call = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await rpc(fn);
      } catch (err) {
        if (!isNotFound(err) || Date.now() > deadline) throw err;
        await sleep(250);
      }
    }
  };
  try {
    await ensureNamespace(opts.namespace, deadline, rpc, connection, opts.log);

    const existing = (
      await call(() => connection.operatorService.listSearchAttributes({ namespace: opts.namespace }))
    ).customAttributes;
    const missing: Record<string, number> = {};
    for (const [name, type] of Object.entries(attributes)) {
      const have = existing[name] as number | undefined;
      if (have === undefined) missing[name] = indexedValueType(type);
      else if (have !== indexedValueType(type)) {
        throw new Error(
          `Search attribute ${name} exists in namespace ${opts.namespace} as ${typeName(have)}, but Cairn needs ${type}`,
        );
      }
    }
    const names = Object.keys(missing);
    if (names.length === 0) return;

    opts.log(`Registering search attributes ${names.join(', ')} in namespace ${opts.namespace}…`);
    await call(() =>
      connection.operatorService.addSearchAttributes({
        namespace: opts.namespace,
        searchAttributes: missing,
      }),
    );
    for (;;) {
      const listed = (
        await call(() => connection.operatorService.listSearchAttributes({ namespace: opts.namespace }))
      ).customAttributes;
      if (names.every((n) => listed[n] !== undefined)) return;
      if (Date.now() > deadline) {
        throw new Error(`Search attributes ${names.join(', ')} were registered but are still not visible`);
      }
      await sleep(250);
    }
  } finally {
    await connection.close();
  }
}

function isNotFound(err: unknown): boolean {
  return isGrpcServiceError(err) && Number(err.code) === GRPC_NOT_FOUND;
}

async function ensureNamespace(
  namespace: string,
  deadline: number,
  call: <T>(fn: () => Promise<T>) => Promise<T>,
  connection: Connection,
  log: (msg: string) => void,
): Promise<void> {
  let registered = false;
  for (;;) {
    try {
      await call(() => connection.workflowService.describeNamespace({ namespace }));
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!registered) {
      log(`Creating namespace ${namespace}…`);
      try {
        await call(() =>
          connection.workflowService.registerNamespace({
            namespace,
            workflowExecutionRetentionPeriod: msToTs(NAMESPACE_RETENTION),
          }),
        );
      } catch (err) {
        if (!isGrpcServiceError(err) || Number(err.code) !== GRPC_ALREADY_EXISTS) throw err;
      }
      registered = true;
    }
    if (Date.now() > deadline) throw new Error(`Namespace ${namespace} was created but is still not visible`);
    await sleep(500); // the namespace cache refreshes every few seconds
  }
}
