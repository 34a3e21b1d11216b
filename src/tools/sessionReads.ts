/**
 * The read set of a long-lived tool session (MCP): per entity, the version last read and the
 * fields looked at. Unlike an agent step's (one attempt, every read kept), a re-read at another
 * version replaces the entry: after a stale refusal the model re-reads, and its next decision
 * rests on what it saw then, not on the version that was refused.
 */
import type { ReadSetEntry } from '../shared/readSets';

interface Entry {
  version: number;
  /** null: every field. */
  fields: Set<string> | null;
}

export class SessionReads {
  private readonly byEntity = new Map<string, { entityType: string; entityId: string; e: Entry }>();

  record(entityType: string, entityId: string, version: number, fields: readonly string[] | undefined): void {
    const key = `${entityType}\u0000${entityId}`;
    const cur = this.byEntity.get(key);
    const wanted = fields === undefined ? null : new Set(fields);
    if (!cur || cur.e.version !== version) {
      this.byEntity.set(key, { entityType, entityId, e: { version, fields: wanted } });
      return;
    }
    if (cur.e.fields === null) return;
    if (wanted === null) cur.e.fields = null;
    else for (const f of wanted) cur.e.fields.add(f);
  }

  entries(): ReadSetEntry[] {
    return [...this.byEntity.values()].map(({ entityType, entityId, e }) => ({
      entityType,
      entityId,
      version: e.version,
      fields: e.fields === null ? null : [...e.fields].sort(),
    }));
  }
}
