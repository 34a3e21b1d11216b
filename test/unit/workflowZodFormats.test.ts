/**
 * The workflow bundle preloads zod (src/workflowBundle.ts): its module state is frozen and shared
 * by every workflow run. zod string formats whose pattern is one of zod's own constant regexes
 * then fail at parse time (zod resets the frozen regex's lastIndex), and a workflow task that
 * throws is retried forever: the task would hang. This walks every module the workflow entry
 * imports at run time and refuses such a format unless it is given a pattern of its own.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');

/** Formats whose default pattern is a constant of zod's (zod 4, v4/core/regexes). */
const CONSTANT_PATTERN_FORMATS = [
  'guid',
  'email',
  'url',
  'httpUrl',
  'emoji',
  'nanoid',
  'cuid',
  'cuid2',
  'ulid',
  'xid',
  'ksuid',
  'ipv4',
  'ipv6',
  'mac',
  'cidrv4',
  'cidrv6',
  'base64',
  'base64url',
  'e164',
  'hostname',
  'hex',
  'lowercase',
  'uppercase',
];
const formatCall = new RegExp(`\\.(${CONSTANT_PATTERN_FORMATS.join('|')})\\(([^)]*)\\)`, 'g');

function resolveModule(from: string, spec: string): string | undefined {
  const base = path.resolve(path.dirname(from), spec);
  return [`${base}.ts`, path.join(base, 'index.ts'), base].find((f) => f.endsWith('.ts') && existsSync(f));
}

/** The text with comments blanked out, line numbers kept. */
function withoutComments(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '))
    .replace(/(^|[^:'"])\/\/.*$/gm, (c, lead: string) => lead + ' '.repeat(c.length - lead.length));
}

/** Relative modules `entry` loads at run time (type-only imports and exports left out). */
function runtimeModules(entry: string): string[] {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms)) {
      if (m[2]) continue;
      const target = resolveModule(file, m[3]!);
      if (target) visit(target);
    }
  };
  visit(entry);
  return [...seen];
}

it('workflow modules give zod formats with constant patterns a pattern of their own', () => {
  const modules = runtimeModules(path.join(root, 'workflows', 'index.ts'));
  // The walk reaches the shared schemas the workflows parse with (a walk that found nothing
  // would pass vacuously).
  expect(modules.map((f) => path.relative(root, f))).toEqual(
    expect.arrayContaining(['workflows/task.ts', 'src/shared/task.ts', 'src/shared/agreement.ts']),
  );
  const offenders: string[] = [];
  for (const file of modules) {
    const text = withoutComments(readFileSync(file, 'utf8'));
    for (const m of text.matchAll(formatCall)) {
      if (/pattern/i.test(m[2]!)) continue;
      const line = text.slice(0, m.index).split('\n').length;
      offenders.push(`${path.relative(root, file)}:${line}: .${m[1]}(${m[2]})`);
    }
  }
  expect(offenders).toEqual([]);
});

it('the check sees a format call without a pattern (control)', () => {
  const sample = "const s = z.strictObject({ id: z.guid(), mail: z.string().email('bad') });";
  expect([...sample.matchAll(formatCall)].map((m) => m[1])).toEqual(['guid', 'email']);
});
