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
  /** A write fenced by a claim whose token is no longer current (superseded, expired, released). */
  FenceStale: 'CairnFenceStale',
  /**
   * A step's decision rests on reads that moved on before it committed (dependsOnReads
   * 'strict'). Retryable: the next attempt re-reads and decides again.
   */
  StaleRead: 'CairnStaleRead',
  /** An agreement refused the call: not a voter, or a malformed proposal (src/shared/agreement.ts). */
  AgreementRefused: 'CairnAgreementRefused',
  /** A vote or wait named an agreement nobody has proposed (yet); retried. */
  AgreementNotFound: 'CairnAgreementNotFound',
} as const;

export type FailureType = (typeof FAILURE_TYPES)[keyof typeof FAILURE_TYPES];

const NON_RETRYABLE = new Set<string>([
  FAILURE_TYPES.ValidationFailed,
  FAILURE_TYPES.IdempotencyConflict,
  FAILURE_TYPES.PayloadTooLarge,
  FAILURE_TYPES.UnknownObservationType,
  FAILURE_TYPES.ScopeDenied,
  FAILURE_TYPES.WorkingMemoryConflict,
  // The writer lost its lease; retrying the same write can never pass the fence.
  FAILURE_TYPES.FenceStale,
  FAILURE_TYPES.AgreementRefused,
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

/**
 * Identity that survives two copies of the package (an agent module resolved against its own
 * node_modules, a bundler's duplicate): `instanceof` on a marked class asks whether the value
 * carries the class's marker, a `Symbol.for` key shared by every copy, instead of walking the
 * prototype chain to this copy's class. A subclass that is not marked itself (a user's own
 * subclass) falls back to the prototype chain, so it does not claim every instance of its parent.
 */
export function markErrorClass(cls: abstract new (...args: never[]) => Error, name: string): void {
  const marker = Symbol.for(`@cairn-memory/cairn:${name}`);
  Object.defineProperty(cls.prototype, marker, { value: true, enumerable: false });
  Object.defineProperty(cls, Symbol.hasInstance, {
    value(this: abstract new (...args: never[]) => Error, value: unknown): boolean {
      if (this !== cls)
        return (
          typeof value === 'object' &&
          value !== null &&
          Object.prototype.isPrototypeOf.call(this.prototype, value)
        );
      return (
        typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[marker] === true
      );
    },
  });
}
markErrorClass(CairnError, 'CairnError');

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
    super(
      `observation [${index}] type: unknown observation type "${type}${schemaVersion === undefined ? '' : `@${schemaVersion}`}"`,
    );
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
    super(
      `idempotency key "${idempotencyKey}" was already used for different content (observation ${existingObservationId})`,
    );
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
    return {
      entity: this.entity,
      expectedVersion: this.expectedVersion,
      currentVersion: this.currentVersion,
    };
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
    super(
      `working memory "${key}": expected version ${expectedVersion} but the current version is ${currentVersion}`,
    );
  }
  details() {
    return { key: this.key, expectedVersion: this.expectedVersion, currentVersion: this.currentVersion };
  }
}

/** Why a fenced write was refused (see src/store/claims). `not-held`: the step never held it. */
export type FenceRefusal = 'superseded' | 'expired' | 'released' | 'never-granted' | 'not-held';

export class FencingTokenStaleError extends CairnError {
  override readonly name = 'FencingTokenStaleError';
  readonly code = FAILURE_TYPES.FenceStale;
  constructor(
    readonly resource: string,
    readonly token: number | null,
    readonly reason: FenceRefusal,
    /** The resource's claim when the write was checked (database time `checkedAt`). */
    readonly current: {
      token: number | null;
      holder: string | null;
      expiresAt: string | null;
      checkedAt: string | null;
      /** When the current token was released (null or absent: it was not). */
      releasedAt?: string | null;
      /**
       * The claim belongs to a scope the caller may not read: token, holder and times are null
       * (hidden by the database, migration 017).
       */
      hidden?: boolean;
    },
  ) {
    super(`fencing token ${token ?? '(none)'} of ${resource} is stale (${reason})${currentLease(current)}`);
  }
  details() {
    return { resource: this.resource, token: this.token, reason: this.reason, current: this.current };
  }
}

/** What became of the current token: held until, released at, or expired at (database times). */
function currentLease(c: FencingTokenStaleError['current']): string {
  if (c.hidden) return '; its current grant belongs to a scope you may not read';
  if (c.holder === null) return '';
  if (c.releasedAt) return `; token ${c.token} of ${c.holder} was released at ${c.releasedAt}`;
  const ended =
    c.expiresAt !== null && c.checkedAt !== null && Date.parse(c.expiresAt) <= Date.parse(c.checkedAt);
  return ended
    ? `; token ${c.token} of ${c.holder} expired at ${c.expiresAt}`
    : `; token ${c.token} is held by ${c.holder} until ${c.expiresAt}`;
}

/**
 * Refused under dependsOnReads 'strict': something the step read has moved on in a field it
 * looked at. Names the first conflict; `conflicts` has them all (src/shared/readSets.ts).
 */
