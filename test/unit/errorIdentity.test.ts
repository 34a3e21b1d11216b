/**
 * Error identity across two copies of the package: an agent module resolved against its own
 * copy of Cairn throws errors whose classes are not this copy's. `instanceof` on Cairn's error
 * classes (and the registry) must still recognise them, so the activity boundary keeps their
 * failure type and retry decision (a validation failure stays non-retryable).
 */
import { describe, expect, it, vi } from 'vitest';

/** Two independently loaded module graphs: same source, distinct class objects. */
async function twoCopies() {
  vi.resetModules();
  const mine = await import('../../src/shared/errors');
  const failures = await import('../../activities/failures');
  const types = await import('../../src/shared/observationTypes');
  vi.resetModules();
  const theirs = await import('../../src/shared/errors');
  const theirTypes = await import('../../src/shared/observationTypes');
  return { mine, failures, types, theirs, theirTypes };
}

describe('error identity across copies of the package', () => {
  it('the copies really are distinct', async () => {
    const { mine, theirs } = await twoCopies();
    expect(theirs.AgentValidationError).not.toBe(mine.AgentValidationError);
    expect(Object.getPrototypeOf(new theirs.AgentValidationError('r', 'input', 'x', 'bad'))).not.toBe(
      mine.AgentValidationError.prototype,
    );
  });

  it('instanceof recognises the other copy’s errors by class, and only by the right class', async () => {
    const { mine, theirs } = await twoCopies();
    const err = new theirs.AgentValidationError('analyst', 'input', 'company', 'expected string');
    expect(err instanceof mine.AgentValidationError).toBe(true);
    expect(err instanceof mine.CairnError).toBe(true);
    expect(err instanceof mine.ObservationValidationError).toBe(false);
    expect(err instanceof mine.ScopeDeniedError).toBe(false);
    const stale = new theirs.StaleVersionError('company/acme', 1, 2);
    expect(stale instanceof mine.StaleVersionError).toBe(true);
    expect(stale instanceof mine.AgentValidationError).toBe(false);
    // Not Cairn's at all.
    expect(new Error('x') instanceof mine.CairnError).toBe(false);
    expect({ name: 'AgentValidationError' } instanceof mine.AgentValidationError).toBe(false);
    expect((null as unknown) instanceof mine.CairnError).toBe(false);
  });

  it('a user subclass does not claim every instance of its parent', async () => {
    const { mine, theirs } = await twoCopies();
    class MyScopeError extends mine.ScopeDeniedError {}
    const parent = new theirs.ScopeDeniedError({
      reason: 'not-granted',
      access: 'read',
      role: 'r',
      scope: 'global',
      granted: [],
      message: 'no',
    });
    expect(parent instanceof mine.ScopeDeniedError).toBe(true);
    expect(parent instanceof MyScopeError).toBe(false);
    const child = new MyScopeError({
      reason: 'not-granted',
      access: 'read',
      role: 'r',
      scope: 'global',
      granted: [],
      message: 'no',
    });
    expect(child instanceof MyScopeError).toBe(true);
    expect(child instanceof theirs.ScopeDeniedError).toBe(true);
  });

  it('the activity boundary keeps the failure type and the non-retryable decision', async () => {
    const { failures, theirs } = await twoCopies();
    const failure = failures.toApplicationFailure(
      new theirs.AgentValidationError('analyst', 'input', 'company', 'expected string'),
    );
    expect(failure.type).toBe('CairnValidationFailed');
    expect(failure.nonRetryable).toBe(true);
    expect(failure.message).toMatch(/^step input\.company: expected string/);
    // An agent's own error stays retryable.
    expect(failures.toApplicationFailure(new Error('flaky')).nonRetryable).toBe(false);
  });

  it('a registry from another copy is a registry (agent modules loaded by the CLI)', async () => {
    const { types, theirTypes } = await twoCopies();
    expect(new theirTypes.ObservationTypeRegistry() instanceof types.ObservationTypeRegistry).toBe(true);
    expect({} instanceof types.ObservationTypeRegistry).toBe(false);
  });
});
