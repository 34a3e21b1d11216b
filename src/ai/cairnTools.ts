/**
 * Cairn's tools for the Vercel AI SDK (v6), bound to an agent step:
 *
 *   const model = cairnModel(openai('gpt-4.1'));          // optional: records token usage
 *   await generateText({ model, tools: cairnTools(ctx, { model }), prompt, stopWhen: stepCountIs(8) });
 *
 * Generated from the same definitions as the MCP server (src/tools/definitions.ts). Every
 * observation a tool call appends carries the model call in its `source` (provider, model id,
 * token usage of the call that asked for it, a hash of the prompt it answered, the tool call id):
 * see src/shared/modelSource.ts. A refusal comes back to the model as a tool error saying what
 * to do next.
 */
import { createHash } from 'node:crypto';
import { tool, wrapLanguageModel, type LanguageModel, type ToolSet } from 'ai';
import type { AgentContext } from '../agent';
import { modelSource, type ModelCall } from '../shared/modelSource';
import { toolsFor } from '../tools/definitions';
import { toolRefusal } from '../tools/refusals';
import type { CairnSession } from '../tools/session';
import { stepSession, type StepSessionOptions } from './stepSession';

type Usage = NonNullable<ModelCall['usage']>;
type ModelObject = Exclude<LanguageModel, string>;

/** The usage of the latest completed call of a model wrapped by cairnModel. */
const usageOf = new WeakMap<object, { last: Usage | undefined }>();

/**
 * Wraps a model so each call's token usage is known to the tools it calls: the AI SDK runs a
 * response's tool calls after the call returns, so "the latest call" is the one that asked.
 * Use one wrapped model per step (concurrent generateText calls would share it).
 */
export function cairnModel<M extends ModelObject>(model: M): M {
  const tracker: { last: Usage | undefined } = { last: undefined };
  const wrapped = wrapLanguageModel({
    model: model as Parameters<typeof wrapLanguageModel>[0]['model'],
    middleware: {
      specificationVersion: 'v3',
      wrapGenerate: async ({ doGenerate }) => {
        const result = await doGenerate();
        tracker.last = totals(result.usage);
        return result;
      },
    },
  });
  usageOf.set(wrapped, tracker);
  return wrapped as unknown as M;
}

export interface CairnToolsOptions extends StepSessionOptions {
  /** The model the tools serve: its provider and id are recorded (and usage, if from cairnModel). */
  model?: LanguageModel;
}

/** The Cairn tool set as AI SDK tools bound to this agent step. */
export function cairnTools(ctx: AgentContext<unknown>, opts: CairnToolsOptions = {}): ToolSet {
  return aiTools(stepSession(ctx, opts), opts.model);
}

/** The tool set for any session (cairnTools is this over the step's session). */
export function aiTools(session: CairnSession, model?: LanguageModel): ToolSet {
  const { provider, modelId } = describeModel(model);
  const tracker = model !== undefined && typeof model === 'object' ? usageOf.get(model) : undefined;
  const out: ToolSet = {};
  for (const def of toolsFor(session)) {
    out[def.name] = tool({
      description: def.description,
      inputSchema: def.input,
      execute: async (input: unknown, options) => {
        const source = modelSource({
          provider,
          modelId,
          promptHash: promptHash(options.messages),
          toolCallId: options.toolCallId,
          usage: tracker?.last,
        });
        const bound: CairnSession = { ...session, append: (req) => session.append({ ...req, source }) };
        try {
          return await def.run(bound, def.input.parse(input));
        } catch (err) {
          throw new Error(JSON.stringify(toolRefusal(err)), { cause: err });
        }
      },
    });
  }
  return out;
}

function describeModel(model: LanguageModel | undefined): { provider: string; modelId: string } {
  if (model === undefined) return { provider: 'unknown', modelId: 'unknown' };
  if (typeof model === 'string') {
    const slash = model.indexOf('/');
    return slash > 0
      ? { provider: model.slice(0, slash), modelId: model.slice(slash + 1) }
      : { provider: 'gateway', modelId: model };
  }
  return { provider: model.provider, modelId: model.modelId };
}

/**
 * The hash of the prompt the caller gave generateText: the messages before the model's first
 * turn. Not the whole conversation: the tool results in it come from the store, and a re-run of
 * a step whose reads moved on (its own earlier commit, say) must still hash the same prompt, so
 * the same answer replays instead of colliding with its own earlier write.
 */
function promptHash(messages: readonly { role: string }[]): string {
  const first = messages.findIndex((m) => m.role === 'assistant');
  const prompt = first === -1 ? messages : messages.slice(0, first);
  let text: string;
  try {
    text = JSON.stringify(prompt, (_k, v: unknown) =>
      v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v,
    );
  } catch {
    text = String(prompt.length);
  }
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function totals(usage: unknown): Usage {
  const n = (v: unknown): number | undefined => {
    if (typeof v === 'number') return v;
    if (typeof v === 'object' && v !== null && typeof (v as { total?: unknown }).total === 'number')
      return (v as { total: number }).total;
    return undefined;
  };
  const u = (usage ?? {}) as { inputTokens?: unknown; outputTokens?: unknown; totalTokens?: unknown };
  const input = n(u.inputTokens);
  const output = n(u.outputTokens);
  const total =
    n(u.totalTokens) ?? (input !== undefined && output !== undefined ? input + output : undefined);
  return { inputTokens: input, outputTokens: output, totalTokens: total };
}
