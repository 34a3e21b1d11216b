/** Markdown shown as the workflow's current details in the Temporal UI. */
import type { CarriedState, StepState } from './taskView';

const ICON: Record<StepState['status'], string> = {
  pending: '⏳ pending',
  scheduled: '⏳ scheduled',
  running: '▶️ running',
  completed: '✅ completed',
  failed: '❌ failed',
  skipped: '⏭️ skipped',
  cancelled: '🛑 cancelled',
};

/** Which steps a long plan lists first (a stable sort keeps plan order within a rank). */
const ATTENTION: Record<StepState['status'], number> = {
  failed: 0,
  cancelled: 1,
  running: 2,
  scheduled: 2,
  skipped: 3,
  pending: 4,
  completed: 4,
};

/** Rows beyond this are counted, not listed: the UI panel stays readable and cheap to render. */
const MAX_ROWS = 50;

export function renderStepTable(
  goal: string,
  steps: StepState[],
  outcome?: string,
  state?: Pick<CarriedState, 'rejectedSignals' | 'undeliverable'>,
): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  // A long task lists the steps that need attention (not pending, not completed) and counts the rest.
  const shown =
    steps.length <= MAX_ROWS
      ? steps
      : steps
          .filter((s) => s.status !== 'pending' && s.status !== 'completed')
          .sort((a, b) => ATTENTION[a.status] - ATTENTION[b.status])
          .slice(0, MAX_ROWS);
  const rows = shown.map(
    (s) =>
      `| ${esc(s.spec.id)} | ${esc(s.spec.role)} | ${esc(s.spec.title)} | ${ICON[s.status]} | ${s.attempts} | ${esc(noteOf(s))} |`,
  );
  const notes: string[] = [];
  if (shown.length < steps.length) {
    const counts = new Map<string, number>();
    for (const st of steps) counts.set(st.status, (counts.get(st.status) ?? 0) + 1);
    notes.push(
      `**Steps:** ${steps.length} (${[...counts].map(([k, n]) => `${n} ${k}`).join(', ')}); ${shown.length} shown, \`cairn task status\` lists all`,
    );
  }
  if (state && state.rejectedSignals.count > 0) {
    notes.push(
      `**Rejected signals:** ${state.rejectedSignals.count} (latest: ${esc(state.rejectedSignals.recent.at(-1) ?? '')})`,
    );
  }
  if (state && state.undeliverable.length > 0)
    notes.push(`**Undeliverable messages:** ${state.undeliverable.length}`);
  return [
    `**Goal:** ${esc(goal)}${outcome ? `  \n**Outcome:** ${outcome}` : ''}`,
    '',
    '| step | role | title | status | runs | note |',
    '|---|---|---|---|---|---|',
    ...rows,
    ...(notes.length > 0 ? ['', ...notes] : []),
  ].join('\n');
}

/** A scheduled step says which queue it waits on: the UI's pending activities show whether a worker started it. */
function noteOf(s: StepState): string {
  const parts: string[] = [];
  // The workflow learns nothing when an attempt starts (that would cost a signal per step): the
  // UI's Pending Activities and `cairn task status` read Temporal's own state for that.
  if (s.status === 'scheduled' && s.queue)
    parts.push(`on ${s.queue}: waiting for a worker or running (Pending Activities tell which)`);
  if (s.error) parts.push(s.error);
  if (s.lostMemoryWrites?.length) parts.push(`lost memory writes: ${s.lostMemoryWrites.join(', ')}`);
  if (s.undeliverable?.length) parts.push(`${s.undeliverable.length} undeliverable message(s)`);
  return parts.join('; ');
}
