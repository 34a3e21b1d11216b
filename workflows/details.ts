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

export function renderStepTable(
  goal: string,
  steps: StepState[],
  outcome?: string,
  state?: Pick<CarriedState, 'rejectedSignals' | 'undeliverable'>,
): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = steps.map(
    (s) =>
      `| ${esc(s.spec.id)} | ${esc(s.spec.role)} | ${esc(s.spec.title)} | ${ICON[s.status]} | ${s.attempts} | ${esc(noteOf(s))} |`,
  );
  const notes: string[] = [];
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
  if (s.status === 'scheduled' && s.queue) parts.push(`waiting for a worker on ${s.queue} (or running)`);
  if (s.error) parts.push(s.error);
  if (s.lostMemoryWrites?.length) parts.push(`lost memory writes: ${s.lostMemoryWrites.join(', ')}`);
  if (s.undeliverable?.length) parts.push(`${s.undeliverable.length} undeliverable message(s)`);
  return parts.join('; ');
}
