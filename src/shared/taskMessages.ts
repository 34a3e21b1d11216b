/**
 * Signal, query and update definitions of the task workflow, plus the typed search-attribute
 * keys. Shared by the client and workflow code (sandbox-safe).
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { Json } from './observation';
import type { ContextMessage, StepStatus } from './task';

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

export interface TaskStatusView {
  taskKey: string;
  goal: string;
  status: 'running' | 'completed' | 'failed' | 'cancelled';
  steps: { id: string; role: string; title: string; status: StepStatus; attempts: number; error?: string }[];
  pendingMessages: number;
  deliveredMessages: number;
  continuedAsNew: number;
}

/** Directional context for a role in this task. Deduplicated by message id. */
export const contextSignal = defineSignal<[ContextMessage]>('context');
export const workingMemoryQuery = defineQuery<WorkingMemory>('workingMemory');
export const statusQuery = defineQuery<TaskStatusView>('status');
/** Compare-and-set on one working-memory key; a stale expectedVersion is refused by the validator. */
export const setMemoryUpdate = defineUpdate<MemoryEntry, [MemoryWrite]>('setMemory');

export const TaskKeyAttribute = defineSearchAttributeKey('CairnTaskKey', SearchAttributeType.KEYWORD);
export const TaskStatusAttribute = defineSearchAttributeKey('CairnTaskStatus', SearchAttributeType.KEYWORD);
export const RolesAttribute = defineSearchAttributeKey('CairnRoles', SearchAttributeType.KEYWORD_LIST);
