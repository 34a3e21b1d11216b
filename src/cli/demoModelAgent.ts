/**
 * The model-driven part of `cairn demo` (docs/mcp.md): the analyst is a model calling Cairn's
 * tools through the AI SDK (`generateText` + `cairnTools(ctx)`, examples/due-diligence/analyst.ts).
 * Shows its decision with the model call recorded in the observation's source (provider, model
 * id, token usage, prompt hash, tool call) and what it read before deciding (its read set).
 */
import type { Pool } from 'pg';
import { parseModelSource, type ModelCall } from '../shared/modelSource';
import { listObservations } from '../store/observations/list';
import type { StoredObservation } from '../shared/observation';
import { readSetOfObservation } from '../store/readSets';
import { formatValue } from './format';

export interface ModelDecision {
  observation: StoredObservation;
  call: ModelCall;
}

export async function showModelDecision(opts: {
  pool: Pool;
  taskKey: string;
  out: (line?: string) => void;
  step: (title: string) => void;
}): Promise<ModelDecision | undefined> {
  const { pool, taskKey, out, step } = opts;
  const written = await listObservations(pool, { taskKey, limit: 100 });
  const decisions = written.flatMap((o) => {
    const call = parseModelSource(o.provenance.source);
    return call ? [{ observation: o, call }] : [];
  });
  out();
  const first = decisions[0];
  if (!first) {
    step('model-driven analyst: no observation with a model call in this task');
    return undefined;
  }
  const { observation: o, call } = first;
  step(
    `model-driven analyst: generateText with cairnTools(ctx), model ${call.provider}/${call.modelId} (AI SDK 6)`,
  );
  for (const d of decisions) {
    const u = d.call.usage;
    out(
      `  ${d.observation.kind} ${d.observation.type} ${formatValue(d.observation.fields, 70)}  →  ${d.observation.entityType}/${d.observation.entityId}@${d.observation.entityVersion}`,
    );
    out(
      `    by ${d.observation.provenance.agentId} (${d.observation.provenance.role}), ${d.observation.provenance.activityId} attempt ${d.observation.provenance.attempt}; observation ${d.observation.id}`,
    );
    out(
      `    model call: ${d.call.provider}/${d.call.modelId}, tool call ${d.call.toolCallId}, tokens ${u?.inputTokens ?? '?'} in / ${u?.outputTokens ?? '?'} out, prompt sha256 ${d.call.promptHash.slice(0, 16)}…`,
    );
  }
  const readSet = await readSetOfObservation(pool, o.id);
  if (readSet)
    out(
      `  what the model read before deciding (read_entity → the step's read set): ${readSet.entries
        .map((e) => `${e.entityType}/${e.entityId}@${e.version}`)
        .join(', ')}`,
    );
  if (o.provenance.attempt > 1)
    out(
      `  attempts before ${o.provenance.attempt} wrote nothing (the model call failed; Temporal retried the step)`,
    );
  return first;
}
