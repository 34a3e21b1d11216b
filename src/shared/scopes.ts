/**
 * Scopes: the namespaces of shared memory a role may read and write (DESIGN invariant 7).
 * Sandbox-safe: names, patterns and the arithmetic of grants; the database enforces them
 * (src/store/migrations/006_scopes.sql, src/store/scope.ts).
 *
 * Glossary
 * - scope: `global`, `team:<name>` or `task:<task key>`. Every entity belongs to exactly one,
 *   fixed by its first observation.
 * - scope pattern: how agents and tasks name scopes in grants and appends; a scope name, or
 *   `task` for the current task's own scope (`task:<its key>`).
 * - grant: the concrete scopes a step may read and the ones it may write.
 *
 * A step's grant is what its agent declares intersected with what its task allows that role.
 * With nothing declared anywhere: read `task:<key>` and `global`, write `task:<key>`.
 */
import { ScopeDeniedError } from './errors';

/** The current task's own scope, as a pattern. */
export const TASK_SCOPE = 'task';
export const GLOBAL_SCOPE = 'global';
/** In a session setting only (engineers' tools, maintenance): every scope. Never in a step's grant. */
export const ALL_SCOPES = '*';

/** Concrete scope names a step may read and write. */
export interface ScopeGrant {
  read: readonly string[];
  write: readonly string[];
}

/** Scope patterns declared by an agent or allowed by a task for a role. */
export interface ScopeDeclaration {
  read?: readonly string[];
  write?: readonly string[];
}

/** What an agent may do when it declares nothing. */
export const DEFAULT_AGENT_SCOPES = { read: [TASK_SCOPE, GLOBAL_SCOPE], write: [TASK_SCOPE] } as const;

const TEAM_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
// The task-key grammar of taskKeySchema (src/shared/task.ts), which imports this module.
const TASK_KEY = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;

/** Why `name` is not a scope name, or undefined when it is one. */
export function scopeNameProblem(name: string): string | undefined {
  if (name === GLOBAL_SCOPE) return undefined;
  if (name.startsWith('team:')) {
    return TEAM_NAME.test(name.slice(5))
      ? undefined
      : 'a team scope is team:<name>, the name lower-case letters, digits, _ or - (max 63)';
  }
  if (name.startsWith('task:')) {
    return TASK_KEY.test(name.slice(5)) ? undefined : 'a task scope is task:<task key>';
  }
  return `"${name}" is not a scope: use task, team:<name> or global`;
}

/** Why `pattern` is not a scope pattern, or undefined when it is one. */
export function scopePatternProblem(pattern: string): string | undefined {
  return pattern === TASK_SCOPE ? undefined : scopeNameProblem(pattern);
}

/** The scope a pattern names in task `taskKey`; throws on a malformed pattern. */
export function resolveScope(pattern: string, taskKey: string): string {
  if (pattern === TASK_SCOPE) return `task:${taskKey}`;
  const problem = scopeNameProblem(pattern);
  if (problem !== undefined) throw new RangeError(problem);
  return pattern;
}

/** Throws a RangeError naming the first malformed pattern of `what`. */
export function checkScopePatterns(what: string, patterns: readonly string[]): void {
  for (const [i, p] of patterns.entries()) {
    const problem = scopePatternProblem(p);
    if (problem !== undefined) throw new RangeError(`${what}[${i}]: ${problem}`);
  }
}

export interface StepScopeInput {
  taskKey: string;
  role: string;
  /** The scopes the task may use (TaskInput.scopes). */
  taskScopes: readonly string[];
  /** The task's grant for this role (TaskInput.roleScopes[role]), if any. */
  roleScopes?: ScopeDeclaration | undefined;
  /** What the agent declared (defineAgent({ scopes })), if anything. */
  agentScopes?: ScopeDeclaration | undefined;
}

/**
 * A step's grant: the agent's declared patterns ∩ the task's, resolved in the step's task.
 * The task allows a role `roleScopes.read` (default: the task's scopes plus `global`) and
 * `roleScopes.write` (default: the task's scopes). A malformed pattern is a ScopeDeniedError.
 */
export function stepScopes(input: StepScopeInput): ScopeGrant {
  const resolve = (access: 'read' | 'write', what: string, patterns: readonly string[]): Set<string> => {
    const out = new Set<string>();
    for (const [i, p] of patterns.entries()) {
      const problem = scopePatternProblem(p);
      if (problem !== undefined) {
        throw new ScopeDeniedError({
          reason: 'invalid-scope',
          access,
          role: input.role,
          scope: p,
          granted: [],
          message: `${what}[${i}]: ${problem}`,
        });
      }
      out.add(resolveScope(p, input.taskKey));
    }
    return out;
  };
  const agent = input.agentScopes ?? {};
  const task = input.roleScopes ?? {};
  const granted = (access: 'read' | 'write', taskDefault: readonly string[]): string[] => {
    const agentSide = resolve(
      access,
      `agent ${input.role} scopes.${access}`,
      agent[access] ?? DEFAULT_AGENT_SCOPES[access],
    );
    const taskPatterns = task[access];
    const taskSide = taskPatterns
      ? resolve(access, `task roleScopes.${input.role}.${access}`, taskPatterns)
      : resolve(access, 'task scopes', taskDefault);
    return [...agentSide].filter((s) => taskSide.has(s)).sort();
  };
  return {
    read: granted('read', [...input.taskScopes, GLOBAL_SCOPE]),
    write: granted('write', input.taskScopes),
  };
}

/**
 * A Postgres text[] literal of scope names, each element quoted: the value of the
 * cairn.read_scopes / cairn.write_scopes settings.
 */
export function scopeListLiteral(scopes: readonly string[]): string {
  return `{${scopes.map((s) => `"${s.replace(/["\\]/g, (c) => `\\${c}`)}"`).join(',')}}`;
}
