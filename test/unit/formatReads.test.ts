/** The text of read receipts, staleness and taint: what engineers read in the CLI. */
import { describe, expect, it } from 'vitest';
import { renderBlastRadius, renderTaintPath } from '../../src/cli/formatReads';
import { describeConflict } from '../../src/shared/readSets';
import type { BlastNode, BlastRadius } from '../../src/store/blastRadius';

const node = (id: string, depth: number, via: BlastNode['via'], parentId: string | null): BlastNode => ({
  observationId: id,
  depth,
  parentId,
  via,
  rootId: 'root-id',
  entityType: 'company',
  entityId: 'acme',
  entityVersion: depth + 1,
  type: 'company.risk',
  kind: depth === 0 ? 'assertion' : 'decision',
  taskKey: 'dd-1',
  workflowId: 'wf',
  runId: 'run',
  activityId: 'step-x',
  attempt: 1,
  agentId: 'analyst@1',
  role: 'analyst',
});

describe('read receipt text', () => {
  it('names the entity, the version read, the current one and the fields that moved', () => {
    const c = {
      entityType: 'company',
      entityId: 'acme',
      versionRead: 2,
      currentVersion: 3,
      fields: ['risk'],
      observationIds: ['o1'],
    };
    expect(describeConflict(c)).toBe(
      'company/acme read at version 2, now at version 3 (risk changed by 1 observation)',
    );
    expect(
      describeConflict({ ...c, fields: null, observationIds: Array.from({ length: 10 }, (_, i) => `o${i}`) }),
    ).toBe('company/acme read at version 2, now at version 3 (changed by 10+ observations)');
  });

  it('renders a blast radius with its edges, tasks and dependent fields', () => {
    const blast: BlastRadius = {
      rootId: 'root-id',
      nodes: [node('root-id', 0, 'root', null), node('child-id', 1, 'read', 'root-id')],
      truncated: true,
      count: 2,
      maxDepth: 10,
      taskKeys: ['dd-1'],
      agents: [{ agentId: 'analyst@1', role: 'analyst' }],
      runs: [{ workflowId: 'wf', runId: 'run' }],
      fields: [
        {
          entityType: 'company',
          entityId: 'acme',
          field: 'risk',
          observationId: 'child-id',
          stateVersion: 2,
        },
      ],
    };
    const text = renderBlastRadius(blast);
    expect(text).toContain(
      'blast radius of root-id: 2 observations within 10 hops — truncated at 2, raise --limit',
    );
    expect(text).toMatch(/1 +read ← root-id +child-id +company\/acme@2 +decision/);
    expect(text).toContain('tasks: dd-1');
    expect(text).toContain('  company/acme.risk  (from child-id)');
  });

  it('renders a taint path from the retracted root down', () => {
    const path = [
      { ...node('root-id', 0, 'root', null), quarantineId: 'q1' },
      { ...node('child-id', 1, 'derived', 'root-id'), quarantineId: 'q1' },
    ];
    expect(renderTaintPath(path, { id: 'q1', reason: 'misquote' })).toBe(
      [
        'TAINTED (quarantine q1: misquote)',
        '  retracted root-id (company/acme@1)',
        '    ↳ derived child-id (company/acme@2)',
      ].join('\n'),
    );
    expect(renderTaintPath([], undefined)).toBe('');
  });
});
