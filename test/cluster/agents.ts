/**
 * The agent module the cluster tier's worker processes load (`cairn worker --agents …`). `hold`
 * announces each attempt on stdout (so the test knows which process to kill), holds the step for
 * a while, then appends one note: deterministic, so a retried step writes the same content.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineAgent } from '../../src/agent';
import { note, testTypes } from '../workflow/agents';

export const hold = defineAgent({
  role: 'hold',
  input: z.object({ ms: z.number().int().min(0).optional() }).nullable(),
  async handle(ctx) {
    const ms = ctx.step.input?.ms;
    process.stdout.write(`CLUSTER-STEP ${ctx.step.id} ${process.pid}\n`);
    await sleep(ms ?? 0, undefined, { signal: ctx.signal });
    ctx.append(note, ctx.step.id, { text: ctx.step.id });
    return { step: ctx.step.id };
  },
});

export const agents = [hold];
export const types = testTypes;
