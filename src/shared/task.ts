/**
 * Task definitions shared by the client, the worker and workflow code (sandbox-safe).
 *
 * Glossary
 * - task: one multi-agent job, run as a Temporal workflow whose id derives from the caller's
 *   task key, so starting the same task twice is idempotent.
 * - role: a kind of agent (researcher, writer…). Each role has its own task queue, so roles scale
 *   out as separate worker processes.
 * - step: one unit of agent work in a task's plan: a role, an input and the steps it depends on.
 *   It runs as one activity on the role's task queue.
 * - context message: directional context from one role to another (`fromRole → toRole`), read by
 *   the recipient's next step and acknowledged when that step completes.
 * - working memory: the task's scratch key/values with versions, held by the workflow.
 */
import { z } from 'zod';
import type { Json } from './observation';
import type { MemoryEntry, MemoryWrite } from './taskMessages';
import { scopePatternProblem } from './scopes';

const jsonSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([z.null(), z.boolean(), z.number(), z.string(), z.array(jsonSchema), z.record(z.string(), jsonSchema)]),
);
export { jsonSchema };

const name = (what: string) =>
  z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, `${what} must be lower-case letters, digits, _ or - (max 63)`);

export const roleSchema = name('role');
export const taskKeySchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'task key must be letters, digits and . _ : / -');

export const stepSpecSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'step id must be lower-case letters, digits, _ or -'),
  role: roleSchema,
  /** Shown in the Temporal UI as `<role>: <title>`. */
  title: z.string().min(1).max(120),
  input: jsonSchema.default(null),
  dependsOn: z.array(z.string()).default([]),
});
export type StepSpec = z.input<typeof stepSpecSchema>;
export type Step = z.output<typeof stepSpecSchema>;

export const rolePolicySchema = z.object({
  /** Attempts before the step fails for good (1 = no retry). */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  initialRetryMs: z.number().int().min(10).default(1000),
  /** Start-to-close timeout of one attempt. */
  timeoutMs: z.number().int().min(100).default(5 * 60_000),
  /** Heartbeat timeout: a step silent this long is presumed dead (its worker crashed) and retried. */
  heartbeatMs: z.number().int().min(100).default(10_000),
});
export type RolePolicy = z.output<typeof rolePolicySchema>;

export const contextMessageSchema = z.object({
  /** Deduplication key: the same id delivered twice is one message. */
  id: z.string().min(1).max(200),
  fromRole: z.string().min(1).max(63),
  toRole: roleSchema,
  type: z.string().min(1).max(100),
  content: jsonSchema,
  /** The task that sent it, when it comes from another task. */
  fromTask: z.string().optional(),
  /** The task it is for, when not the sender's own task. */
  toTask: taskKeySchema.optional(),
});
export type ContextMessage = z.infer<typeof contextMessageSchema>;

const scopePatternSchema = z.string().superRefine((s, ctx) => {
  const problem = scopePatternProblem(s);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

export const taskInputSchema = z.object({
  taskKey: taskKeySchema,
  goal: z.string().min(1).max(2000),
  steps: z.array(stepSpecSchema).min(1).max(500),
  rolePolicies: z.record(z.string(), rolePolicySchema.partial()).default({}),
  /** What happens when a step fails for good. */
  onStepFailure: z.enum(['fail', 'skip']).default('fail'),
  /** Upper bound on steps proposed by agents while the task runs. */
  maxAddedSteps: z.number().int().min(0).max(1000).default(50),
  /**
   * The scopes the task may use (patterns: `task`, `team:<name>`, `global`); its roles may write
   * these and read these plus `global`, unless `roleScopes` says otherwise (src/shared/scopes.ts).
   * Checked by the client, not here: workflows already running must parse as they did.
   */
  scopes: z.array(z.string()).default(['task']),
  /** Per-role grants, `{ analyst: { read: [...], write: [...] } }`: a side given replaces the default above. */
  roleScopes: z.record(roleSchema, z.object({ read: z.array(scopePatternSchema).optional(), write: z.array(scopePatternSchema).optional() })).optional(),
});
export type TaskInput = z.input<typeof taskInputSchema>;
export type ParsedTaskInput = z.output<typeof taskInputSchema>;

export const TASK_WORKFLOW_ID_PREFIX = 'cairn-task-';

/** The workflow id of a task: derived from the task key so starts are idempotent. */
export function taskWorkflowId(taskKey: string): string {
  return TASK_WORKFLOW_ID_PREFIX + taskKeySchema.parse(taskKey);
}

export function taskKeyFromWorkflowId(workflowId: string): string | undefined {
  return workflowId.startsWith(TASK_WORKFLOW_ID_PREFIX) ? workflowId.slice(TASK_WORKFLOW_ID_PREFIX.length) : undefined;
}

export function roleTaskQueue(prefix: string, role: string): string {
  return `${prefix}-role-${role}`;
}

export function taskWorkflowQueue(prefix: string): string {
  return `${prefix}-tasks`;
}

export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

/** What a step hands back to the workflow: references, not payloads (claim-check). */
export interface StepResult {
  output: Json;
  observations: { id: string; entity: string; entityVersion: number; replayed: boolean }[];
  messages: ContextMessage[];
  proposedSteps: StepSpec[];
  /** Compare-and-set writes to working memory; a stale one is dropped and reported in the step. */
  memoryWrites?: MemoryWrite[];
  acknowledged: string[];
}

/** The input of the generic agent-step activity. */
export interface AgentStepInput {
  taskKey: string;
  goal: string;
  step: Step;
  inbox: ContextMessage[];
  scopes: string[];
  /** The task's grant for the step's role (TaskInput.roleScopes[role]); absent when it has none. */
  roleScopes?: { read?: string[] | undefined; write?: string[] | undefined };
  memory: Record<string, MemoryEntry>;
  /** Outputs of the steps this one depends on. */
  upstream: Record<string, Json>;
}

export interface TaskResult {
  taskKey: string;
  status: 'completed' | 'failed' | 'cancelled';
  steps: { id: string; role: string; status: StepStatus; output?: Json; error?: string }[];
  observations: number;
  messages: number;
  /** How many times the task continued as new (long tasks). */
  continuedAsNew: number;
}
