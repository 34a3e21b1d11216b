/**
 * FROZEN (0.1.0). Working memory: versioned key/values held in the task workflow. Writes are compare-and-set on
 * the key's version; the check is synchronous so it can serve as an update validator (an async
 * validator's rejection would be ignored).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { FAILURE_TYPES } from '../../src/shared/errors';
import type { MemoryEntry, MemoryWrite, WorkingMemory } from './sharedV1';

export type { WorkingMemory };

export const MAX_MEMORY_KEYS = 500;
export const MAX_MEMORY_VALUE_CHARS = 32_000;

/** Throws an ApplicationFailure (so the update is rejected, not the workflow task) when stale. */
export function checkMemoryWrite(memory: WorkingMemory, write: MemoryWrite): void {
  if (typeof write.key !== 'string' || write.key.length === 0 || write.key.length > 200) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.ValidationFailed,
      message: 'memory key must be 1-200 characters',
      nonRetryable: true,
    });
  }
  const current = memory.entries[write.key]?.version ?? 0;
  if (write.expectedVersion !== current) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.WorkingMemoryConflict,
      message: `working memory "${write.key}": expected version ${write.expectedVersion} but the current version is ${current}`,
      details: [{ key: write.key, expectedVersion: write.expectedVersion, currentVersion: current }],
      nonRetryable: true,
    });
  }
  if (current === 0 && Object.keys(memory.entries).length >= MAX_MEMORY_KEYS) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.PayloadTooLarge,
      message: `working memory holds at most ${MAX_MEMORY_KEYS} keys`,
      nonRetryable: true,
    });
  }
  if (JSON.stringify(write.value ?? null).length > MAX_MEMORY_VALUE_CHARS) {
    throw ApplicationFailure.create({
      type: FAILURE_TYPES.PayloadTooLarge,
      message: `working memory values are limited to ${MAX_MEMORY_VALUE_CHARS} characters; store large data as observations`,
      nonRetryable: true,
    });
  }
}

export function applyMemoryWrite(memory: WorkingMemory, write: MemoryWrite): MemoryEntry {
  checkMemoryWrite(memory, write);
  const entry: MemoryEntry = {
    value: write.value ?? null,
    version: write.expectedVersion + 1,
    updatedBy: write.writer ?? 'client',
  };
  memory.entries[write.key] = entry;
  return entry;
}
