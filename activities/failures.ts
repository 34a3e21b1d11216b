/**
 * The Temporal boundary for activity errors: Cairn's own errors become ApplicationFailures typed
 * by their code, with the retry decision from the failure table; anything else an agent throws
 * is retryable under the role's policy.
 */
import { ApplicationFailure } from '@temporalio/common';
import { CairnError, FAILURE_TYPES, isRetryableFailureType } from '../src/shared/errors';

export function toApplicationFailure(err: unknown): ApplicationFailure {
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
  return ApplicationFailure.create({ type: FAILURE_TYPES.AgentFailed, message: e.message, nonRetryable: false, cause: e });
}
