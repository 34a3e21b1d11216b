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
import type { PayloadPolicy } from './payloadRefs';
import { scopePatternProblem } from './scopes';

const jsonSchema: z.ZodType<Json> = z.lazy(() =>
  z.union([
    z.null(),
    z.boolean(),
    z.number(),
    z.string(),
    z.array(jsonSchema),
    z.record(z.string(), jsonSchema),
  ]),
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

export const stepSpecSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'step id must be lower-case letters, digits, _ or -'),
  role: roleSchema,
  /** Shown in the Temporal UI as `<role>: <title>`. */
  title: z.string().min(1).max(120),
  input: jsonSchema.default(null),
  dependsOn: z.array(z.string()).default([]),
});
export type StepSpec = z.input<typeof stepSpecSchema>;
export type Step = z.output<typeof stepSpecSchema>;

export const rolePolicySchema = z.strictObject({
  /** Attempts before the step fails for good (1 = no retry). */
  maxAttempts: z.number().int().min(1).max(100).default(3),
  initialRetryMs: z.number().int().min(10).default(1000),
  /** Start-to-close timeout of one attempt. */
  timeoutMs: z
    .number()
    .int()
    .min(100)
    .default(5 * 60_000),
  /** Heartbeat timeout: a step silent this long is presumed dead (its worker crashed) and retried. */
  heartbeatMs: z.number().int().min(100).default(10_000),
  /**
   * How long a step may wait for a worker of its role to pick it up (schedule-to-start) before it
   * fails naming the queue: a role no worker serves is a clear failure, not a silent hang.
   */
  scheduleToStartMs: z
    .number()
    .int()
    .min(100)
    .default(5 * 60_000),
});
export type RolePolicy = z.output<typeof rolePolicySchema>;

export const contextMessageSchema = z.strictObject({
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

const taskInputShape = z.strictObject({
  taskKey: taskKeySchema,
  goal: z.string().min(1).max(2000),
  steps: z.array(stepSpecSchema).min(1).max(500),
  rolePolicies: z.record(roleSchema, rolePolicySchema.partial()).default({}),
  /** Policy of roles without an entry in rolePolicies (including roles of proposed steps). */
  defaultRolePolicy: rolePolicySchema.partial().default({}),
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
  roleScopes: z
    .record(
      roleSchema,
      z.strictObject({
        read: z.array(scopePatternSchema).optional(),
        write: z.array(scopePatternSchema).optional(),
      }),
    )
    .optional(),
});
/**
 * The task input, checked strictly (unknown keys, a plan whose dependencies do not resolve or
 * loop) and resolved: every policy is complete, so the parsed form the workflow keeps does not
 * change when a default changes in a later release. Parsing a parsed form gives it back.
 */
export const taskInputSchema = taskInputShape
  .superRefine((task, ctx) => {
    for (const problem of planProblems(task.steps))
      ctx.addIssue({ code: 'custom', path: ['steps'], message: problem });
  })
  .transform((task) => {
    const defaultRolePolicy = rolePolicySchema.parse(task.defaultRolePolicy);
    const rolePolicies: Record<string, RolePolicy> = {};
    for (const [role, p] of Object.entries(task.rolePolicies))
      rolePolicies[role] = { ...defaultRolePolicy, ...p };
    return { ...task, defaultRolePolicy, rolePolicies };
  });

/** Duplicate step ids, dependencies on steps that do not exist, and cycles: one line each. */
export function planProblems(steps: readonly { id: string; dependsOn: readonly string[] }[]): string[] {
  const problems: string[] = [];
  const ids = new Set<string>();
  for (const s of steps) {
    if (ids.has(s.id)) problems.push(`duplicate step id "${s.id}"`);
    ids.add(s.id);
  }
  for (const s of steps) {
    for (const d of s.dependsOn)
      if (!ids.has(d)) problems.push(`step "${s.id}" depends on unknown step "${d}"`);
  }
  const byId = new Map(steps.map((s) => [s.id, s]));
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string, path: string[]): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') {
      problems.push(`steps form a cycle: ${[...path.slice(path.indexOf(id)), id].join(' -> ')}`);
      return;
    }
    state.set(id, 'visiting');
    for (const d of byId.get(id)?.dependsOn ?? []) if (byId.has(d)) visit(d, [...path, id]);
    state.set(id, 'done');
  };
  for (const s of steps) visit(s.id, []);
  return problems;
}

/** Zod issues as one line each, `path: message`; unknown keys name the key and a near match. */
export function formatIssues(
  issues: readonly {
    code?: string;
    path: readonly PropertyKey[];
    message: string;
    keys?: readonly string[];
  }[],
  known: (path: readonly PropertyKey[]) => readonly string[] = () => [],
): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const where = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys' && issue.keys) {
      for (const key of issue.keys) {
        const near = nearest(key, known(issue.path));
        lines.push(
          `${where ? `${where}.` : ''}${key}: unknown key${near ? ` (did you mean "${near}"?)` : ''}`,
        );
      }
    } else lines.push(`${where || '(input)'}: ${issue.message}`);
  }
  return lines;
}

