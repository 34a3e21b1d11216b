/**
 * Anchors: tamper evidence beyond the database. The hash chains prove that each entity's rows
 * agree with its head row, but whoever can rewrite rows can rewrite a whole tail *and* the head
 * (and a type definition with its hash). An anchor, written to a file kept elsewhere, records
 * every entity's last version and chain hash and every type's definition hash; checking it
 * later proves that no anchored version was rewritten: the row at the anchored version must
 * still have the anchored chain hash, which covers every version before it.
 *
 * The anchor takes the log's own rows (the last version of each entity), not cairn.entity_heads,
 * so an edited head row is not copied into it; take it after a clean `verifyLog`.
 */
import { z } from 'zod';
import type { Queryable } from '../pool';

export const ANCHOR_FORMAT = 1;

const anchorSchema = z.object({
  format: z.literal(ANCHOR_FORMAT),
  createdAt: z.string(),
  entities: z.array(
    z.object({
      entityType: z.string(),
      entityId: z.string(),
      version: z.number().int().min(1),
      chainHash: z.string(),
    }),
  ),
  types: z.array(z.object({ name: z.string(), version: z.number().int(), definitionHash: z.string() })),
});

export type Anchor = z.infer<typeof anchorSchema>;

/** The anchor file could not be read or is not an anchor: nothing could be checked. */
export class AnchorFormatError extends Error {
  override readonly name = 'AnchorFormatError';
}

export interface AnchorProblem {
  /** `type/id`, or `type name@version`. */
  entity: string;
  version: number;
  problem: string;
}

export async function takeAnchor(db: Queryable): Promise<Anchor> {
  const entities = await db.query<{
    entity_type: string;
    entity_id: string;
    version: number;
    chain_hash: string;
  }>(
    `select distinct on (o.entity_type, o.entity_id) o.entity_type, o.entity_id, o.entity_version as version, o.chain_hash
       from cairn.observations o
      order by o.entity_type, o.entity_id, o.entity_version desc`,
  );
  const types = await db.query<{ name: string; version: number; definition_hash: string }>(
    'select name, version, definition_hash from cairn.observation_types order by name, version',
  );
  return {
    format: ANCHOR_FORMAT,
    createdAt: new Date().toISOString(),
    entities: entities.rows.map((r) => ({
      entityType: r.entity_type,
      entityId: r.entity_id,
      version: r.version,
      chainHash: r.chain_hash,
    })),
    types: types.rows.map((r) => ({ name: r.name, version: r.version, definitionHash: r.definition_hash })),
  };
}

export function parseAnchor(text: string): Anchor {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AnchorFormatError(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = anchorSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AnchorFormatError(
      `not a cairn anchor: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? ''}`,
    );
  }
  return parsed.data;
}

/** Every anchored version still has its chain hash, every anchored type its definition hash. */
export async function checkAnchor(db: Queryable, anchor: Anchor): Promise<AnchorProblem[]> {
  const problems: AnchorProblem[] = [];
  const e = anchor.entities;
  const { rows } = await db.query<{ i: number; chain_hash: string | null }>(
    `select u.i::int, o.chain_hash
       from unnest($1::text[], $2::text[], $3::int[]) with ordinality as u(t, id, v, i)
       left join cairn.observations o on o.entity_type = u.t and o.entity_id = u.id and o.entity_version = u.v
      where o.chain_hash is distinct from ($4::text[])[u.i]`,
    [
      e.map((x) => x.entityType),
      e.map((x) => x.entityId),
      e.map((x) => x.version),
      e.map((x) => x.chainHash),
    ],
  );
  for (const r of rows) {
    const a = e[r.i - 1]!;
    problems.push({
      entity: `${a.entityType}/${a.entityId}`,
      version: a.version,
      problem:
        r.chain_hash === null
          ? `anchored at version ${a.version}, but the log has no such version now: rows were removed`
          : `anchored chain hash ${short(a.chainHash)} at version ${a.version}, the log has ${short(r.chain_hash)}: versions 1..${a.version} were rewritten after the anchor`,
    });
  }
  const t = anchor.types;
  const types = await db.query<{ i: number; definition_hash: string | null }>(
    `select u.i::int, ot.definition_hash
       from unnest($1::text[], $2::int[]) with ordinality as u(name, v, i)
       left join cairn.observation_types ot on ot.name = u.name and ot.version = u.v
      where ot.definition_hash is distinct from ($3::text[])[u.i]`,
    [t.map((x) => x.name), t.map((x) => x.version), t.map((x) => x.definitionHash)],
  );
  for (const r of types.rows) {
    const a = t[r.i - 1]!;
    problems.push({
      entity: `type ${a.name}@${a.version}`,
      version: a.version,
      problem:
        r.definition_hash === null
          ? 'anchored type definition is gone'
          : `anchored definition hash ${short(a.definitionHash)}, now ${short(r.definition_hash)}: the definition was changed after the anchor`,
    });
  }
  return problems;
}

function short(hash: string): string {
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : JSON.stringify(hash);
}
