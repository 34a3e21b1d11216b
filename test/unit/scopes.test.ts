/** Scope names, patterns and the arithmetic of a step's grant (src/shared/scopes.ts). */
import { describe, expect, it } from 'vitest';
import { defineAgent } from '../../src/agent';
import { FAILURE_TYPES, ScopeDeniedError, isRetryableFailureType } from '../../src/shared/errors';
import {
  checkScopePatterns,
  resolveScope,
  scopeListLiteral,
  scopeNameProblem,
  scopePatternProblem,
  stepScopes,
} from '../../src/shared/scopes';
import { taskInputSchema, taskKeySchema } from '../../src/shared/task';

describe('scope names and patterns', () => {
  it.each(['global', 'team:research', 'team:a_b-9', 'task:t1', 'task:due-diligence/acme:2025.1'])(
    '%s is a scope name',
    (name) => {
      expect(scopeNameProblem(name)).toBeUndefined();
    },
  );

  it.each([
    ['task', /not a scope/],
    ['team', /not a scope/],
    ['team:', /team:<name>/],
    ['team:Research', /team:<name>/],
    ['task:', /task:<task key>/],
    ['task: spaced', /task:<task key>/],
    ['*', /not a scope/],
    ['Global', /not a scope/],
  ])('%s is not a scope name', (name, problem) => {
    expect(scopeNameProblem(name)).toMatch(problem);
  });

  it('the task part of a scope follows the task-key grammar', () => {
    for (const key of [
      't1',
      'due-diligence/acme',
      'a.b:c_d-e',
      'x'.repeat(200),
      'x'.repeat(201),
      '-lead',
      'sp ace',
      'ü',
    ])
      expect(scopeNameProblem(`task:${key}`) === undefined).toBe(taskKeySchema.safeParse(key).success);
  });

  it('`task` is a pattern for the current task, resolved per task', () => {
    expect(scopePatternProblem('task')).toBeUndefined();
    expect(resolveScope('task', 'k1')).toBe('task:k1');
    expect(resolveScope('team:research', 'k1')).toBe('team:research');
    expect(() => resolveScope('team', 'k1')).toThrow(/not a scope/);
    expect(() => checkScopePatterns('scopes', ['task', 'team:x', 'teams'])).toThrow(
      'scopes[2]: "teams" is not a scope',
    );
  });

  it('a settings literal quotes every name', () => {
    expect(scopeListLiteral([])).toBe('{}');
    expect(scopeListLiteral(['task:a/b', 'global'])).toBe('{"task:a/b","global"}');
    expect(scopeListLiteral(['we"ird\\'])).toBe('{"we\\"ird\\\\"}');
  });
});

describe('a step’s grant', () => {
  const base = { taskKey: 'k1', role: 'writer', taskScopes: ['task'] };

  it('with nothing declared: read the task and global, write the task', () => {
    expect(stepScopes(base)).toEqual({ read: ['global', 'task:k1'], write: ['task:k1'] });
  });

  it('is the agent’s declaration intersected with the task’s scopes', () => {
    const agentScopes = { read: ['task', 'team:research', 'global'], write: ['task', 'team:research'] };
    // The task does not allow the team: the agent cannot use it.
    expect(stepScopes({ ...base, agentScopes })).toEqual({ read: ['global', 'task:k1'], write: ['task:k1'] });
    // It does: both read and write it.
    expect(stepScopes({ ...base, taskScopes: ['task', 'team:research'], agentScopes })).toEqual({
      read: ['global', 'task:k1', 'team:research'],
      write: ['task:k1', 'team:research'],
    });
    // A task that allows more than the agent declares gives the agent only what it declared.
    expect(stepScopes({ ...base, taskScopes: ['task', 'team:research', 'team:finance'] })).toEqual({
      read: ['global', 'task:k1'],
      write: ['task:k1'],
    });
  });

  it('per-role grants of the task replace its scopes for that role, side by side', () => {
    const agentScopes = { read: ['task', 'team:research', 'global'], write: ['task', 'team:research'] };
    expect(
      stepScopes({
        ...base,
        taskScopes: ['task', 'team:research'],
        agentScopes,
        roleScopes: { write: ['task'] },
      }),
    ).toEqual({ read: ['global', 'task:k1', 'team:research'], write: ['task:k1'] });
    expect(stepScopes({ ...base, agentScopes, roleScopes: { read: ['team:research'] } })).toEqual({
      read: ['team:research'],
      write: ['task:k1'],
    });
    // An explicit `task:<key>` and `task` name the same scope.
    expect(stepScopes({ ...base, roleScopes: { read: ['task:k1'] } }).read).toEqual(['task:k1']);
  });

  it('a malformed pattern is a non-retryable ScopeDeniedError naming it', () => {
    const err = (() => {
      try {
        stepScopes({ ...base, roleScopes: { write: ['team'] } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ScopeDeniedError);
    expect(err).toMatchObject({
      reason: 'invalid-scope',
      access: 'write',
      scope: 'team',
      message: expect.stringMatching(/roleScopes\.writer\.write\[0\]/),
    });
    expect(isRetryableFailureType(FAILURE_TYPES.ScopeDenied)).toBe(false);
  });
});

describe('declarations', () => {
  it('defineAgent refuses a malformed scope pattern', () => {
    expect(() =>
      defineAgent({ role: 'a', scopes: { read: ['teams:x'] }, handle: async () => undefined }),
    ).toThrow(/agent a: scopes\.read\[0\]/);
    expect(
      defineAgent({ role: 'a', scopes: { write: ['team:x'] }, handle: async () => undefined }).scopes,
    ).toEqual({ write: ['team:x'] });
  });

  it('task input takes per-role grants and checks their patterns; without them the parsed input is unchanged', () => {
    const task = { taskKey: 'k', goal: 'g', steps: [{ id: 's', role: 'writer', title: 't' }] };
    expect('roleScopes' in taskInputSchema.parse(task)).toBe(false);
    expect(
      taskInputSchema.parse({ ...task, roleScopes: { writer: { read: ['task', 'global'] } } }).roleScopes,
    ).toEqual({
      writer: { read: ['task', 'global'] },
    });
    const bad = taskInputSchema.safeParse({ ...task, roleScopes: { writer: { write: ['everything'] } } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]).toMatchObject({
      path: ['roleScopes', 'writer', 'write', 0],
      message: expect.stringMatching(/not a scope/),
    });
  });
});
