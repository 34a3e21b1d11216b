/**
 * Refusals as a model can act on them: one line saying what went wrong and what to do next,
 * plus the structured details. Every tool error of both adapters goes through `toolRefusal`.
 */
import { z } from 'zod';
import {
  CairnError,
  FencingTokenStaleError,
  IdempotencyConflictError,
  ObservationValidationError,
  PayloadTooLargeError,
  ScopeDeniedError,
  StaleReadError,
  StaleVersionError,
  UnknownObservationTypeError,
  VersionNotReachedError,
} from '../shared/errors';
import { recordRefusal } from '../telemetry/instrument';

export interface ToolRefusal {
  error: string;
  /** What the caller should do next. */
  next: string;
  details?: Record<string, unknown>;
}

/** Refused before reaching the store: bad tool input (names the field). */
export class ToolInputError extends Error {
  override readonly name = 'ToolInputError';
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super(`${field}: ${problem}`);
  }
}

export function inputErrorFrom(err: z.ZodError): ToolInputError {
  const issue = err.issues[0];
  const field = issue?.path.map(String).join('.') || '(input)';
  return new ToolInputError(field, issue?.message ?? 'invalid');
}

export function toolRefusal(err: unknown): ToolRefusal {
  recordRefusal(err);
  if (err instanceof ToolInputError)
    return {
      error: `invalid input at ${err.field}: ${err.problem}`,
      next: `fix ${err.field} and call again; nothing was written`,
      details: { field: err.field },
    };
  if (err instanceof z.ZodError) return toolRefusal(inputErrorFrom(err));
  if (err instanceof StaleReadError) {
    const c = err.conflicts[0];
    return {
      error: err.message.replace(/; the decision was refused and the step will re-read$/, ''),
      next: c
        ? `re-read ${c.entityType}/${c.entityId} (read_entity), reconsider, then append the decision again; nothing was written`
        : 're-read what you read, then decide again',
      details: {
        entity: err.entity,
        versionRead: err.versionRead,
        currentVersion: err.currentVersion,
        conflicts: err.conflicts,
      },
    };
  }
  if (err instanceof ObservationValidationError)
    return {
      error: `observation [${err.index}] ${err.path}: ${err.problem}`,
      next: `fix items[${err.index}].${err.path} (list_types shows the schema); nothing was written`,
      details: err.details(),
    };
  if (err instanceof UnknownObservationTypeError)
    return {
      error: err.message,
      next: 'call list_types for the registered types; nothing was written',
      details: err.details(),
    };
  if (err instanceof PayloadTooLargeError)
    return { error: err.message, next: 'send smaller fields; nothing was written', details: err.details() };
  if (err instanceof FencingTokenStaleError) {
    const held = err.current.hidden
      ? 'its current grant belongs to a scope you may not read'
      : err.current.holder === null
        ? 'nobody holds it now'
        : `held by ${err.current.holder} (token ${err.current.token}) until ${err.current.expiresAt}`;
    return {
      error: `your claim on ${err.resource} is lost (${err.reason}); ${held}`,
      next: `claim ${err.resource} again (or wait for it) before writing under it; nothing was written`,
      details: err.details(),
    };
  }
  if (err instanceof StaleVersionError)
    return {
      error: err.message,
      next: `re-read ${err.entity} and retry with expectedVersion ${err.currentVersion}; nothing was written`,
      details: err.details(),
    };
  if (err instanceof VersionNotReachedError)
    return { error: err.message, next: 'wait and read again, or lower minVersion', details: err.details() };
  if (err instanceof ScopeDeniedError)
    return {
      error: err.message,
      next: `use one of your ${err.access} scopes: ${err.granted.join(', ') || 'none'}; nothing was written`,
      details: err.details(),
    };
  if (err instanceof IdempotencyConflictError)
    return { error: err.message, next: 'use a new requestId for different content', details: err.details() };
  if (err instanceof CairnError) return { error: err.message, next: 'see details', details: err.details() };
  if (err instanceof RangeError || err instanceof TypeError)
    return { error: err.message, next: 'fix the input and call again' };
  return {
    error: err instanceof Error ? err.message : String(err),
    next: 'try again later; if it persists, report it',
  };
}
