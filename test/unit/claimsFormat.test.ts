/** `cairn claims` rendering and the pure helpers of the claims module. */
import { describe, expect, it } from 'vitest';
import { formatExpiry, renderClaims } from '../../src/cli/commands/claims';
import { isoMicros, parseClaimRecord, recordFields, refusalOf } from '../../src/store/claims/rows';
import type { ClaimRow } from '../../src/store/claims';
import { stepHolder } from '../../activities/claimContext';

const row = (over: Partial<ClaimRow>): ClaimRow => ({
  resource: 'doc/1',
  holder: 'wf/step-a#1',
  token: 3,
  status: 'held',
  acquiredAt: '2025-01-31T12:00:00.000000Z',
  expiresAt: '2025-01-31T12:00:30.000000Z',
  releasedAt: null,
  checkedAt: '2025-01-31T12:00:17.700000Z',
  expiresInMs: 12_300,
  ...over,
});

describe('cairn claims', () => {
  it('says when a claim expires, from the database clock', () => {
    expect(formatExpiry({ status: 'held', expiresInMs: 12_300 })).toBe('12.3 s');
    expect(formatExpiry({ status: 'held', expiresInMs: 125_000 })).toBe('2 min 5 s');
    expect(formatExpiry({ status: 'expired', expiresInMs: -4_000 })).toBe('expired 4.0 s ago');
    expect(formatExpiry({ status: 'released', expiresInMs: -1 })).toBe('released');
  });

  it('renders a table, or says why it is empty', () => {
    const text = renderClaims([row({}), row({ resource: 'doc/2', status: 'expired', expiresInMs: -1500 })], {
      all: true,
    });
    expect(text.split('\n')).toEqual([
      'resource  holder       token  status   expires in',
      '--------  -----------  -----  -------  -----------------',
      'doc/1     wf/step-a#1  3      held     12.3 s',
      'doc/2     wf/step-a#1  3      expired  expired 1.5 s ago',
    ]);
    expect(renderClaims([], { all: false })).toMatch(/--all/);
  });
});

describe('claims helpers', () => {
  it('names a step attempt as a holder', () => {
    expect(stepHolder({ workflowId: 'cairn-task-x', activityId: 'step-a', attempt: 2 })).toBe(
      'cairn-task-x/step-a#2',
    );
  });

  it('reads database timestamps to the microsecond', () => {
    expect(isoMicros('2025-01-31T12:00:00.000001Z') - isoMicros('2025-01-31T12:00:00Z')).toBe(1);
    expect(isoMicros('2025-01-31T12:00:01.5Z') - isoMicros('2025-01-31T12:00:00.999999Z')).toBe(500_001);
  });

  it('explains a refused renewal or release', () => {
    const current = {
      resource: 'r',
      holder: 'B',
      token: 2,
      acquiredAt: 'x',
      expiresAt: 'y',
      releasedAt: null,
      checkedAt: 'z',
    };
    expect(refusalOf(current, 'A', 1)).toBe('superseded');
    expect(refusalOf(current, 'A', 3)).toBe('never-granted');
    expect(refusalOf(current, 'A', 2)).toBe('not-holder');
    expect(refusalOf({ ...current, releasedAt: 'w' }, 'B', 2)).toBe('released');
    expect(refusalOf(current, 'B', 2)).toBe('expired');
    expect(refusalOf(null, 'B', 2)).toBe('never-granted');
  });
});

describe('claim result records (round 4: one value per claim statement)', () => {
  it('splits record_out text: empty is null, quotes and backslashes inside quotes stand for themselves', () => {
    expect(recordFields('(a,,"b c","x""y\\\\z","",)')).toEqual(['a', null, 'b c', 'x"y\\z', '', null]);
    expect(recordFields('(,)')).toEqual([null, null]);
    expect(recordFields('("(,)")')).toEqual(['(,)']);
  });

  it('decodes a grant, timestamps as ISO UTC with microseconds and the token as a number', () => {
    expect(
      parseClaimRecord(
        '(granted,doc/1,"wf/a#1",7,"2026-12-07 17:05:09.1234+00","2026-12-07 17:05:39.1234+00",,"2026-12-07 17:05:09.1234+00",)',
      ),
    ).toEqual({
      outcome: 'granted',
      resource: 'doc/1',
      holder: 'wf/a#1',
      token: 7,
      acquired_at: '2026-12-07T17:05:09.123400Z',
      expires_at: '2026-12-07T17:05:39.123400Z',
      released_at: null,
      checked_at: '2026-12-07T17:05:09.123400Z',
      previous_holder: null,
    });
  });

  it('refuses what is not a claim result', () => {
    expect(() => parseClaimRecord(undefined)).toThrow(/no row/);
    expect(() => recordFields('granted,x')).toThrow(/not a record/);
    expect(() => recordFields('("abc)')).toThrow(/unterminated/);
    expect(() => recordFields('("a"b)')).toThrow(/malformed/);
    expect(() => parseClaimRecord('(granted,a,b)')).toThrow(/3 fields/);
    expect(() => parseClaimRecord('(won,,,,,,,"2026-12-07 17:05:09+00",)')).toThrow(/unknown outcome/);
    expect(() => parseClaimRecord('(none,,,,,,,,)')).toThrow(/checked_at/);
    expect(() => parseClaimRecord('(none,,,-1,,,,"2026-12-07 17:05:09+00",)')).toThrow(/token/);
  });
});
