/**
 * The Temporal boundary for activity errors: Cairn's own errors become ApplicationFailures typed
 * by their code, with the retry decision from the failure table; infrastructure faults (the
 * database unreachable past the step's retry budget) are typed as such; anything else an agent
 * throws is retryable under the role's policy.
 */
import { ApplicationFailure } from '@temporalio/common';
import { CairnError, FAILURE_TYPES, isRetryableFailureType } from '../src/shared/errors';
import { isTransientDbError, withDbRetry } from '../src/store/pool';
import { recordRefusal } from '../src/telemetry/instrument';

/**
 * The database stayed unreachable (or kept refusing for a transient reason) for the whole retry
 * budget of the attempt. Retryable: not the agent's fault, but the attempt is used up.
 */
export const INFRASTRUCTURE_UNAVAILABLE = 'CairnInfrastructureUnavailable';

export function toApplicationFailure(err: unknown): ApplicationFailure {
  recordRefusal(err);
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof CairnError) {
    return ApplicationFailure.create({
      type: err.code,
      message: err.message,
      details: [err.details()],
      nonRetryable: !isRetryableFailureType(err.code),
      cause: err,
    });
  }
  const e = err instanceof Error ? err : new Error(String(err));
  if (isTransientDbError(err))
    return ApplicationFailure.create({
      type: INFRASTRUCTURE_UNAVAILABLE,
      message: `database unavailable: ${e.message}`,
      nonRetryable: false,
      cause: e,
    });
  return ApplicationFailure.create({
    type: FAILURE_TYPES.AgentFailed,
    message: e.message,
    nonRetryable: false,
    cause: e,
  });
}

export interface InfrastructureRetry {
  /** Total time to keep retrying one operation (CAIRN_DB_RETRY_MS). */
  budgetMs: number;
  /** How often to heartbeat while retrying, so Temporal does not presume the worker dead. */
  heartbeatEveryMs: number;
  /** The attempt's cancellation: retrying stops when it fires. */
  signal: AbortSignal;
  heartbeat(): void;
  warn(message: string): void;
}

/**
 * Runs a database operation of the current attempt, retrying infrastructure faults within it
 * (src/store/pool.ts withDbRetry), heartbeating meanwhile and stopping on cancellation. The
 * agent is not run again for them: the operation is only the store's part. Takes the attempt's
 * hooks rather than Temporal's context, so the /testing runner shares it.
 */
export async function retryInfrastructure<T>(fn: () => Promise<T>, opts: InfrastructureRetry): Promise<T> {
  const beat = setInterval(() => opts.heartbeat(), opts.heartbeatEveryMs);
  try {
    return await withDbRetry(fn, {
      budgetMs: opts.budgetMs,
      signal: opts.signal,
      onRetry: (err, retry, delayMs) => {
        // One line per retry is plenty: the budget bounds their number.
        if (retry === 1 || retry % 10 === 0)
          opts.warn(`database unavailable (${describe(err)}); retry ${retry} in ${Math.round(delayMs)} ms`);
      },
    });
  } finally {
    clearInterval(beat);
  }
}

function describe(err: unknown): string {
  if (typeof err !== 'object' || err === null) return String(err);
  const { code, message } = err as { code?: unknown; message?: unknown };
  return (
    [typeof code === 'string' ? code : undefined, typeof message === 'string' ? message : undefined]
      .filter(Boolean)
      .join(' ') || 'unknown error'
  );
}
