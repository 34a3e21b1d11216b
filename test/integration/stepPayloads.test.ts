/**
 * cairn.step_payloads (migration 013, claim-check) on the real server: small values stay inline,
 * large ones come back as references that resolve to the same JSON (a property over arbitrary
 * values), only for their own task; a rolled-back step leaves no payload; nobody changes or
 * deletes one; the application reads rows only within its scopes.
 */
import fc from 'fast-check';
import type { Pool } from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Json } from '../../src/shared/observation';
import { isPayloadRef, type PayloadRef } from '../../src/shared/payloadRefs';
import { createPool, withTransaction } from '../../src/store/pool';
import { withScope } from '../../src/store/scope';
import { PayloadRefError, resolvePayloads, storeIfLarge } from '../../src/store/stepPayloads';
import { createTestDatabase, type TestDatabase } from '../helpers/database';

let db: TestDatabase;
let app: Pool;
beforeAll(async () => {
  db = await createTestDatabase();
  app = createPool(db.url, { max: 2 });
});
afterAll(async () => {
  await app?.end();
  await db?.drop();
});

let n = 0;
const owner = (taskKey = 'task-p') => ({ taskKey, workflowId: `wf-${taskKey}`, activityId: `step-${n++}` });
const store = (value: Json, max: number, taskKey?: string) =>
  withTransaction(app, (c) => storeIfLarge(c, owner(taskKey), 'output', value, max));
const count = async () =>
  (await db.pool.query<{ n: number }>('select count(*)::int as n from cairn.step_payloads')).rows[0]!.n;

describe('step payloads', () => {
  it('keeps a value at or under the threshold inline and writes nothing', async () => {
    const before = await count();
    expect(await store({ text: 'small' }, 1024)).toEqual({ text: 'small' });
    expect(await count()).toBe(before);
  });

  it('stores a larger value once and resolves its reference to the same JSON, for its own task only', async () => {
    const value = { blob: 'x'.repeat(5000), nested: [1, null, { deep: true }] };
    const ref = await store(value, 1024);
    expect(isPayloadRef(ref)).toBe(true);
    expect(ref).toMatchObject({ bytes: JSON.stringify(value).length });
    expect(await resolvePayloads(app, 'task-p', [ref, 'inline'])).toEqual([value, 'inline']);
    await expect(resolvePayloads(app, 'another-task', [ref])).rejects.toThrow(PayloadRefError);
    await expect(resolvePayloads(app, 'another-task', [ref])).rejects.toThrow('not stored for this task');
  });

  it('stores a small value that looks like a reference, so every reference in a history is genuine', async () => {
    const impostor = { $cairnRef: 'step-payload', id: 'not-a-row' };
    const ref = await store(impostor, 1024);
    expect(ref).not.toEqual(impostor);
    expect(await resolvePayloads(app, 'task-p', [ref])).toEqual([impostor]);
  });

  it('refuses a reference whose content does not match its hash', async () => {
    const ref = (await store({ blob: 'y'.repeat(3000) }, 1024)) as unknown as PayloadRef;
    const forged = { ...ref, sha256: '0'.repeat(64) };
    await expect(resolvePayloads(app, 'task-p', [forged])).rejects.toThrow('does not match its sha256');
  });

  it('a step whose transaction rolls back leaves no payload behind', async () => {
    const before = await count();
    await expect(
      withTransaction(app, async (c) => {
        await storeIfLarge(c, owner(), 'output', 'z'.repeat(4000), 1024);
        throw new Error('commit failed');
      }),
    ).rejects.toThrow('commit failed');
    expect(await count()).toBe(before);
  });

  it('nobody updates, deletes or truncates a payload, not even the owner', async () => {
    await store('w'.repeat(4000), 1024);
    await expect(db.pool.query(`update cairn.step_payloads set bytes = 0`)).rejects.toThrow();
    await expect(db.pool.query(`delete from cairn.step_payloads`)).rejects.toThrow();
    await expect(db.pool.query(`truncate cairn.step_payloads`)).rejects.toThrow();
  });

  it('the application reads rows of its granted scopes only', async () => {
    await store('v'.repeat(4000), 1024, 'scoped-task');
    const rows = (read: string[]) =>
      withScope(app, { read, write: [] }, async (c) =>
        (await c.query<{ task_key: string }>('select task_key from cairn.step_payloads')).rows.map(
          (r) => r.task_key,
        ),
      );
    expect(await rows(['task:scoped-task'])).toEqual(['scoped-task']);
    expect(await rows(['task:nothing-here'])).toEqual([]);
  });

  it('any JSON value round-trips through a reference', async () => {
    // jsonb cannot hold U+0000 (neither can step completions), so strings here avoid it.
    const json = fc.letrec<{ v: Json }>((tie) => ({
      v: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.string().map((s) => s.replaceAll(String.fromCharCode(0), '')),
        fc.array(tie('v'), { maxLength: 4 }),
        fc.dictionary(
          fc.string().map((s) => s.replaceAll(String.fromCharCode(0), '')),
          tie('v'),
          { maxKeys: 4 },
        ),
      ),
    })).v;
    await fc.assert(
      fc.asyncProperty(json, async (value) => {
        const ref = await store(value, 0);
        const [back] = await resolvePayloads(app, 'task-p', [ref]);
        expect(back).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 40 },
    );
  });
});
