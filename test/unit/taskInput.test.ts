/** Task input checks: strict keys with near-match hints, plan problems, parse-once stability. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseTaskInput, planProblems, taskInputSchema } from '../../src/shared/task';
import { readPlan } from '../../src/cli/commands/task';
import { TaskInputError } from '../../src/client';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const base = { taskKey: 'k', goal: 'g', steps: [{ id: 'a', role: 'echo', title: 'a' }] };

describe('parseTaskInput', () => {
  it('names misspelt keys, one line each, with the key meant', () => {
    const r = parseTaskInput({
      ...base,
      rolePolicy: {},
      onStepFailur: 'skip',
      steps: [{ id: 'a', role: 'echo', title: 'a', dependson: [] }],
      rolePolicies: { echo: { maxAtempts: 2 } },
    });
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems).toEqual(
      expect.arrayContaining([
        'rolePolicy: unknown key (did you mean "rolePolicies"?)',
        'onStepFailur: unknown key (did you mean "onStepFailure"?)',
        'steps.0.dependson: unknown key (did you mean "dependsOn"?)',
        'rolePolicies.echo.maxAtempts: unknown key (did you mean "maxAttempts"?)',
      ]),
    );
  });

  it('fills every policy so the parsed form does not depend on later defaults, and re-parses to itself', () => {
    const r = parseTaskInput({ ...base, rolePolicies: { echo: { maxAttempts: 7 } } });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.task.rolePolicies.echo).toEqual({
      maxAttempts: 7,
      initialRetryMs: 1000,
      timeoutMs: 300_000,
      heartbeatMs: 10_000,
      scheduleToStartMs: 300_000,
    });
    expect(r.task.defaultRolePolicy.scheduleToStartMs).toBe(300_000);
    expect(taskInputSchema.parse(r.task)).toEqual(r.task);
  });
});

describe('planProblems', () => {
  it('finds unknown dependencies, duplicates and cycles', () => {
    expect(
      planProblems([
        { id: 'a', dependsOn: ['b'] },
        { id: 'b', dependsOn: ['a'] },
        { id: 'c', dependsOn: ['x'] },
        { id: 'c', dependsOn: [] },
      ]),
    ).toEqual([
      'duplicate step id "c"',
      'step "c" depends on unknown step "x"',
      'steps form a cycle: a -> b -> a',
    ]);
  });

  it('a plan whose steps depend only on earlier steps has no problems (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.nat(), { maxLength: 4 }), { minLength: 1, maxLength: 30 }), (deps) => {
        const steps = deps.map((d, i) => ({
          id: `s${i}`,
          dependsOn: i === 0 ? [] : [...new Set(d.map((n) => `s${n % i}`))],
        }));
        expect(planProblems(steps)).toEqual([]);
      }),
    );
  });

  it('closing any chain into a loop is reported as a cycle (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), (n) => {
        const steps = Array.from({ length: n }, (_, i) => ({ id: `s${i}`, dependsOn: [`s${(i + 1) % n}`] }));
        expect(planProblems(steps).filter((p) => p.startsWith('steps form a cycle'))).toHaveLength(1);
      }),
    );
  });
});

describe('cairn task start reads the plan before connecting', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cairn-plan-'));

  it('names the file on JSON errors', () => {
    const file = path.join(dir, 'broken.json');
    writeFileSync(file, '{ "taskKey": ');
    expect(() => readPlan(['--file', file])).toThrow(
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON`),
    );
  });

  it('lists each problem on its own line, naming the file', () => {
    const file = path.join(dir, 'plan.json');
    writeFileSync(
      file,
      JSON.stringify({
        ...base,
        onStepFailur: 'skip',
        steps: [{ id: 'a', role: 'echo', title: 'a', dependsOn: ['nope'] }],
      }),
    );
    let err: unknown;
    try {
      readPlan(['--file', file]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TaskInputError);
    expect((err as Error).message).toBe(
      `invalid task in ${file}:\n  onStepFailur: unknown key (did you mean "onStepFailure"?)\n  steps: step "a" depends on unknown step "nope"`,
    );
  });
});
