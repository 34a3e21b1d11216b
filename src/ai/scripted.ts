/**
 * A scripted model for tests and the demo: the AI SDK's own MockLanguageModelV3 (ai/test)
 * answering turn by turn with the tool calls or text it is given, so a model-driven agent runs
 * through the real generateText path, deterministically and without network. Each instance
 * replays its script from the start (make one per step attempt: a retried step gets the same
 * answers, as the exactly-once tests want).
 */
import { MockLanguageModelV3 } from 'ai/test';

export type ScriptedTurn =
  { toolCalls: { name: string; input: Record<string, unknown> }[] } | { text: string };

export function scriptedModel(
  turns: readonly ScriptedTurn[],
  opts: { provider?: string; modelId?: string } = {},
): MockLanguageModelV3 {
  let call = 0;
  return new MockLanguageModelV3({
    provider: opts.provider ?? 'scripted',
    modelId: opts.modelId ?? 'cairn-script-1',
    doGenerate: () => {
      const i = call++;
      const turn = turns[Math.min(i, turns.length - 1)] ?? { text: '' };
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
