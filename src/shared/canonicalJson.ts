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
 *
 * This runs for every appended item (its content hash) and every reducer comparison, so the
 * walk builds no paths: on the rare bad value it stops, and a second walk that does track the
 * path words the error (`describeProblem`).
 */
import type { Json } from './observation';

export function canonicalJson(value: Json): string {
  try {
    return encode(value);
  } catch (err) {
    if (err === NOT_JSON) throw describeProblem(value);
    // The stack ran out (JSON nested thousands deep, which the store refuses since migration
    // 007 but an older row may hold): a clear error rather than "Maximum call stack size exceeded".
    if (err instanceof RangeError)
      throw new TypeError(
        'canonicalJson: value nested too deeply to encode (Cairn stores at most 32 levels)',
      );
    throw err;
  }
}

/** Equality of two JSON values, ignoring object key order. */
export function jsonEquals(a: Json, b: Json): boolean {
  return a === b || canonicalJson(a) === canonicalJson(b);
}

/**
 * Whether `obj` (an object, not an array) is one canonicalJson encodes: a plain object —
 * judged by its toString tag rather than its prototype, because objects built in another realm
 * (Temporal's workflow sandbox is a separate V8 context) have a different Object.prototype —
 * without a toJSON method.
 */
export function isPlainJsonObject(obj: object): boolean {
  return (
    Object.prototype.toString.call(obj) === '[object Object]' &&
    typeof (obj as { toJSON?: unknown }).toJSON !== 'function'
  );
}

/** Thrown by the fast walk (one preallocated object: no stack to capture); never escapes this module. */
const NOT_JSON = new Error('canonicalJson: not a JSON value');

function encode(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      // JSON.stringify of a finite number is its ToString, so `'' + value` encodes identically.
      if (!Number.isFinite(value)) throw NOT_JSON;
      return '' + value;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return Array.isArray(value) ? encodeArray(value) : encodeObject(value);
    default:
      throw NOT_JSON;
  }
}

function encodeArray(items: readonly unknown[]): string {
  const n = items.length;
  if (n === 0) return '[]';
  // An index loop (not map) so that holes in sparse arrays are visited and rejected as undefined.
  let out = '[' + encode(items[0]);
  for (let i = 1; i < n; i++) out += ',' + encode(items[i]);
  return out + ']';
}

function encodeObject(obj: object): string {
  if (!isPlainJsonObject(obj)) throw NOT_JSON;
  const record = obj as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length > 1) keys.sort();
  let out = '{';
  for (const key of keys) {
    const v = record[key];
    if (v === undefined) continue;
    out += (out.length === 1 ? '' : ',') + JSON.stringify(key) + ':' + encode(v);
  }
  return out + '}';
}

/**
 * The TypeError for a value the fast walk refused: the same walk, in the same order, keeping
 * the path of each value, stopping at the first problem.
 */
function describeProblem(value: unknown): TypeError {
  try {
    check(value, '$');
  } catch (err) {
    if (err instanceof TypeError) return err;
    throw err;
  }
  // Only a value that changed between the walks (a getter) gets here.
  return new TypeError('canonicalJson: $ changed while it was being encoded, not a JSON value');
}

function check(value: unknown, path: string): void {
  if (value === null) return;
  switch (typeof value) {
    case 'boolean':
    case 'string':
      return;
    case 'number':
      if (!Number.isFinite(value))
        throw new TypeError(`canonicalJson: ${path} is ${String(value)}, not a finite number`);
      return;
    case 'object':
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) check(value[i], `${path}[${i}]`);
        return;
      }
      if (!isPlainJsonObject(value)) {
        const tag = Object.prototype.toString.call(value);
        throw new TypeError(`canonicalJson: ${path} is ${tag.slice(8, -1)}, not a plain JSON object`);
      }
      for (const key of Object.keys(value).sort()) {
        const v = (value as Record<string, unknown>)[key];
        if (v !== undefined) check(v, `${path}.${key}`);
      }
      return;
    default:
      throw new TypeError(`canonicalJson: ${path} is ${typeof value}, not a JSON value`);
  }
}
