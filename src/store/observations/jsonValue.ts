/**
 * Turning validated fields into a JSON value Postgres stores faithfully, or an error naming
 * the path. Postgres text and jsonb cannot hold NUL; other C0 control characters are refused
 * because they are almost always garbage (terminal escapes, binary pasted as text); an unpaired
 * UTF-16 surrogate would be silently replaced by U+FFFD on the way to UTF-8, so the stored
 * string would differ from the hashed one.
 */
import { canonicalJson, isPlainJsonObject } from '../../shared/canonicalJson';
import type { Json } from '../../shared/observation';

// C0 controls other than \t \n \r. Matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// One scan that clears almost every string: no control character and no surrogate at all.
// eslint-disable-next-line no-control-regex
const SUSPECT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uD800-\uDFFF]/;

export class JsonValueError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

/** Why a string cannot be stored, or undefined when it can. */
export function stringProblem(s: string, maxLength: number): string | undefined {
  if (s.length > maxLength) return `string of ${s.length} characters exceeds the limit of ${maxLength}`;
  if (!SUSPECT.test(s)) return undefined;
  const control = CONTROL.exec(s);
  if (control) {
    const code = control[0].charCodeAt(0);
    return code === 0
      ? 'contains a NUL character (\\u0000), which Postgres cannot store'
      : `contains the control character U+${code.toString(16).toUpperCase().padStart(4, '0')} (only tab, newline and carriage return are allowed)`;
  }
  if (LONE_SURROGATE.test(s)) return 'contains an unpaired UTF-16 surrogate (malformed Unicode)';
  return undefined;
}

export interface JsonLimits {
  maxStringLength: number;
  maxDepth: number;
}

/**
 * A clean copy of `value` as JSON: properties whose value is undefined are dropped (as
 * JSON.stringify does); anything JSON would silently change (NaN, Date, Map, undefined in an
 * array, a cycle) is an error.
 */
export function toJsonValue(value: unknown, path: string, limits: JsonLimits, depth = 0): Json {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new JsonValueError(path, `${String(value)} is not a JSON number`);
    return value;
  }
  if (typeof value === 'string') {
    const problem = stringProblem(value, limits.maxStringLength);
    if (problem) throw new JsonValueError(path, problem);
    return value;
  }
  if (typeof value !== 'object') throw new JsonValueError(path, `a ${typeof value} is not a JSON value`);
  if (depth >= limits.maxDepth)
    throw new JsonValueError(path, `nested deeper than ${limits.maxDepth} levels (or cyclic)`);
  if (Array.isArray(value)) {
    const out: Json[] = [];
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (item === undefined) throw new JsonValueError(`${path}[${i}]`, 'undefined is not a JSON value');
      out.push(toJsonValue(item, `${path}[${i}]`, limits, depth + 1));
    }
    return out;
  }
  const tag = Object.prototype.toString.call(value);
  if (tag !== '[object Object]' || typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    throw new JsonValueError(path, `a ${tag.slice(8, -1)} is not a plain JSON object`);
  }
  const out: { [key: string]: Json } = {};
  for (const [key, v] of Object.entries(value)) {
    const keyPath = `${path}.${key}`;
    const problem = stringProblem(key, limits.maxStringLength);
    if (problem) throw new JsonValueError(keyPath, `property name ${problem}`);
    if (v === undefined) continue;
    const json = toJsonValue(v, keyPath, limits, depth + 1);
    // A plain assignment to "__proto__" would set the prototype instead of a property.
    if (key === '__proto__')
      Object.defineProperty(out, key, { value: json, enumerable: true, writable: true, configurable: true });
    else out[key] = json;
  }
  return out;
}

/** Thrown by the fast walk of `canonicalJsonValue` (preallocated: no stack to capture); never escapes this module. */
const REFUSED = new Error('refused');

/**
 * `canonicalJson(toJsonValue(value, path, limits))` in one walk and without the copy: the
 * canonical JSON text of `value`, or the JsonValueError toJsonValue throws for it. The walk
 * accepts exactly what toJsonValue accepts but builds no paths; on the first problem it stops
 * and toJsonValue walks again to name it, so the error (and which of several problems is
 * reported) is toJsonValue's.
 */
export function canonicalJsonValue(value: unknown, path: string, limits: JsonLimits): string {
  try {
    return encodeChecked(value, limits.maxStringLength, limits.maxDepth, 0);
  } catch (err) {
    if (err !== REFUSED) throw err;
  }
  // Throws the error; should it not (a getter answering differently the second time), the
  // copy it made is what gets encoded, as it would have been without the fast walk.
  return canonicalJson(toJsonValue(value, path, limits));
}

/**
 * The walk. A string is checked through its JSON encoding: JSON.stringify escapes control
 * characters, lone surrogates, `"` and backslashes, so an encoding just two quotes longer than the
 * string proves there is nothing for stringProblem to find but the length; anything else gets
 * the full check.
 */
function encodeChecked(value: unknown, maxString: number, maxDepth: number, depth: number): string {
  switch (typeof value) {
    case 'string': {
      const json = JSON.stringify(value);
      if (json.length !== value.length + 2 || value.length > maxString) {
        if (stringProblem(value, maxString) !== undefined) throw REFUSED;
      }
      return json;
    }
    case 'number':
      if (!Number.isFinite(value)) throw REFUSED;
      // JSON.stringify of a finite number is its ToString.
      return '' + value;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= maxDepth) throw REFUSED;
      if (Array.isArray(value)) {
        const n = value.length;
        if (n === 0) return '[]';
        let out = '[';
        for (let i = 0; i < n; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw REFUSED;
          out += (i === 0 ? '' : ',') + encodeChecked(item, maxString, maxDepth, depth + 1);
        }
        return out + ']';
      }
      if (!isPlainJsonObject(value)) throw REFUSED;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record);
      if (keys.length > 1) keys.sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        // Every property name is checked, also those whose value is undefined (as toJsonValue does).
        const name = JSON.stringify(key);
        if (name.length !== key.length + 2 || key.length > maxString) {
          if (stringProblem(key, maxString) !== undefined) throw REFUSED;
        }
        const v = record[key];
        if (v === undefined) continue;
        out += (first ? '' : ',') + name + ':' + encodeChecked(v, maxString, maxDepth, depth + 1);
        first = false;
      }
      return out + '}';
    }
    default:
      throw REFUSED;
  }
}
