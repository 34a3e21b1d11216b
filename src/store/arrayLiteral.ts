/**
 * Postgres array literals built by Cairn, for arrays sent as one parameter (a batch's columns,
 * read-set field lists, nextFree's candidates).
 */

const QUOTED = /["\\]/;
const QUOTED_ALL = /["\\]/g;

/**
 * The Postgres array literal of `items.map(value)`, byte for byte the text pg's prepareValue
 * makes of that array (every element double-quoted, `"` and `\` backslash-escaped, null as NULL;
 * a property in test/unit/appendValidation.test.ts), without the array and with one scan per
 * element instead of two replaces, and each run of equal values (a batch's type, kind, scope,
 * time) escaped once.
 */
export function arrayLiteral<T>(items: readonly T[], value: (item: T) => string | number | null): string {
  let out = '{';
  let last: string | number | null | undefined;
  let lastText = '';
  for (let k = 0; k < items.length; k++) {
    const v = value(items[k]!);
    if (k > 0) out += ',';
    if (v === null || v === undefined) {
      out += 'NULL';
      continue;
    }
    if (v !== last) {
      const text = typeof v === 'string' ? v : String(v);
      lastText = QUOTED.test(text) ? `"${text.replace(QUOTED_ALL, '\\$&')}"` : `"${text}"`;
      last = v;
    }
    out += lastText;
  }
  return out + '}';
}

/** A text[] literal (every element quoted), so a list of lists can travel as one text[] parameter. */
export function textArrayLiteral(values: readonly string[]): string {
  return arrayLiteral(values, identity);
}

function identity(value: string): string {
  return value;
}
