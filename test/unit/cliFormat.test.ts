import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/cli/command';
import {
  formatValue,
  formatWriter,
  parseAsOf,
  parseCommandArgs,
  parseCount,
  parseEntityArg,
  parseTime,
  renderEntityState,
  renderObservations,
  renderTrace,
  renderVerifyResult,
} from '../../src/cli/format';
import type { EntityState, ObservationRef } from '../../src/shared/entityState';
import type { StoredObservation } from '../../src/shared/observation';
import type { FieldTrace, TraceNode } from '../../src/store/observations/trace';

const ref = (v: number, agentId: string, kind: ObservationRef['kind'] = 'assertion'): ObservationRef => ({
  observationId: `obs-${v}`,
  entityVersion: v,
  agentId,
  role: 'researcher',
  kind,
});

describe('formatValue / formatWriter', () => {
  it('renders compact JSON, truncated with an ellipsis, and a cleared field', () => {
    expect(formatValue('Berlin')).toBe('"Berlin"');
    expect(formatValue({ a: [1, 2] })).toBe('{"a":[1,2]}');
    expect(formatValue(null)).toBe('null');
    expect(formatValue(undefined)).toBe('(cleared)');
    const long = formatValue('x'.repeat(100), 10);
    expect(long).toHaveLength(10);
    expect(long.endsWith('…')).toBe(true);
  });

  it('names agent and role, and the kind unless it is a plain assertion', () => {
    expect(formatWriter(ref(1, 'a1'))).toBe('a1 (researcher)');
    expect(formatWriter(ref(1, 'a1', 'correction'))).toBe('a1 (researcher) correction');
    expect(formatWriter({ agentId: '', role: '', kind: 'assertion' })).toBe('? (?)');
  });
});

describe('renderEntityState', () => {
  const state: EntityState = {
    entityType: 'company',
    entityId: 'acme',
    version: 7,
    fields: {
      name: {
        value: 'Acme',
        policy: 'last-writer-wins',
        winner: ref(7, 'a2'),
        corrected: false,
        contested: [{ value: 'ACME', source: ref(2, 'a1'), reason: 'last-writer-wins' }],
      },
      employees: {
        value: 120,
        policy: 'max',
        winner: ref(5, 'a3', 'correction'),
        corrected: true,
        contested: [],
      },
      hq: { policy: 'last-writer-wins', winner: ref(6, 'a4', 'retraction'), corrected: false, contested: [] },
    },
    retracted: { 'obs-4': 'obs-6' },
  };

  it('prints a header with the version and a row per field, sorted by name', () => {
    const lines = renderEntityState(state).split('\n');
    expect(lines[0]).toBe('company/acme  version 7  1 retracted');
    expect(lines[1]).toMatch(/^field\s+value\s+policy\s+winner\s+version\s+contested$/);
    expect(lines.slice(3).map((l) => l.split(/\s+/)[0])).toEqual(['employees', 'hq', 'name']);
    expect(lines[3]).toMatch(/^employees\s+120\s+max \(corrected\)\s+a3 \(researcher\) correction\s+v5\s+0$/);
    expect(lines[4]).toMatch(/^hq\s+\(cleared\)\s+last-writer-wins\s+a4 \(researcher\) retraction\s+v6\s+0$/);
    expect(lines[5]).toMatch(/^name\s+"Acme"\s+last-writer-wins\s+a2 \(researcher\)\s+v7\s+1$/);
  });

  it('says when it is a historical state, and when there are no fields', () => {
    expect(renderEntityState(state, { asOf: '3' }).split('\n')[0]).toBe(
      'company/acme  version 7  (as of 3)  1 retracted',
    );
    expect(
      renderEntityState({ entityType: 'company', entityId: 'x', version: 0, fields: {}, retracted: {} }),
    ).toBe('company/x  version 0\n(no fields)');
  });
});

const observation = (over: Partial<StoredObservation> = {}): StoredObservation => ({
  id: '00000000-0000-4000-8000-000000000001',
  seq: 42,
  entityType: 'company',
  entityId: 'acme',
  entityVersion: 3,
  type: 'company.profile',
  schemaVersion: 1,
  kind: 'assertion',
  fields: { hq: 'Berlin' },
  scope: 'task',
  provenance: {
    taskKey: 'task-1',
    workflowId: 'wf',
    runId: 'run',
    activityId: '1',
    attempt: 1,
    agentId: 'agent-1',
    role: 'researcher',
    derivedFrom: [],
  },
  targetId: null,
  expectedVersion: null,
  observedAt: '2025-01-31T12:00:00.000000Z',
  recordedAt: '2025-01-31T12:00:01.123456Z',
  idempotencyKey: 'k',
  contentHash: 'c'.repeat(64),
  prevHash: '',
  chainHash: 'd'.repeat(64),
  ...over,
});

describe('renderObservations', () => {
  it('prints one row per observation with entity@version, writer and fields', () => {
    const text = renderObservations([
      observation(),
      observation({ seq: 43, entityVersion: 4, kind: 'retraction', targetId: 'target-id', fields: {} }),
    ]);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^seq\s+recorded\s+entity@version\s+type\s+kind\s+agent\s+task\s+fields$/);
    expect(lines[2]).toMatch(
      /^42\s+2025-01-31T12:00:01\.123456Z\s+company\/acme@3\s+company\.profile@1\s+assertion\s+agent-1 \(researcher\)\s+task-1\s+\{"hq":"Berlin"\}$/,
    );
    expect(lines[3]).toMatch(/retraction .*→ target-id \{\}$/);
    expect(renderObservations([])).toBe('(no observations)');
  });
});

