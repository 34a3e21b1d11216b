/** Loads an agent module: a file exporting `agents` (AgentDefinition[]) and `types` (a registry). */
import path from 'node:path';
import type { AgentDefinition } from '../agent';
import { ObservationTypeRegistry } from '../shared/observationTypes';
import { UsageError } from './command';
import { repositoryRoot } from './repoOnly';

export interface AgentModule {
  agents: AgentDefinition[];
  types: ObservationTypeRegistry;
}

export const DEFAULT_AGENT_MODULE = path.join('examples', 'due-diligence', 'index.ts');

export function loadAgentModule(root: string, file: string | undefined): AgentModule {
  // The example agents are the default only in a clone of the repository; the package ships none.
  if (!file && !repositoryRoot())
    throw new UsageError('give --agents <module.js>: a file exporting "agents" and "types"');
  const resolved = path.resolve(file ? process.cwd() : root, file ?? DEFAULT_AGENT_MODULE);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- modules are chosen at run time
  const mod = require(resolved) as Partial<AgentModule>;
  if (!Array.isArray(mod.agents))
    throw new Error(`${resolved} must export "agents" (an array of defineAgent(...))`);
  if (!(mod.types instanceof ObservationTypeRegistry))
    throw new Error(`${resolved} must export "types" (an ObservationTypeRegistry)`);
  return { agents: mod.agents, types: mod.types };
}
