/** Small agents and one observation type for workflow tests. */
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { defineObservationType, ObservationTypeRegistry } from '../../src/shared/observationTypes';

export const note = defineObservationType({
  name: 'test.note',
  version: 1,
  entity: 'note',
  fields: { text: z.string(), n: z.number().int().optional() },
});
export const testTypes = new ObservationTypeRegistry([note]);

/** Appends one note per step: entity note/<step id>, text from the input. */
export const echo = defineAgent({
  role: 'echo',
  async handle(ctx) {
    const input = (ctx.step.input ?? {}) as { text?: string; sendTo?: string; toTask?: string; invalid?: boolean };
    ctx.append({ entityType: 'note', entityId: ctx.step.id, type: 'test.note', fields: input.invalid ? { text: 42 } : { text: input.text ?? ctx.step.id } });
    if (input.sendTo) ctx.send(input.sendTo, 'hello', { from: ctx.step.id }, input.toTask ? { toTask: input.toTask } : undefined);
    return { text: input.text ?? ctx.step.id };
  },
});

/** Reports what it received: inbox ids and contents, and working memory. */
export const listener = defineAgent({
  role: 'listener',
  async handle(ctx) {
    return {
      inbox: ctx.inbox.map((m) => m.id),
      contents: ctx.inbox.map((m) => m.content),
      memory: Object.fromEntries(Object.entries(ctx.memory.working).map(([k, e]) => [k, { value: e.value, version: e.version }])),
    };
  },
});

/** Waits `ms` (default: until cancelled), heartbeating; honours cancellation. */
export const slow = defineAgent({
  role: 'slow',
  async handle(ctx) {
    const { ms, untilFile } = (ctx.step.input ?? {}) as { ms?: number; untilFile?: string };
    // `untilFile`: hold until the test says so (deterministic, unlike a guessed duration).
    if (untilFile !== undefined) {
      while (!existsSync(untilFile)) await sleep(100, undefined, { signal: ctx.signal });
      return { waited: untilFile };
    }
    await sleep(ms ?? 600_000, undefined, { signal: ctx.signal });
    return { waited: ms ?? null };
  },
});

export const testAgents = [echo, listener, slow];