/** Parses a task input; problems come back one line each (no zod JSON). */
export function parseTaskInput(
  raw: unknown,
): { ok: true; task: ParsedTaskInput } | { ok: false; problems: string[] } {
  const r = taskInputSchema.safeParse(raw);
  if (r.success) return { ok: true, task: r.data };
  return { ok: false, problems: formatIssues(r.error.issues, knownTaskKeys) };
}

/** The keys valid at a path of a task input, for "did you mean" hints. */
function knownTaskKeys(path: readonly PropertyKey[]): readonly string[] {
  if (path.length === 0) return Object.keys(taskInputShape.shape);
  if (path[0] === 'steps' && path.length === 2) return Object.keys(stepSpecSchema.shape);
  if (
    (path[0] === 'rolePolicies' && path.length === 2) ||
    (path[0] === 'defaultRolePolicy' && path.length === 1)
  )
    return Object.keys(rolePolicySchema.shape);
  return [];
}

function nearest(key: string, candidates: readonly string[]): string | undefined {
  let best: { c: string; d: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(key.toLowerCase(), c.toLowerCase());
    if (d <= Math.max(2, Math.floor(c.length / 3)) && (!best || d < best.d)) best = { c, d };
  }
  return best?.c;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++)
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The policy a role's steps run with: its own entry, else the task's default (both complete). */
export function rolePolicyOf(task: ParsedTaskInput, role: string): RolePolicy {
  return task.rolePolicies[role] ?? task.defaultRolePolicy;
}

/** What the task workflow takes: the task, the deployment's queue prefix, and (across continue-as-new) its state. */
export const taskQueuePrefixSchema = z
  .string({ error: 'taskQueuePrefix is required (the deployment\'s task-queue prefix, e.g. "cairn")' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, 'taskQueuePrefix must be letters, digits, . _ - (max 100)');

export type TaskInput = z.input<typeof taskInputSchema>;
export type ParsedTaskInput = z.output<typeof taskInputSchema>;

export const TASK_WORKFLOW_ID_PREFIX = 'cairn-task-';

/** The workflow id of a task: derived from the task key so starts are idempotent. */
export function taskWorkflowId(taskKey: string): string {
  return TASK_WORKFLOW_ID_PREFIX + taskKeySchema.parse(taskKey);
}

export function taskKeyFromWorkflowId(workflowId: string): string | undefined {
  return workflowId.startsWith(TASK_WORKFLOW_ID_PREFIX)
    ? workflowId.slice(TASK_WORKFLOW_ID_PREFIX.length)
    : undefined;
}

export function roleTaskQueue(prefix: string, role: string): string {
  return `${prefix}-role-${role}`;
}

export function taskWorkflowQueue(prefix: string): string {
  return `${prefix}-tasks`;
}

/** `scheduled`: handed to the role's queue, waiting for a worker (or running: the activity's state tells). */
export type StepStatus =
  'pending' | 'scheduled' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

/** A message to another task that could not be signalled (target closed or missing): recorded, never retried. */
export interface UndeliverableMessage {
  id: string;
  toTask: string;
  toRole: string;
  stepId: string;
  reason: string;
}

/** What a step hands back to the workflow: references, not payloads (claim-check). */
export interface StepResult {
  /** The agent's output, or a reference to it when large (src/shared/payloadRefs.ts). */
  output: Json;
  observations: { id: string; entity: string; entityVersion: number; replayed: boolean }[];
  messages: ContextMessage[];
  proposedSteps: StepSpec[];
  /** Compare-and-set writes to working memory; a stale one is dropped and reported in the step. */
  memoryWrites?: MemoryWrite[];
  acknowledged: string[];
  /** The activity attempt that committed (for the step table's `runs`). */
  attempt?: number;
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
  /** Outputs of the steps this one depends on (references among them are resolved for the agent). */
  upstream: Record<string, Json>;
  /**
   * Set by workflow code that handles references (src/shared/payloadRefs.ts): large outputs and
   * proposed steps' inputs are then stored in Postgres and returned as references. Absent
   * (histories recorded before): everything is returned inline, as before.
   */
  payloads?: PayloadPolicy;
}

export interface TaskStepResult {
  id: string;
  role: string;
  status: StepStatus;
  output?: Json;
  error?: string;
  /** Activity attempts the step took. */
  attempts?: number;
  /** Working-memory keys whose compare-and-set write from this step lost (stale version). */
  lostMemoryWrites?: string[];
  /** Messages to other tasks this step sent that could not be delivered. */
  undeliverable?: UndeliverableMessage[];
}

export interface TaskResult {
  taskKey: string;
  status: 'completed' | 'failed' | 'cancelled';
  steps: TaskStepResult[];
  /** Every observation the task's steps wrote (not capped). */
  observations: number;
  messages: number;
  /** How many times the task continued as new (long tasks). */
  continuedAsNew: number;
}
