/**
 * A scripted model for tests and the demo: the AI SDK's own MockLanguageModelV3 (ai/test)
 * answering turn by turn with the tool calls or text it is given, so a model-driven agent runs
 * through the real generateText path, deterministically and without network. Each instance
 * replays its script from the start (make one per step attempt: a retried step gets the same
 * answers, as the exactly-once tests want).
 *
 * A turn may be a function of the tool results the model has seen so far (what the AI SDK put
 * in its prompt), so a script can act on what it read the way a model would: decide from the
 * state `read_entity` returned, or re-read after a refusal. `{ fail }` makes the call throw, as
 * a model endpoint that times out does.
 */
import { MockLanguageModelV3 } from 'ai/test';

export type ScriptedTurn =
  { toolCalls: { name: string; input: Record<string, unknown> }[] } | { text: string } | { fail: string };

/** A tool result as the model saw it in its prompt: the JSON (or text) output, or the tool error. */
export interface SeenToolResult {
  toolName: string;
  toolCallId: string;
  output: unknown;
  isError: boolean;
}

export type ScriptStep = ScriptedTurn | ((seen: readonly SeenToolResult[]) => ScriptedTurn);

export function scriptedModel(
  turns: readonly ScriptStep[],
  opts: { provider?: string; modelId?: string } = {},
): MockLanguageModelV3 {
  let call = 0;
  return new MockLanguageModelV3({
    provider: opts.provider ?? 'scripted',
    modelId: opts.modelId ?? 'cairn-script-1',
    doGenerate: (options) => {
      const i = call++;
      const step = turns[Math.min(i, turns.length - 1)] ?? { text: '' };
      const turn = typeof step === 'function' ? step(seenToolResults(options.prompt)) : step;
      if ('fail' in turn) return Promise.reject(new Error(turn.fail));
      // Token counts are part of the script too (so recorded usage is checkable).
      const usage = {
        inputTokens: { total: 100 + 10 * i, noCache: 100 + 10 * i, cacheRead: 0, cacheWrite: 0 },
        outputTokens: { total: 20 + i, text: 20 + i, reasoning: 0 },
      };
      if ('text' in turn)
        return Promise.resolve({
          content: [{ type: 'text', text: turn.text }],
          finishReason: { unified: 'stop', raw: 'stop' },
          usage,
          warnings: [],
        });
      return Promise.resolve({
        content: turn.toolCalls.map((c, k) => ({
          type: 'tool-call',
          toolCallId: `call-${i}-${k}`,
          toolName: c.name,
          input: JSON.stringify(c.input),
        })),
        finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
        usage,
        warnings: [],
      });
    },
  });
}

type Prompt = Parameters<NonNullable<MockLanguageModelV3['doGenerate']>>[0]['prompt'];

function seenToolResults(prompt: Prompt): SeenToolResult[] {
  const seen: SeenToolResult[] = [];
  for (const message of prompt) {
    if (message.role !== 'tool') continue;
    for (const part of message.content) {
      if (part.type !== 'tool-result') continue;
      const o = part.output as { type: string; value?: unknown };
      const isError = o.type.startsWith('error');
      // Refusals are JSON in the error text (src/tools/refusals.ts): hand the script the object.
      let output = o.value;
      if (typeof output === 'string' && (isError || o.type === 'text')) {
        try {
          output = JSON.parse(output) as unknown;
        } catch {
          // plain text stays text
        }
      }
      seen.push({ toolName: part.toolName, toolCallId: part.toolCallId, output, isError });
    }
  }
  return seen;
}
