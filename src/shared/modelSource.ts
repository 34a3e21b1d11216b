/**
 * Model provenance in an observation's `source`: which model call produced it (provider, model
 * id, token usage, a hash of the prompt, the tool call). Carried as a `tool-call` source whose
 * `detail` is canonical JSON, so the log's schema and hashes need no change, and a retried step
 * with the same model answer replays the same content. Sandbox-safe.
 */
import type { ExternalSource } from './observation';

export interface ModelCall {
  provider: string;
  modelId: string;
  /** sha256 (hex) of the canonical JSON of the prompt messages the model answered. */
  promptHash: string;
  toolCallId: string;
  usage?:
    | {
        inputTokens?: number | undefined;
        outputTokens?: number | undefined;
        totalTokens?: number | undefined;
      }
    | undefined;
}

export const MODEL_SOURCE_PREFIX = 'model:';

export function modelSource(call: ModelCall): ExternalSource {
  const usage = call.usage
    ? Object.fromEntries(Object.entries(call.usage).filter(([, v]) => typeof v === 'number'))
    : undefined;
  const detail = {
    provider: call.provider,
    modelId: call.modelId,
    promptHash: call.promptHash,
    toolCallId: call.toolCallId,
    ...(usage && Object.keys(usage).length > 0 ? { usage } : {}),
  };
  return {
    kind: 'tool-call',
    ref: `${MODEL_SOURCE_PREFIX}${call.provider}/${call.modelId}`,
    detail: JSON.stringify(detail),
  };
}

/** The model call a source records, or undefined when it is not a model source. */
export function parseModelSource(source: ExternalSource | undefined | null): ModelCall | undefined {
  if (!source || source.kind !== 'tool-call' || !source.ref.startsWith(MODEL_SOURCE_PREFIX) || !source.detail)
    return undefined;
  try {
    const d = JSON.parse(source.detail) as Partial<ModelCall>;
    if (typeof d.provider !== 'string' || typeof d.modelId !== 'string' || typeof d.promptHash !== 'string')
      return undefined;
    return {
      provider: d.provider,
      modelId: d.modelId,
      promptHash: d.promptHash,
      toolCallId: String(d.toolCallId ?? ''),
      ...(d.usage ? { usage: d.usage } : {}),
    };
  } catch {
    return undefined;
  }
}
