/** The agreement rule (pure): table cases and properties over random vote sequences. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  agreementInputSchema,
  evaluateAgreement,
  voteSchema,
  type AgreementRule,
} from '../../src/shared/agreement';

const voters = ['a', 'b', 'c'];
const v = (voter: string, approve: boolean) => ({ voter, approve });

describe('evaluateAgreement', () => {
  it('all-of: every voter approves; the first rejection rejects', () => {
    expect(evaluateAgreement('all-of', voters, [])).toBe('open');
    expect(evaluateAgreement('all-of', voters, [v('a', true), v('b', true)])).toBe('open');
    expect(evaluateAgreement('all-of', voters, [v('a', true), v('b', true), v('c', true)])).toBe('approved');
    expect(evaluateAgreement('all-of', voters, [v('a', false)])).toBe('rejected');
  });

  it('quorum: n approvals approve; rejected once n is out of reach', () => {
    const q2: AgreementRule = { quorum: 2 };
    expect(evaluateAgreement(q2, voters, [v('a', true)])).toBe('open');
    expect(evaluateAgreement(q2, voters, [v('a', true), v('c', true)])).toBe('approved');
    expect(evaluateAgreement(q2, voters, [v('a', false)])).toBe('open');
    expect(evaluateAgreement(q2, voters, [v('a', false), v('b', false)])).toBe('rejected');
  });

  it('ignores votes of non-voters', () => {
    expect(evaluateAgreement('all-of', ['a'], [v('z', false), v('a', true)])).toBe('approved');
  });

  const rules = fc.oneof(
    fc.constant<AgreementRule>('all-of'),
    fc.integer({ min: 1, max: 5 }).map((q): AgreementRule => ({ quorum: q })),
  );
  const ballots = fc.uniqueArray(
    fc.record({ voter: fc.constantFrom('a', 'b', 'c', 'd', 'e'), approve: fc.boolean() }),
    { selector: (b) => b.voter },
  );

  it('is decided once every voter has voted, whatever the order', () => {
    fc.assert(
      fc.property(
        rules,
        fc.shuffledSubarray(['a', 'b', 'c', 'd', 'e'], { minLength: 5 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        (rule, order, approvals) => {
          const all = order.map((voter, i) => v(voter, approvals[i]!));
          const status = evaluateAgreement(rule, order, all);
          expect(status).not.toBe('open');
          expect(evaluateAgreement(rule, order, [...all].reverse())).toBe(status);
        },
      ),
    );
  });

  it('never changes its mind: a decided prefix stays decided the same way', () => {
    fc.assert(
      fc.property(rules, ballots, (rule, list) => {
        const vs = ['a', 'b', 'c', 'd', 'e'];
        let decided: string | undefined;
        for (let i = 0; i <= list.length; i++) {
          const s = evaluateAgreement(rule, vs, list.slice(0, i));
          if (decided !== undefined) expect(s).toBe(decided);
          else if (s !== 'open') decided = s;
        }
      }),
    );
  });
});

describe('agreementInputSchema', () => {
  const base = {
    agreementId: 'publish',
    taskKey: 't1',
    proposal: { x: 1 },
    voters: ['a', 'b'],
    deadlineMs: 1000,
  };
  it('defaults the rule to all-of and refuses a quorum larger than the voters', () => {
    expect(agreementInputSchema.parse(base).rule).toBe('all-of');
    expect(agreementInputSchema.safeParse({ ...base, rule: { quorum: 3 } }).success).toBe(false);
    expect(agreementInputSchema.safeParse({ ...base, voters: ['a', 'a'] }).success).toBe(false);
    expect(agreementInputSchema.safeParse({ ...base, agreementId: 'has/slash' }).success).toBe(false);
  });
});

describe('voteSchema.voteObservationId', () => {
  const field = voteSchema.shape.voteObservationId;

  it("checks with a copy of zod's GUID pattern, not zod's constant (frozen when zod is preloaded)", () => {
    const own = (field._zod.def as { pattern?: RegExp }).pattern;
    expect(own).toBeInstanceOf(RegExp);
    expect(own).not.toBe(z.regexes.guid);
    expect(own!.source).toBe(z.regexes.guid.source);
    expect(own!.flags).toBe(z.regexes.guid.flags);
  });

  it('accepts and refuses exactly what z.guid() does, with the same message', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uuid(),
          fc.string(),
          fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF-'), minLength: 32, maxLength: 38 }),
        ),
        (s) => {
          const ours = field.safeParse(s);
          const zods = z.guid().safeParse(s);
          expect(ours.success).toBe(zods.success);
          if (!ours.success && !zods.success) expect(ours.error.issues).toEqual(zods.error.issues);
        },
      ),
    );
    expect(field.safeParse('not-a-guid').error?.issues[0]?.message).toBe('Invalid GUID');
  });
});