export class StaleReadError extends CairnError {
  override readonly name = 'StaleReadError';
  readonly code = FAILURE_TYPES.StaleRead;
  readonly entity: string;
  readonly versionRead: number;
  readonly currentVersion: number;
  constructor(
    readonly conflicts: readonly {
      entityType: string;
      entityId: string;
      versionRead: number;
      currentVersion: number;
      fields: string[] | null;
      observationIds: string[];
    }[],
    /** The refused attempt's read set (stored with the refusal). */
    readonly readSetId: string,
  ) {
    const first = conflicts[0];
    const entity = first ? `${first.entityType}/${first.entityId}` : '?';
    const fields = first?.fields ? ` (${first.fields.join(', ')} changed)` : '';
    const more =
      conflicts.length > 1
        ? ` and ${conflicts.length - 1} more entit${conflicts.length === 2 ? 'y' : 'ies'}`
        : '';
    super(
      `stale read: ${entity} was read at version ${first?.versionRead ?? '?'} but is now at version ${first?.currentVersion ?? '?'}${fields}${more}; the decision was refused and the step will re-read`,
    );
    this.entity = entity;
    this.versionRead = first?.versionRead ?? -1;
    this.currentVersion = first?.currentVersion ?? -1;
  }
  details() {
    return {
      entity: this.entity,
      versionRead: this.versionRead,
      currentVersion: this.currentVersion,
      readSetId: this.readSetId,
      conflicts: this.conflicts.map((c) => ({ ...c })),
    };
  }
}

/**
 * An agent's step input or output failed the agent's zod schema (`defineAgent({ input, output })`).
 * Bad input never heals on retry: non-retryable, naming the field (`step input.company: …`).
 */
export class AgentValidationError extends CairnError {
  override readonly name = 'AgentValidationError';
  readonly code = FAILURE_TYPES.ValidationFailed;
  constructor(
    readonly role: string,
    /** Which side of the handler failed. */
    readonly where: 'input' | 'output',
    /** Dotted path inside it (`company`, `items[2].id`; empty for the whole value). */
    readonly path: string,
    readonly problem: string,
  ) {
    super(
      `step ${where}${path === '' ? '' : path.startsWith('[') ? path : `.${path}`}: ${problem} (agent ${role})`,
    );
  }
  details() {
    return { role: this.role, where: this.where, path: this.path, problem: this.problem };
  }
}

/**
 * Why a scope check refused (see src/shared/scopes.ts): the scope is not in the step's grant,
 * the entity belongs to another scope than the append names, a pattern is malformed, or the
 * connection has no grant at all (`no-grant`: a pool made without `scopes`, read outside a step).
 */
export type ScopeRefusal = 'not-granted' | 'entity-scope' | 'invalid-scope' | 'no-grant';

export class ScopeDeniedError extends CairnError {
  override readonly name = 'ScopeDeniedError';
  readonly code = FAILURE_TYPES.ScopeDenied;
  readonly reason: ScopeRefusal;
  readonly access: 'read' | 'write';
  readonly role: string;
  /** The scope asked for (null: none could be named). */
  readonly scope: string | null;
  /** The scopes the step was granted for `access`. */
  readonly granted: readonly string[];
  /** `type/id`, when an entity is involved, and the scope it belongs to. */
  readonly entity: string | undefined;
  readonly entityScope: string | undefined;
  constructor(f: {
    reason: ScopeRefusal;
    access: 'read' | 'write';
    role: string;
    scope: string | null;
    granted: readonly string[];
    entity?: string;
    entityScope?: string;
    message: string;
  }) {
    super(f.message);
    this.reason = f.reason;
    this.access = f.access;
    this.role = f.role;
    this.scope = f.scope;
    this.granted = [...f.granted];
    this.entity = f.entity;
    this.entityScope = f.entityScope;
  }
  details() {
    return {
      reason: this.reason,
      access: this.access,
      role: this.role,
      scope: this.scope,
      granted: [...this.granted],
      ...(this.entity !== undefined ? { entity: this.entity } : {}),
      ...(this.entityScope !== undefined ? { entityScope: this.entityScope } : {}),
    };
  }
}

// Every public error class, marked (see markErrorClass).
for (const [cls, name] of [
  [ObservationValidationError, 'ObservationValidationError'],
  [UnknownObservationTypeError, 'UnknownObservationTypeError'],
  [PayloadTooLargeError, 'PayloadTooLargeError'],
  [IdempotencyConflictError, 'IdempotencyConflictError'],
  [StaleVersionError, 'StaleVersionError'],
  [VersionNotReachedError, 'VersionNotReachedError'],
  [WorkingMemoryConflictError, 'WorkingMemoryConflictError'],
  [FencingTokenStaleError, 'FencingTokenStaleError'],
  [StaleReadError, 'StaleReadError'],
  [ScopeDeniedError, 'ScopeDeniedError'],
  [AgentValidationError, 'AgentValidationError'],
] as const)
  markErrorClass(cls, name);
