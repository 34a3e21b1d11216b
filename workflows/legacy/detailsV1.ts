/** FROZEN (0.1.0): markdown shown as the workflow's current details in the Temporal UI. */
import type { StepStateV1 as StepState } from './taskV1';

const ICON: Record<StepState['status'], string> = {
  pending: '⏳ pending',
  running: '▶️ running',
  completed: '✅ completed',
  failed: '❌ failed',
  skipped: '⏭️ skipped',
  cancelled: '🛑 cancelled',
};

export function renderStepTable(goal: string, steps: StepState[], outcome?: string): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const rows = steps.map(
    (s) =>
      `| ${esc(s.spec.id)} | ${esc(s.spec.role)} | ${esc(s.spec.title)} | ${ICON[s.status]} | ${s.attempts} | ${esc(s.error ?? '')} |`,
  );
  return [
    `**Goal:** ${esc(goal)}${outcome ? `  \n**Outcome:** ${outcome}` : ''}`,
    '',
    '| step | role | title | status | runs | note |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}
