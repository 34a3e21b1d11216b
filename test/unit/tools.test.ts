/**
 * The tool set's pure parts: every input is strict (identity cannot be smuggled in), the
 * session read set keeps the latest version read per entity, model sources round-trip, and
 * refusals name what to do next.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { modelSource, parseModelSource } from '../../src/shared/modelSource';
import { FencingTokenStaleError, ObservationValidationError, StaleReadError } from '../../src/shared/errors';
import { CAIRN_TOOLS } from '../../src/tools/definitions';
import { toolRefusal } from '../../src/tools/refusals';
import { SessionReads } from '../../src/tools/sessionReads';

describe('tool definitions', () => {
  it('are uniquely named and refuse identity fields in their input', () => {
    const names = CAIRN_TOOLS.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    for (const t of CAIRN_TOOLS) {
      // Strict: unknown keys are refused (catchall never), and no identity key is declared.
      expect(t.input._zod.def.catchall?._zod.def.type, `${t.name} is not strict`).toBe('never');
      for (const key of ['agentId', 'role', 'agent', 'grant'])
        expect(Object.keys(t.input.shape)).not.toContain(key);
      // start_task names the new task's scopes (checked against the caller's write scopes); no other tool takes scopes.
      if (t.name !== 'start_task') expect(Object.keys(t.input.shape)).not.toContain('scopes');
    }
    const r = CAIRN_TOOLS.find((t) => t.name === 'read_entity')!.input.safeParse({
      entityType: 'a',
      entityId: 'b',
      agentId: 'x',
    });
    expect(r.success).toBe(false);
    if (!r.success) expect(r.error.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['agentId'] });
  });
});

describe('SessionReads', () => {
  it('keeps, per entity, the last version read and the fields read at it', () => {
    const read = fc.record({
      e: fc.constantFrom('a', 'b', 'c'),
      v: fc.integer({ min: 0, max: 4 }),
      f: fc.option(fc.subarray(['x', 'y', 'z']), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(read, { maxLength: 30 }), (reads) => {
        const s = new SessionReads();
        for (const r of reads) s.record('t', r.e, r.v, r.f);
        for (const entry of s.entries()) {
          const mine = reads.filter((r) => r.e === entry.entityId);
          const last = mine[mine.length - 1]!;
          expect(entry.version).toBe(last.v);
          // The reads of the last version since it was last switched to.
          let start = mine.length - 1;
          while (start > 0 && mine[start - 1]!.v === last.v) start--;
          const run = mine.slice(start);
          if (run.some((r) => r.f === undefined)) expect(entry.fields).toBeNull();
          else expect(entry.fields).toEqual([...new Set(run.flatMap((r) => r.f!))].sort());
        }
        expect(s.entries().length).toBe(new Set(reads.map((r) => r.e)).size);
      }),
    );
  });
});

describe('model sources', () => {
  it('round-trip through source.detail and ignore other sources', () => {
    const call = {
      provider: 'openai',
      modelId: 'gpt-x',
      promptHash: 'a'.repeat(64),
      toolCallId: 'c1',
      usage: { inputTokens: 3, outputTokens: 4, totalTokens: 7 },
    };
    expect(parseModelSource(modelSource(call))).toEqual(call);
    expect(parseModelSource({ kind: 'tool-call', ref: 'mcp:x' })).toBeUndefined();
    expect(parseModelSource({ kind: 'url', ref: 'https://example.com' })).toBeUndefined();
  });
});

describe('refusals', () => {
  it('say what to do next and name what went wrong', () => {
    const stale = toolRefusal(
      new StaleReadError(
        [
          {
            entityType: 'vendor',
            entityId: 'a',
            versionRead: 1,
            currentVersion: 3,
            fields: null,
            observationIds: [],
          },
        ],
        'rs',
      ),
    );
    expect(stale.error).toContain('read at version 1 but is now at version 3');
    expect(stale.next).toContain('re-read vendor/a');
    expect(
      toolRefusal(new ObservationValidationError(2, 'fields.employees', 'expected number')).next,
    ).toContain('items[2].fields.employees');
    const fence = toolRefusal(
      new FencingTokenStaleError('r', 1, 'superseded', {
        token: 2,
        holder: 'mcp/bob',
        expiresAt: '2030-01-01T00:00:00.000000Z',
        checkedAt: null,
      }),
    );
    expect(fence.error).toContain('held by mcp/bob (token 2) until 2030-01-01');
    // A claim of a scope the caller may not read: no holder, and not "nobody holds it".
    const hidden = new FencingTokenStaleError('r', 1, 'superseded', {
      token: null,
      holder: null,
      expiresAt: null,
      checkedAt: null,
      hidden: true,
    });
    expect(toolRefusal(hidden).error).toBe(
      'your claim on r is lost (superseded); its current grant belongs to a scope you may not read',
    );
    expect(hidden.message).toBe(
      'fencing token 1 of r is stale (superseded); its current grant belongs to a scope you may not read',
    );
  });
});
