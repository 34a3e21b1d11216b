/**
 * `@cairn-memory/cairn/workflow`: the sandbox-safe part of Cairn, for users who write their own
 * Temporal workflows on top of it. Everything here runs inside Temporal's deterministic workflow
 * sandbox: zod schemas, the task's input and result types, the signal / query / update
 * definitions of the task and agreement workflows, task-queue and workflow-id naming, the
 * reducer that folds observations into entity state, and the failure-type table. Nothing here
 * imports `pg` or a Node built-in (lint enforces it for src/shared; a test bundles this entry).
 */

// The task workflow's input, result and naming: what any client (another SDK, the `temporal`
// CLI) sends to start a task on task queue `<prefix>-tasks` as workflow `cairn-task-<key>`.
export {
  taskInputSchema,
  stepSpecSchema,
  contextMessageSchema,
  rolePolicySchema,
  roleSchema,
  taskKeySchema,
  taskWorkflowId,
  taskKeyFromWorkflowId,
  taskWorkflowQueue,
  roleTaskQueue,
  TASK_WORKFLOW_ID_PREFIX,
  type TaskInput,
  type ParsedTaskInput,
  type StepSpec,
  type Step,
  type RolePolicy,
  type ContextMessage,
  type StepStatus,
  type StepResult,
  type TaskResult,
  type AgentStepInput,
} from './shared/task';

// Messages to and from a running task.
export {
  contextSignal,
  workingMemoryQuery,
  statusQuery,
  setMemoryUpdate,
  TaskKeyAttribute,
  TaskStatusAttribute,
  RolesAttribute,
  type MemoryEntry,
  type MemoryWrite,
  type WorkingMemory,
  type TaskStatusView,
} from './shared/taskMessages';

// Agreements between agents.
export {
  agreementInputSchema,
  agreementRuleSchema,
  voteSchema,
  voteUpdate,
  agreementQuery,
  agreementWorkflowId,
  evaluateAgreement,
  type AgreementInput,
  type AgreementRule,
  type AgreementStatus,
  type AgreementView,
  type AgreementOutcome,
  type Vote,
  type VoteReceipt,
} from './shared/agreement';

// Observations, their types and the deterministic reduction into entity state.
export {
  defineObservationType,
  ObservationTypeRegistry,
  type ObservationType,
  type ObservationTypeSpec,
} from './shared/observationTypes';
export {
  OBSERVATION_KINDS,
  FIELD_POLICIES,
  entityRefSchema,
  parseEntityRef,
  formatEntityRef,
  type ObservationKind,
  type FieldPolicy,
  type Json,
  type EntityRef,
  type Provenance,
  type StoredObservation,
  type ReducibleObservation,
} from './shared/observation';
export {
  reduceEntity,
  applyObservations,
  applyObservation,
  emptyEntityState,
  policyResolverFor,
  type ReduceOptions,
} from './shared/reducer';
export type {
  EntityState,
  FieldState,
  ContestedValue,
  ObservationRef,
  PolicyResolver,
} from './shared/entityState';

// Failure types that cross the Temporal boundary, and whether Cairn retries them.
export { FAILURE_TYPES, isRetryableFailureType, type FailureType } from './shared/errors';
