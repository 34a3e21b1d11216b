/**
 * FROZEN (0.1.0): the schemas, message definitions and types the 0.1.0 task workflow used, so
 * its histories replay with exactly the defaults and checks they ran with. Never change this file.
 */
import { z } from 'zod';
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Json } from '../../src/shared/observation';
import { scopePatternProblem } from '../../src/shared/scopes';

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

const name = (what: string) =>
  z.string().regex(/^[a-z][a-z0-9_-]{0,62}$/, `${what} must be lower-case letters, digits, _ or - (max 63)`);

const roleSchema = name('role');
const taskKeySchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]*$/, 'task key must be letters, digits and . _ : / -');

export const stepSpecSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'step id must be lower-case letters, digits, _ or -'),
  role: roleSchema,
  title: z.string().min(1).max(120),
  input: jsonSchema.default(null),
  dependsOn: z.array(z.string()).default([]),
});
export type StepSpec = z.input<typeof stepSpecSchema>;
export type Step = z.output<typeof stepSpecSchema>;

export const rolePolicySchema = z.object({
  maxAttempts: z.number().int().min(1).max(100).default(3),
  initialRetryMs: z.number().int().min(10).default(1000),
  timeoutMs: z
    .number()
    .int()
    .min(100)
    .default(5 * 60_000),
  heartbeatMs: z.number().int().min(100).default(30_000),
});

const _contextMessageSchema = z.object({
  id: z.string().min(1).max(200),
  fromRole: z.string().min(1).max(63),
  toRole: roleSchema,
  type: z.string().min(1).max(100),
  content: jsonSchema,
  fromTask: z.string().optional(),
  toTask: taskKeySchema.optional(),
});
export type ContextMessage = z.infer<typeof _contextMessageSchema>;

const scopePatternSchema = z.string().superRefine((s, ctx) => {
  const problem = scopePatternProblem(s);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

export const taskInputSchema = z.object({
  taskKey: taskKeySchema,
  goal: z.string().min(1).max(2000),
  steps: z.array(stepSpecSchema).min(1).max(500),
  rolePolicies: z.record(z.string(), rolePolicySchema.partial()).default({}),
  onStepFailure: z.enum(['fail', 'skip']).default('fail'),
  maxAddedSteps: z.number().int().min(0).max(1000).default(50),
  scopes: z.array(z.string()).default(['task']),
  roleScopes: z
    .record(
      roleSchema,
      z.object({
        read: z.array(scopePatternSchema).optional(),
        write: z.array(scopePatternSchema).optional(),
      }),
    )
    .optional(),
});
export type TaskInput = z.input<typeof taskInputSchema>;
export type ParsedTaskInput = z.output<typeof taskInputSchema>;

export function taskWorkflowId(taskKey: string): string {
  return 'cairn-task-' + taskKeySchema.parse(taskKey);
}

export function roleTaskQueue(prefix: string, role: string): string {
  return `${prefix}-role-${role}`;
}

export type StepStatus = 'pending' | 'running' | 'completed' | 'failed' | 'skipped' | 'cancelled';

export interface StepResult {
  output: Json;
  observations: { id: string; entity: string; entityVersion: number; replayed: boolean }[];
  messages: ContextMessage[];
  proposedSteps: StepSpec[];
  memoryWrites?: MemoryWrite[];
  acknowledged: string[];
}

export interface TaskResult {
  taskKey: string;
  status: 'completed' | 'failed' | 'cancelled';
  steps: { id: string; role: string; status: StepStatus; output?: Json; error?: string }[];
  observations: number;
  messages: number;
  continuedAsNew: number;
}

export interface MemoryEntry {
  value: Json;
  version: number;
  updatedBy: string;
}

export interface WorkingMemory {
  entries: Record<string, MemoryEntry>;
}

export interface MemoryWrite {
  key: string;
  value: Json;
  expectedVersion: number;
  writer?: string;
}

export interface TaskStatusView {
  taskKey: string;
  goal: string;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  steps: { id: string; role: string; title: string; status: StepStatus; attempts: number; error?: string }[];
  pendingMessages: number;
  deliveredMessages: number;
  continuedAsNew: number;
}

export const contextSignal = defineSignal<[ContextMessage]>('context');
export const workingMemoryQuery = defineQuery<WorkingMemory>('workingMemory');
export const statusQuery = defineQuery<TaskStatusView>('status');
export const setMemoryUpdate = defineUpdate<MemoryEntry, [MemoryWrite]>('setMemory');
export const TaskStatusAttribute = defineSearchAttributeKey('CairnTaskStatus', SearchAttributeType.KEYWORD);
