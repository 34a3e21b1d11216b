/**
 * `cairn verify --anchor` / `--check-anchor`: heads recorded outside the database catch what the
 * hash chains cannot (a whole tail rewritten with its head recomputed), and the exit codes tell
 * intact (0), tampered (1) and could-not-check (2) apart.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { CliContext } from '../../src/cli/command';
import { entityCommand } from '../../src/cli/commands/entity';
import { verifyCommand } from '../../src/cli/commands/verify';
import { loadConfig } from '../../src/config';
import type { EntityRef } from '../../src/shared/observation';
import { ObservationTypeRegistry, defineObservationType } from '../../src/shared/observationTypes';
import { appendObservations } from '../../src/store/observations/append';
import { chainHash, provenanceHash } from '../../src/store/observations/hash';
import { getEntityHistory } from '../../src/store/observations/read';
import { registerObservationTypes } from '../../src/store/observations/registerTypes';
import { recomputeContentHash, verifyLog } from '../../src/store/observations/verify';
import { testDatabase, type TestDatabase } from '../helpers/database';

const profile = defineObservationType({
  name: 'company.profile',
  version: 1,
  entity: 'company',
  fields: { hq: z.string() },
});
const registry = new ObservationTypeRegistry([profile]);

let db: TestDatabase;
const dir = mkdtempSync(path.join(tmpdir(), 'cairn-anchor-'));
beforeAll(async () => {
  db = await testDatabase();
  await registerObservationTypes(db.pool, registry);
});
afterAll(async () => {
  await db?.drop();
});

async function seed(id: string, n: number): Promise<EntityRef> {
  const ref = { entityType: 'company', entityId: `${id}-${randomUUID().slice(0, 8)}` };
  await appendObservations(
    db.pool,
    registry,
    Array.from({ length: n }, (_, i) => ({ ...ref, type: 'company.profile', fields: { hq: `city ${i}` } })),
    {
      provenance: {
        taskKey: 't',
        workflowId: 'wf',
        runId: 'r',
        activityId: id,
        attempt: 1,
        agentId: 'a',
        role: 'x',
      },
      idempotencyPrefix: `anchor:${randomUUID()}`,
      observedAt: new Date().toISOString(),
    },
  );
  return ref;
}

function cli() {
  const out: string[] = [];
  const ctx: CliContext = {
    config: () => loadConfig({ DATABASE_URL: db.url }),
    io: { out: (l) => out.push(l), err: (l) => out.push(l) },
    root: process.cwd(),
  };
  return { ctx, out, text: () => out.join('\n') };
}

/** Rewrites versions `from`.. of an entity with new content, every hash and the head recomputed. */
async function rewriteTail(ref: EntityRef, from: number): Promise<void> {
  const history = await getEntityHistory(db.pool, ref);
  const client = await db.adminPool.connect();
  try {
    await client.query('begin');
    await client.query('alter table cairn.observations disable trigger user');
    let prev = history[from - 2]?.chainHash ?? '';
    for (const row of history.slice(from - 1)) {
      const fields = { hq: `forged ${row.entityVersion}` };
      const content = recomputeContentHash({ ...row, fields });
      const chain = chainHash(
        prev,
        content,
        provenanceHash({ ...row.provenance, idempotencyKey: row.idempotencyKey }),
      );
      await client.query(
        'update cairn.observations set fields = $2, content_hash = $3, prev_hash = $4, chain_hash = $5 where id = $1',
        [row.id, JSON.stringify(fields), content, prev, chain],
      );
      prev = chain;
    }
    const last = history[history.length - 1]!;
    await client.query(
      `update cairn.entity_heads set chain_hash = $3,
              prev_hash = (select prev_hash from cairn.observations where id = $4)
        where entity_type = $1 and entity_id = $2`,
      [ref.entityType, ref.entityId, prev, last.id],
    );
    await client.query('alter table cairn.observations enable trigger user');
    await client.query('commit');
  } catch (err) {
    await client.query('rollback');
    throw err;
  } finally {
    client.release();
  }
}

describe('cairn verify anchors and exit codes', () => {
  it('an anchor catches a tail rewritten with its head recomputed, which the chains alone cannot', async () => {
    const victim = await seed('victim', 4);
    await seed('bystander', 2);
    const file = path.join(dir, 'heads.json');
    const take = cli();
    expect(await verifyCommand.run(['--anchor', file], take.ctx)).toBe(0);
    expect(take.text()).toMatch(/anchor of 2 entities written/);

    const clean = cli();
    expect(await verifyCommand.run(['--check-anchor', file], clean.ctx)).toBe(0);

    await rewriteTail(victim, 2);
    expect((await verifyLog(db.pool)).problems).toEqual([]);
    const check = cli();
    expect(await verifyCommand.run(['--check-anchor', file], check.ctx)).toBe(1);
    expect(check.text()).toMatch(
      new RegExp(`company/${victim.entityId}@4 .*versions 1\\.\\.4 were rewritten after the anchor`),
    );
  });

  it('exit 2 when nothing could be checked: a missing entity, an unreadable anchor', async () => {
    const missing = cli();
    expect(await verifyCommand.run(['--entity', 'company/nobody'], missing.ctx)).toBe(2);
    expect(missing.text()).toMatch(/could not check: no entity company\/nobody/);

    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, '{"format":1}');
    const unreadable = cli();
    expect(await verifyCommand.run(['--check-anchor', bad], unreadable.ctx)).toBe(2);
    expect(unreadable.text()).toMatch(/anchor file: not a cairn anchor/);
    const absent = cli();
    expect(await verifyCommand.run(['--check-anchor', path.join(dir, 'absent.json')], absent.ctx)).toBe(2);
  });

  it('cairn entity and verify survive JSON nested 10,000 deep stored before the limit existed', async () => {
    const ref = { entityType: 'company', entityId: `deep-${randomUUID().slice(0, 8)}` };
    const deep = `{"hq":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    // As the owner with triggers off: what an old database, or a bypass, may hold.
    const client = await db.adminPool.connect();
    try {
      await client.query('begin');
      await client.query('set local session_replication_role = replica');
      await client.query(
        `select cairn.append_observation($1, $2, 'company.profile', 1, 'assertion', $3::jsonb, 'global', '{}', null, null,
           null, $4, repeat('ab', 32), now(), 't', 'wf', 'r', 'a', 1, 'agent', 'x')`,
        [ref.entityType, ref.entityId, deep, randomUUID()],
      );
      await client.query('commit');
    } finally {
      client.release();
    }
    // A clear error (main prints it and exits 1), not "Maximum call stack size exceeded".
    await expect(entityCommand.run([`company/${ref.entityId}`], cli().ctx)).rejects.toThrow(
      /canonicalJson: value nested too deeply/,
    );
    const check = cli();
    expect(await verifyCommand.run(['--entity', `company/${ref.entityId}`], check.ctx)).toBe(1);
    // The row is named (it could only have got in around the append path), not a crash.
    expect(check.text()).toMatch(new RegExp(`company/${ref.entityId}@1 .*(does not parse|cannot hash)`));
  });
});
