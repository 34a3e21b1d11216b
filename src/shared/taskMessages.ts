/**
 * Signal, query and update definitions of the task workflow, plus the typed search-attribute
 * keys. Shared by the client and workflow code (sandbox-safe).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import { z } from 'zod';
import type { Json } from './observation';
import { jsonSchema, type ContextMessage, type StepStatus, type UndeliverableMessage } from './task';

export interface MemoryEntry {
  value: Json;
  /** Per-key version: 1 on first write, +1 on each write. 0 means "absent" in a compare-and-set. */
  version: number;
  updatedBy: string;
}

export interface WorkingMemory {
  entries: Record<string, MemoryEntry>;
}

export interface MemoryWrite {
  key: string;
  value: Json;
  /** The version the writer last read (0 = expects the key to be absent). */
  expectedVersion: number;
  writer?: string;
}

/** The setMemory update's argument, checked by the workflow's validator (strict, one message naming the field). */
export const memoryWriteSchema = z.strictObject({
  key: z.string().min(1, 'key must be 1-200 characters').max(200, 'key must be 1-200 characters'),
  value: jsonSchema,
  expectedVersion: z
    .number({ error: 'expectedVersion must be a number: the version last read (0 = key absent)' })
    .int()
    .min(0),
  writer: z.string().min(1).max(200).optional(),
});

export interface TaskStatusView {
  taskKey: string;
  goal: string;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  steps: {
    id: string;
    role: string;
    title: string;
    status: StepStatus;
    attempts: number;
    error?: string;
    /** The role's task queue, once the step is scheduled. */
    queue?: string;
    lostMemoryWrites?: string[];
    undeliverable?: number;
  }[];
  pendingMessages: number;
  deliveredMessages: number;
  continuedAsNew: number;
  /** Signals the workflow refused (malformed context), with the latest reasons. */
  rejectedSignals?: { count: number; recent: string[] };
  /** Messages to other tasks that could not be delivered. */
  undeliverable?: UndeliverableMessage[];
  /** Signals and updates this run has taken (Temporal limits them per run: 10,000 and 2,000). */
  thisRun?: { signals: number; updates: number };
}

/**
 * Directional context for a role in this task. Deduplicated by message id for the whole task;
 * the workflow validates it (a malformed one is dropped, counted and shown in the status).
 */
export const contextSignal = defineSignal<[ContextMessage]>('context');
export const workingMemoryQuery = defineQuery<WorkingMemory>('workingMemory');
export const statusQuery = defineQuery<TaskStatusView>('status');
/** Compare-and-set on one working-memory key; a stale expectedVersion is refused by the validator. */
export const setMemoryUpdate = defineUpdate<MemoryEntry, [MemoryWrite]>('setMemory');

export const TaskKeyAttribute = defineSearchAttributeKey('CairnTaskKey', SearchAttributeType.KEYWORD);
export const TaskStatusAttribute = defineSearchAttributeKey('CairnTaskStatus', SearchAttributeType.KEYWORD);
export const RolesAttribute = defineSearchAttributeKey('CairnRoles', SearchAttributeType.KEYWORD_LIST);
