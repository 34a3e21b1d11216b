/**
 * Canonical JSON: one string per JSON value, whatever the key order of its objects. Used for
 * value equality and set-union element identity in the reducer, and for content hashing.
 * Sandbox-safe (no Node built-ins).
 *
 * Why a dedicated encoder rather than JSON.stringify: Postgres jsonb hands objects back with
 * its own key order (shorter keys first), so an observation read from the store and the same
 * observation in memory stringify differently. Sorting keys makes both encode identically.
 *
 * Rules
 * - object keys sorted by UTF-16 code units (`Array.prototype.sort` default), no whitespace;
 * - object properties whose value is `undefined` are omitted, as JSON.stringify does (the
 *   reducer represents a cleared field value as an absent property, so this keeps an in-memory
 *   state and its JSON round-trip encoding the same);
 * - strings and numbers are encoded by JSON.stringify (so `-0` encodes as `0`);
 * - anything JSON cannot store faithfully is a TypeError naming the path: NaN/Infinity,
 *   `undefined` as a value or array element, bigint, functions, symbols, objects with `toJSON`
 *   (Date…), Maps and Sets. Silently coercing those would make a hash disagree with the row.
 */
import type { Json } from './observation';

export function canonicalJson(value: Json): string {
  return encode(value, '$');
}

/** Equality of two JSON values, ignoring object key order. */
export function jsonEquals(a: Json, b: Json): boolean {
  return a === b || canonicalJson(a) === canonicalJson(b);
}

function encode(value: unknown, path: string): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${path} is ${String(value)}, not a finite number`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object':
      return Array.isArray(value) ? encodeArray(value, path) : encodeObject(value, path);
    default:
      throw new TypeError(`canonicalJson: ${path} is ${typeof value}, not a JSON value`);
  }
}

function encodeArray(items: readonly unknown[], path: string): string {
  const parts: string[] = [];
  // An index loop (not map) so that holes in sparse arrays are visited and rejected as undefined.
  for (let i = 0; i < items.length; i++) parts.push(encode(items[i], `${path}[${i}]`));
  return `[${parts.join(',')}]`;
}

function encodeObject(obj: object, path: string): string {
  // toString tag rather than a prototype check: objects built in another realm (Temporal's
  // workflow sandbox is a separate V8 context) have a different Object.prototype.
  const tag = Object.prototype.toString.call(obj);
  if (tag !== '[object Object]' || typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
    throw new TypeError(`canonicalJson: ${path} is ${tag.slice(8, -1)}, not a plain JSON object`);
  }
  const record = obj as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const v = record[key];
    if (v === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${encode(v, `${path}.${key}`)}`);
  }
  return `{${parts.join(',')}}`;
}
