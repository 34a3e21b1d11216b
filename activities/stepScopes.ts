/**
 * The scopes of one agent step (src/shared/scopes.ts): its grant, and its appends with `task`
 * resolved to `task:<task key>`. The database checks both (migration 006); this only names them.
 */
import type { AgentDefinition } from '../src/agent';
import { ObservationValidationError } from '../src/shared/errors';
import {
  resolveScope,
  scopePatternProblem,
  stepScopes,
  TASK_SCOPE,
  type ScopeGrant,
} from '../src/shared/scopes';
import type { AgentStepInput } from '../src/shared/task';
import type { AppendItem } from '../src/store/observations/append';

/** The step's grant; a malformed pattern fails the step for good (ScopeDeniedError). */
export function stepGrant(
  input: AgentStepInput,
  agent: Pick<AgentDefinition, 'role' | 'scopes'>,
): ScopeGrant {
  return stepScopes({
    taskKey: input.taskKey,
    role: agent.role,
    taskScopes: input.scopes,
    roleScopes: input.roleScopes,
    agentScopes: agent.scopes,
  });
}

/** The items with their scope resolved in the step's task; a malformed one is a validation error. */
export function resolveAppendScopes(items: readonly AppendItem[], taskKey: string): AppendItem[] {
  return items.map((item, i) => {
    const pattern = item.scope ?? TASK_SCOPE;
    const problem = typeof pattern === 'string' ? scopePatternProblem(pattern) : 'must be a string';
    if (problem !== undefined) throw new ObservationValidationError(i, 'scope', problem);
    return { ...item, scope: resolveScope(pattern, taskKey) };
  });
}
