/**
 * A non-deterministic agent for the fault tests: every run appends, sends and returns fresh
 * random content, as a model-backed agent would. A retry that ran it again after its step
 * committed would try to append different content under the same idempotency key (refused as an
 * idempotency conflict); so a fault test passes only if committed steps are not run again.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { defineAgent, type AgentDefinition } from '../../src/agent';
import type { Json } from '../../src/shared/observation';
import { note as noteType } from './agents';

export interface DiceRun {
  taskKey: string;
  stepId: string;
  attempt: number;
  output: { roll: string };
}

/**
 * Role `dice`. Input `{ ms?, readPrevious? }`: waits `ms` first (a slow model), and with
 * `readPrevious` reads the note of the step it depends on (a read that must survive faults).
 * Each step appends note/<task key>-<step id> with a random text and sends a random message to
 * `dice` (the next dice step's inbox). `onRun` sees every run of the handler.
 */
export function diceAgent(onRun: (run: DiceRun) => void): AgentDefinition {
  return defineAgent({
    role: 'dice',
    async handle(ctx) {
      const input = (ctx.step.input ?? {}) as { ms?: number; readPrevious?: string };
      if (input.ms) await sleep(input.ms, undefined, { signal: ctx.signal });
      let previous: Json = null;
      if (input.readPrevious !== undefined) {
        const state = await ctx.memory.entity({
          entityType: 'note',
          entityId: `${ctx.task.taskKey}-${input.readPrevious}`,
        });
        previous = state.fields.text?.value ?? null;
      }
      const roll = randomUUID();
      ctx.append(noteType, `${ctx.task.taskKey}-${ctx.step.id}`, { text: roll });
      ctx.send('dice', 'roll', { roll, previous });
      const output = { roll };
      onRun({ taskKey: ctx.task.taskKey, stepId: ctx.step.id, attempt: ctx.step.attempt, output });
      return output;
    },
  });
}
