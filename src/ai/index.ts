/**
 * `@cairn-memory/cairn/ai`: Cairn's memory tools for model-driven agents on the AI SDK (v6).
 * Inside an agent step, `generateText({ model: cairnModel(model), tools: cairnTools(ctx, { model }) })`
 * gives the model the same tools MCP clients get (`cairn mcp`), bound to the step: its scopes,
 * read set, buffered appends, claims and messages. Each observation a model call produced records
 * the provider, model id, token usage and a hash of the prompt in its `source`.
 */
export { cairnTools, cairnModel, aiTools, type CairnToolsOptions } from './cairnTools';
export { parseModelSource, type ModelCall } from '../shared/modelSource';
// A scripted model (the AI SDK's mock) for tests of model-driven agents: no network, same tool path.
export { scriptedModel, type ScriptedTurn, type ScriptStep, type SeenToolResult } from './scripted';
