/**
 * A concise Temporal runtime logger for the command line: warnings and errors as one line each
 * (an activity retry reads as "step-assess attempt 1 failed: …"), nothing below `minLevel`.
 * Long-running workers keep INFO; the demo shows only what a person should notice.
 */
import {
  Runtime,
  type LogLevel,
  type LogMetadata,
  type Logger,
  type RuntimeOptions,
} from '@temporalio/worker';

const ORDER: Record<LogLevel, number> = { TRACE: 0, DEBUG: 1, INFO: 2, WARN: 3, ERROR: 4 };

export function conciseLogger(write: (line: string) => void, minLevel: LogLevel = 'WARN'): Logger {
  const log = (level: LogLevel, message: string, meta?: LogMetadata) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    // Role workers serve activities only; the SDK warns about that, but it is the design.
    if (message.startsWith('No workflows registered')) return;
    const m = (meta ?? {}) as Record<string, unknown>;
    const err = m.error as { message?: string } | undefined;
    const where = typeof m.activityId === 'string' ? ` ${m.activityId} attempt ${String(m.attempt)}` : '';
    write(`  [${level.toLowerCase()}]${where} ${message}${err?.message ? `: ${err.message}` : ''}`);
  };
  return {
    log,
    trace: (m, meta) => log('TRACE', m, meta),
    debug: (m, meta) => log('DEBUG', m, meta),
    info: (m, meta) => log('INFO', m, meta),
    warn: (m, meta) => log('WARN', m, meta),
    error: (m, meta) => log('ERROR', m, meta),
  };
}

let installed = false;
/**
 * Installs the logger once per process (the Temporal runtime can only be configured once), with
 * telemetry's runtime options (Temporal's metrics bridged into Cairn's exporter) when given.
 */
export function installConciseRuntime(
  write: (line: string) => void,
  minLevel: LogLevel = 'WARN',
  extra: Pick<RuntimeOptions, 'telemetryOptions'> = {},
): void {
  if (installed) return;
  installed = true;
  Runtime.install({ ...extra, logger: conciseLogger(write, minLevel) });
}
