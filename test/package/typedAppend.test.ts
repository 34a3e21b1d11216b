/**
 * A misspelt field is a compile error in a user's project, checked with tsc's diagnostics: the
 * typed append (`ctx.append(type, entityId, fields)`) of the installed package.
 */
import { expect, it } from 'vitest';
import { addFixture, tsc } from './userProject';

it('rejects a misspelt field at compile time, naming it, and accepts the right spelling', async () => {
  addFixture('fixture'); // its src/types.ts declares company.profile
  addFixture('fixture-typed', 'typed');
  const result = await tsc(['-p', 'typed/tsconfig.json']);
  const errors = result.output.split('\n').filter((line) => /error TS\d+/.test(line));
  expect(result.code).not.toBe(0);
  expect(errors.length).toBeGreaterThan(0);
  // Every error is the misspelling, in the file that has it; the control file is clean.
  for (const line of errors) {
    expect(line).toMatch(/^typed\/misspelt\.ts\(/);
  }
  expect(errors.join('\n')).toContain('headquaters');
});
