import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POOL_MAX, poolSizeFor } from '../../src/store/pool';

describe('poolSizeFor', () => {
  it('is the configured size when there is one, whatever the concurrency', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
        (configured, activityConcurrency) => {
          expect(poolSizeFor({ configured, activityConcurrency })).toBe(configured);
        },
      ),
    );
  });

  it('otherwise follows the activity concurrency (plus 2), between 2 and 50', () => {
    expect(poolSizeFor({})).toBe(DEFAULT_POOL_MAX);
    expect(poolSizeFor({ activityConcurrency: 1 })).toBe(3);
    expect(poolSizeFor({ activityConcurrency: 20 })).toBe(22);
    expect(poolSizeFor({ activityConcurrency: 100 })).toBe(50);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 10_000 }), (a, b) => {
        const [x, y] = [poolSizeFor({ activityConcurrency: a }), poolSizeFor({ activityConcurrency: b })];
        expect(x).toBeGreaterThanOrEqual(2);
        expect(x).toBeLessThanOrEqual(50);
        if (a <= b) expect(x).toBeLessThanOrEqual(y);
      }),
    );
  });
});
