/**
 * `@cairn-memory/cairn`: shared memory and coordination for teams of AI agents, on Temporal and
 * Postgres. This root entry is for Node code: the processes that run agents and the ones that
 * start tasks.
 *
 * - Define what agents may write: `defineObservationType` (a versioned zod schema with a policy
 *   per field) collected in an `ObservationTypeRegistry`.
 * - Define agents: `defineAgent({ role, handle })`; the handler gets a context to read memory,
 *   append observations, claim resources and message other roles.
 * - Run them: `migrate(databaseUrl)` once, then `createWorker({ config, pool, registry, agents })`
 *   with `createPool(databaseUrl)` and `loadConfig(process.env)`.
 * - Start tasks and collect results: `CairnClient.connect(config)`; read entity state with
 *   `readEntity(pool, type, id)` (typed by the handle; agents use `ctx.memory.entity`).
 * - Model-driven agents: `cairnTools(ctx)` from `@cairn-memory/cairn/ai` (AI SDK tools bound to a
 *   step); other processes reach the same tools over MCP (`cairn mcp`).
 * - Errors: every class below has a stable `name`; once an error has crossed Temporal, match on
 *   its failure type (`FAILURE_TYPES`), not on the class.
 *
 * Workflow-safe pieces (schemas, message definitions, the reducer) are in
 * `@cairn-memory/cairn/workflow`; helpers for testing agents in `@cairn-memory/cairn/testing`.
 */

// Agents and observation types.
export {
  defineAgent,
  type AgentSpec,
  type AgentDefinition,
  type AgentContext,
  type AgentMemoryView,
  type AppendOptions,
  type TargetedOptions,
  type TypedEntityState,
  type TypedFieldState,
  type EntityReadOptions,
  type ReadTypes,
  type FieldsOf,
} from './agent';
export type { AgentCoordination, AgentEpisodicMemory, ProposalSpec } from './agentCoordination';
export {
  defineObservationType,
  ObservationTypeRegistry,
  isObservationType,
  type ObservationType,
  type ObservationTypeSpec,
  type FieldsInput,
  type FieldsOutput,
  type MergedFieldsOutput,
} from './shared/observationTypes';
export type {
  ClaimResult,
  ClaimGrant,
  ClaimHeld,
  Fence,
  WorkGrant,
  NextFreeSource,
  FreshnessOptions,
  FreshEntityState,
  Freshness,
  FieldAge,
  EpisodeQuery,
  FoundEpisode,
} from './shared/agentTypes';

// Running: configuration, database, worker.
export { loadConfig, configSchema, ConfigError, type CairnConfig } from './config';
export { migrate, MigrationError, type MigrateOptions } from './store/migrate';
export { createPool, type PoolOptions } from './store/pool';
export { createWorker, type CreateWorkerOptions, type CairnWorker } from './worker';
export {
  startTelemetry,
  telemetryWorkflowModules,
  type CairnTelemetry,
  type StartTelemetryOptions,
} from './telemetry/setup';
export { workflowBundlerOptions } from './workflowBundle';
export { workerDeploymentVersion, cairnVersion } from './workerVersioning';

// Orchestrating: starting tasks, talking to them, reading what agents wrote.
export { CairnClient, TaskInputError, TaskFailedError, type StartedTask } from './client';
export { readEntity } from './readEntity';
export type { EntityStateOptions } from './store/observations/read';

// Errors and the failure-type table.
export {
  FAILURE_TYPES,
  isRetryableFailureType,
  CairnError,
  AgentValidationError,
  ObservationValidationError,
  UnknownObservationTypeError,
  PayloadTooLargeError,
  IdempotencyConflictError,
  StaleVersionError,
  VersionNotReachedError,
  WorkingMemoryConflictError,
  FencingTokenStaleError,
  StaleReadError,
  ScopeDeniedError,
  type FailureType,
  type FenceRefusal,
  type ScopeRefusal,
} from './shared/errors';
export { AgreementRefusedError, AgreementNotFoundError } from './shared/agreement';
export { ObservationTypeConflictError } from './store/observations/registerTypes';

// Types that appear in the signatures above.
export type {
  TaskInput,
  TaskResult,
  StepSpec,
  StepResult,
  StepStatus,
  ContextMessage,
  RolePolicy,
} from './shared/task';
export type { MemoryEntry, MemoryWrite, WorkingMemory, TaskStatusView } from './shared/taskMessages';
export type { Json, EntityRef, FieldPolicy, ObservationKind, StoredObservation } from './shared/observation';
export type { EntityState, FieldState, ContestedValue, ObservationRef } from './shared/entityState';
export type { ScopeDeclaration, ScopeGrant } from './shared/scopes';
export type { DependsOnReads, TrackedReadOptions } from './shared/readSets';
export type { AgreementInput, AgreementOutcome, AgreementRule } from './shared/agreement';
