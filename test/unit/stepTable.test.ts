/** The task's current details (workflows/details.ts): short plans in full, long ones bounded. */
import { expect, it } from 'vitest';
import { renderStepTable } from '../../workflows/details';
import type { StepState } from '../../workflows/taskView';

const step = (i: number, status: StepState['status']): StepState => ({
  spec: { id: `s${i}`, role: 'r', title: `t${i}`, input: null, dependsOn: [] },
  status,
  attempts: status === 'pending' ? 0 : 1,
  added: false,
  ...(status === 'scheduled' ? { queue: 'p-role-r' } : {}),
});
const rowsOf = (md: string) => md.split('\n').filter((l) => /^\| s\d+ /.test(l));

it('lists every step of a short plan, naming the queue a scheduled step is on', () => {
  const md = renderStepTable('g', [step(0, 'completed'), step(1, 'scheduled'), step(2, 'pending')]);
  expect(rowsOf(md)).toHaveLength(3);
  expect(md).toContain('on p-role-r: waiting for a worker or running');
});

it('a long plan lists the steps needing attention (failures first, at most 50) and counts the rest', () => {
  const steps = [
    ...Array.from({ length: 1400 }, (_, i) => step(i, 'completed')),
    ...Array.from({ length: 60 }, (_, i) => step(1400 + i, 'scheduled')),
    step(1460, 'failed'),
    ...Array.from({ length: 39 }, (_, i) => step(1461 + i, 'pending')),
  ];
  const md = renderStepTable('g', steps);
  const rows = rowsOf(md);
  expect(rows).toHaveLength(50);
  // The failed step first, then the scheduled ones in plan order.
  expect(rows[0]).toMatch(/^\| s1460 .*failed/);
  expect(rows.slice(1).every((r) => r.includes('scheduled'))).toBe(true);
  expect(rows[1]).toMatch(/^\| s1400 /);
  expect(md).toContain('**Steps:** 1500 (1400 completed, 60 scheduled, 1 failed, 39 pending); 50 shown');
  expect(md.length).toBeLessThan(12_000);
});
