/**
 * Errors. Local error classes carry a stable `name`, a `code` from FAILURE_TYPES and structured
 * fields. When an error crosses the Temporal boundary it becomes an ApplicationFailure whose
 * `type` is the same code, with a deliberate retry decision (see `isRetryableFailureType`);
 * once across, match on the type string, never on `instanceof`. Sandbox-safe.
 */

export const FAILURE_TYPES = {
  /** An observation or agent output failed its schema. Bad input: never retried. */
  ValidationFailed: 'CairnValidationFailed',
  /** Same idempotency key, different content. A bug in the caller: never retried. */
  IdempotencyConflict: 'CairnIdempotencyConflict',
  /** An append's expectedVersion is behind the entity's current version. */
  StaleVersion: 'CairnStaleVersion',
  /** A payload exceeded a declared size limit. */
  PayloadTooLarge: 'CairnPayloadTooLarge',
  /** Unknown observation type or schema version. */
  UnknownObservationType: 'CairnUnknownObservationType',
  /** A read demanded a version the entity has not reached in time. */
  VersionNotReached: 'CairnVersionNotReached',
  /** A role tried to read or write outside its scopes. */
  ScopeDenied: 'CairnScopeDenied',
  /** The agent's own code threw; retried under the role's policy. */
  AgentFailed: 'CairnAgentFailed',
  /** Working-memory compare-and-set with a stale expected version. */
  WorkingMemoryConflict: 'CairnWorkingMemoryConflict',
} as const;

export type FailureType = (typeof FAILURE_TYPES)[keyof typeof FAILURE_TYPES];

const NON_RETRYABLE = new Set<string>([
  FAILURE_TYPES.ValidationFailed,
  FAILURE_TYPES.IdempotencyConflict,
  FAILURE_TYPES.PayloadTooLarge,
  FAILURE_TYPES.UnknownObservationType,
  FAILURE_TYPES.ScopeDenied,
  FAILURE_TYPES.WorkingMemoryConflict,
]);

/** Bad input and caller bugs are final; contention and infrastructure faults may heal on retry. */
export function isRetryableFailureType(type: string): boolean {
  return !NON_RETRYABLE.has(type);
}

export abstract class CairnError extends Error {
  abstract readonly code: FailureType;
  /** Structured, JSON-safe details carried across the Temporal boundary. */
  abstract details(): Record<string, unknown>;
}

export class ObservationValidationError extends CairnError {
  override readonly name = 'ObservationValidationError';
  readonly code = FAILURE_TYPES.ValidationFailed;
  constructor(
    /** Index of the offending item in the batch. */
    readonly index: number,
    /** Dotted path of the offending field, e.g. `fields.employees`. */
    readonly path: string,
    readonly problem: string,
  ) {
    super(`observation [${index}] ${path}: ${problem}`);
  }
  details() {
    return { index: this.index, path: this.path, problem: this.problem };
  }
}

export class UnknownObservationTypeError extends CairnError {
  override readonly name = 'UnknownObservationTypeError';
  readonly code = FAILURE_TYPES.UnknownObservationType;
  constructor(
    readonly index: number,
    readonly type: string,
    readonly schemaVersion: number | undefined,
  ) {
    super(`observation [${index}] type: unknown observation type "${type}${schemaVersion === undefined ? '' : `@${schemaVersion}`}"`);
  }
  details() {
    return { index: this.index, type: this.type, schemaVersion: this.schemaVersion };
  }
}

export class PayloadTooLargeError extends CairnError {
  override readonly name = 'PayloadTooLargeError';
  readonly code = FAILURE_TYPES.PayloadTooLarge;
  constructor(
    readonly index: number,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`observation [${index}] fields: ${bytes} bytes exceeds the limit of ${limit} bytes`);
  }
  details() {
    return { index: this.index, bytes: this.bytes, limit: this.limit };
  }
}

export class IdempotencyConflictError extends CairnError {
  override readonly name = 'IdempotencyConflictError';
  readonly code = FAILURE_TYPES.IdempotencyConflict;
  constructor(
    readonly idempotencyKey: string,
    readonly existingObservationId: string,
  ) {
    super(`idempotency key "${idempotencyKey}" was already used for different content (observation ${existingObservationId})`);
  }
  details() {
    return { idempotencyKey: this.idempotencyKey, existingObservationId: this.existingObservationId };
  }
}

export class StaleVersionError extends CairnError {
  override readonly name = 'StaleVersionError';
  readonly code = FAILURE_TYPES.StaleVersion;
  constructor(
    readonly entity: string,
    readonly expectedVersion: number,
    readonly currentVersion: number,
  ) {
    super(`${entity}: expected version ${expectedVersion} but the current version is ${currentVersion}`);
  }
  details() {
    return { entity: this.entity, expectedVersion: this.expectedVersion, currentVersion: this.currentVersion };
  }
}

export class VersionNotReachedError extends CairnError {
  override readonly name = 'VersionNotReachedError';
  readonly code = FAILURE_TYPES.VersionNotReached;
  constructor(
    readonly entity: string,
    readonly minVersion: number,
    readonly currentVersion: number,
  ) {
    super(`${entity}: version ${minVersion} not reached (current ${currentVersion})`);
  }
  details() {
    return { entity: this.entity, minVersion: this.minVersion, currentVersion: this.currentVersion };
  }
}

export class WorkingMemoryConflictError extends CairnError {
  override readonly name = 'WorkingMemoryConflictError';
  readonly code = FAILURE_TYPES.WorkingMemoryConflict;
  constructor(
    readonly key: string,
    readonly expectedVersion: number,
    readonly currentVersion: number,
  ) {
    super(`working memory "${key}": expected version ${expectedVersion} but the current version is ${currentVersion}`);
  }
  details() {
    return { key: this.key, expectedVersion: this.expectedVersion, currentVersion: this.currentVersion };
  }
}