describe('renderTrace', () => {
  const node = (id: string, depth: number, over: Partial<TraceNode> = {}): TraceNode => ({
    observationId: id,
    entity: 'document/d',
    entityVersion: 1,
    type: 'document.fact',
    schemaVersion: 1,
    kind: 'assertion',
    fields: {},
    targetId: null,
    provenance: {
      taskKey: 't',
      workflowId: 'wf',
      runId: 'run',
      activityId: '2',
      attempt: 3,
      agentId: 'reader',
      role: 'extractor',
      derivedFrom: [],
    },
    observedAt: 'OBS',
    recordedAt: 'REC',
    temporalUrl: 'http://ui/namespaces/default/workflows/wf/run/history',
    depth,
    derivedFrom: [],
    missing: [],
    cycles: [],
    truncated: [],
    ...over,
  });

  it('indents the derivation chain, with provenance, UI links and what was not followed', () => {
    const leaf = node('leaf', 2, {
      temporalUrl: null,
      provenance: {
        ...node('x', 0).provenance,
        workflowId: '',
        runId: '',
        source: { kind: 'url', ref: 'https://example.com' },
      },
      cycles: ['root'],
    });
    const trace: FieldTrace = {
      ...node('root', 0, {
        entity: 'company/acme',
        entityVersion: 9,
        derivedFrom: [node('mid', 1, { derivedFrom: [leaf], truncated: ['far'] })],
      }),
      field: 'hq',
      value: 'Berlin',
      policy: 'last-writer-wins',
      corrected: false,
      stateVersion: 9,
      contested: [{ value: 'Paris', source: ref(2, 'rival'), reason: 'last-writer-wins' }],
    };
    expect(renderTrace(trace)).toBe(
      [
        'company/acme.hq = "Berlin"  (last-writer-wins; entity version 9)',
        'root  assertion document.fact@1  company/acme@9',
        '    agent reader (extractor)  task t  attempt 3',
        '    workflow wf  run run  activity 2',
        '    observed OBS  recorded REC',
        '    ui http://ui/namespaces/default/workflows/wf/run/history',
        '  ↳ mid  assertion document.fact@1  document/d@1',
        '      agent reader (extractor)  task t  attempt 3',
        '      workflow wf  run run  activity 2',
        '      observed OBS  recorded REC',
        '      ui http://ui/namespaces/default/workflows/wf/run/history',
        '    ↳ leaf  assertion document.fact@1  document/d@1',
        '        agent reader (extractor)  task t  attempt 3',
        '        workflow -  run -  activity 2',
        '        observed OBS  recorded REC',
        '        source url https://example.com',
        '      ↳ root  (cycle: already on this path)',
        '    ↳ far  (depth limit reached)',
        'contested (1):',
        '  "Paris"  by rival (researcher) v2  [last-writer-wins]  obs-2',
      ].join('\n'),
    );
  });
});

describe('renderVerifyResult', () => {
  it('summarizes an intact log and tabulates problems', () => {
    expect(renderVerifyResult({ checked: 10, entities: 1, problems: [] })).toBe(
      'checked 10 observation(s) in 1 entity: log intact',
    );
    const text = renderVerifyResult({
      checked: 10,
      entities: 2,
      problems: [
        { entity: 'company/a', version: 3, observationId: 'id-3', problem: 'content changed after append' },
      ],
    });
    expect(text.split('\n')[0]).toBe('checked 10 observation(s) in 2 entities: 1 problem(s)');
    expect(text.split('\n')[1]).toBe('  company/a@3  id-3  content changed after append');
    const missing = renderVerifyResult({
      checked: 0,
      entities: 1,
      problems: [{ entity: 'company/b', version: 2, observationId: '', problem: 'x' }],
    });
    expect(missing.split('\n')[1]).toBe('  company/b@2  (missing rows)  x');
  });
});

describe('argument parsing', () => {
  it('--as-of takes a version or an ISO time', () => {
    expect(parseAsOf('0')).toEqual({ asOfVersion: 0 });
    expect(parseAsOf('12')).toEqual({ asOfVersion: 12 });
    expect(parseAsOf('2025-01-31T12:00:00Z')).toEqual({ asOfTime: new Date('2025-01-31T12:00:00Z') });
    for (const bad of ['-1', '1.5', 'yesterday', '2025-13-45', ''])
      expect(() => parseAsOf(bad)).toThrow(UsageError);
  });

  it('counts and times are validated with the option named', () => {
    expect(parseCount('--limit', '5')).toBe(5);
    expect(() => parseCount('--limit', '0')).toThrow(/--limit must be a whole number >= 1/);
    expect(parseCount('--min-version', '0', 0)).toBe(0);
    expect(() => parseCount('--limit', '1e3')).toThrow(UsageError);
    expect(parseTime('--since', '2025-01-31').toISOString()).toBe('2025-01-31T00:00:00.000Z');
    expect(() => parseTime('--since', 'now')).toThrow(/--since must be an ISO time/);
  });

  it('entities are <type>/<id>; malformed ones are usage errors', () => {
    expect(parseEntityArg('company/acme/eu')).toEqual({ entityType: 'company', entityId: 'acme/eu' });
    expect(() => parseEntityArg('company')).toThrow(UsageError);
    expect(() => parseEntityArg('Company/x')).toThrow(
      /bad entity "Company\/x": entityType must be lower-case/,
    );
    expect(() => parseEntityArg(undefined)).toThrow(UsageError);
  });

  it('unknown options are usage errors', () => {
    expect(parseCommandArgs(['company/acme', '--json'], { json: { type: 'boolean' } })).toMatchObject({
      values: { json: true },
      positionals: ['company/acme'],
    });
    expect(() => parseCommandArgs(['--nope'], { json: { type: 'boolean' } })).toThrow(UsageError);
  });
});
