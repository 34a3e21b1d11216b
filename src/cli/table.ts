/** Plain-text tables for engineers; `--json` output bypasses this entirely. */

export function renderTable(headers: string[], rows: (string | number | null | undefined)[][]): string {
  const cells = rows.map((r) =>
    r.map((c) => (c === null || c === undefined ? '' : String(c)).replace(/\s+/g, ' ')),
  );
  const widths = headers.map((h, i) =>
    Math.min(60, Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length))),
  );
  const fmt = (r: string[]) =>
    r
      .map((c, i) => {
        const w = widths[i] ?? 0;
        return c.length > w ? c.slice(0, w - 1) + '…' : c.padEnd(w);
      })
      .join('  ')
      .trimEnd();
  return [fmt(headers), fmt(widths.map((w) => '-'.repeat(w))), ...cells.map(fmt)].join('\n');
}

export function printJson(io: { out(line: string): void }, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}
