/** Small agents and one observation type for workflow tests. */
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAgent, type AgentDefinition } from '../../src/agent';
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
  input: z
    .object({
      text: z.string().optional(),
      sendTo: z.string().optional(),
      toTask: z.string().optional(),
      invalid: z.boolean().optional(),
    })
    .nullable()
    .transform((i) => i ?? {}),
  async handle(ctx) {
    const input = ctx.step.input;
    if (input.invalid)
      // @ts-expect-error -- a wrong field type does not compile; at run time the append refuses it too.
      ctx.append(note, ctx.step.id, { text: 42 });
    else ctx.append(note, ctx.step.id, { text: input.text ?? ctx.step.id });
    if (input.sendTo)
      ctx.send(
        input.sendTo,
        'hello',
        { from: ctx.step.id },
        input.toTask ? { toTask: input.toTask } : undefined,
      );
    return { text: input.text ?? ctx.step.id };
  },
});

/**
 * Typed input and output: `{ company }` in, `{ verdict }` out. `verdict: 'bogus'` in the input
 * makes it return an output its schema refuses.
 */
export const typed = defineAgent({
  role: 'typed',
  input: z.object({ company: z.string(), verdict: z.string().default('ok') }),
  output: z.object({ verdict: z.enum(['ok', 'fail']), company: z.string() }),
  async handle(ctx) {
    const { company, verdict } = ctx.step.input;
    ctx.append(note, company, { text: `typed ${company}` });
    // Deliberately past the type system, to reach the run-time check of the output.
    return { company, verdict: verdict as 'ok' };
  },
});

/** Reports what it received: inbox ids and contents, and working memory. */
export const listener = defineAgent({
  role: 'listener',
  async handle(ctx) {
    return {
      inbox: ctx.inbox.map((m) => m.id),
      contents: ctx.inbox.map((m) => m.content),
      memory: Object.fromEntries(
        Object.entries(ctx.memory.working).map(([k, e]) => [k, { value: e.value, version: e.version }]),
      ),
    };
  },
});

/** Waits `ms` (default: until cancelled), heartbeating; honours cancellation. */
export const slow = defineAgent({
  role: 'slow',
  input: z
    .object({ ms: z.number().optional(), untilFile: z.string().optional() })
    .nullable()
    .transform((i) => i ?? {}),
  async handle(ctx) {
    const { ms, untilFile } = ctx.step.input;
    // `untilFile`: hold until the test says so (deterministic, unlike a guessed duration).
    if (untilFile !== undefined) {
      while (!existsSync(untilFile)) await sleep(100, undefined, { signal: ctx.signal });
      return { waited: untilFile };
    }
    await sleep(ms ?? 600_000, undefined, { signal: ctx.signal });
    return { waited: ms ?? null };
  },
});

let gates = 0;

/**
 * A file a `slow` step with `{ untilFile }` waits for: the test opens it when what the step must
 * wait for has happened (a gate, not a guessed duration that a loaded machine outruns).
 */
export function fileGate(name: string): { path: string; open: () => void } {
  const file = path.join(tmpdir(), `cairn-gate-${process.pid}-${name}-${++gates}`);
  return { path: file, open: () => writeFileSync(file, '') };
}

export const testAgents: AgentDefinition[] = [echo, listener, slow, typed];
