/**
 * The MCP part of `cairn demo` (docs/mcp.md): a reviewer agent in another process. The demo
 * spawns `cairn mcp` over stdio as that agent (identity and scopes from the command line, as an
 * MCP client's configuration would give them) and drives it with the official MCP client: it
 * reads what the model-driven analyst wrote, a late filing lands meanwhile (a researcher step of
 * another task), so its sign-off is refused as stale with the versions named; it re-reads and
 * signs off. The trace of the sign-off shows the MCP session and, beneath it, the analyst's step.
 */
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { Pool } from 'pg';
import { DILIGENCE_SCOPE, lateSourceTask } from '../../examples/due-diligence/agents';
import type { CairnClient } from '../client';
import type { PolicyResolver } from '../shared/entityState';
import { traceField } from '../store/observations/trace';
import { renderTrace } from './format';

export const MCP_REVIEWER = { agentId: 'reviewer-mcp-1', role: 'reviewer' } as const;

export interface McpAgentOutcome {
  pid: number | null;
  tools: string[];
  /** What the refusal named. */
  refusal: { entity: string; versionRead: number; currentVersion: number } | undefined;
  refusals: number;
  decisionId: string;
  sessionActivityId: string;
}

type Answer = { ok: true; value: Record<string, unknown> } | { ok: false; refusal: Refusal };
interface Refusal {
  error: string;
  next: string;
  details?: { entity?: string; versionRead?: number; currentVersion?: number };
}

async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<Answer> {
  const r = await client.callTool({ name, arguments: args });
  const text = (r.content as { type: string; text?: string }[])[0]?.text ?? '{}';
  const parsed = JSON.parse(text) as Record<string, unknown>;
  return r.isError ? { ok: false, refusal: parsed as unknown as Refusal } : { ok: true, value: parsed };
}

interface ReadAnswer {
  version: number;
  fields: Record<string, { value?: unknown; by: { agentId: string; role: string; observationId: string } }>;
}

export async function showMcpAgent(opts: {
  client: CairnClient;
  pool: Pool;
  policyOf: PolicyResolver;
  /** The repository root: the agent runs `<root>/bin/cairn.js mcp`. */
  root: string;
  databaseUrl: string;
  taskKey: string;
  company: string;
  out: (line?: string) => void;
  step: (title: string) => void;
  /** For the trace's links to the Temporal UI. */
  ui: { uiUrl: string; namespace: string };
}): Promise<McpAgentOutcome> {
  const { client, pool, policyOf, taskKey, company, out, step } = opts;
  const args = [
    path.join(opts.root, 'bin', 'cairn.js'),
    'mcp',
    '--agent-id',
    MCP_REVIEWER.agentId,
    '--role',
    MCP_REVIEWER.role,
    '--read',
    `task,${DILIGENCE_SCOPE},global`,
    '--write',
    DILIGENCE_SCOPE,
    '--task',
    taskKey,
    '--no-tasks',
  ];
  const transport = new StdioClientTransport({
    command: process.execPath,
    args,
    // The server process holds the database login; the client never sees it.
    env: { ...(process.env as Record<string, string>), DATABASE_URL: opts.databaseUrl },
    stderr: 'pipe',
  });
  let stderr = '';
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const mcp = new Client({ name: 'cairn-demo-reviewer', version: '1.0.0' });
  out();
  step(
    `MCP agent in another process: ${MCP_REVIEWER.agentId} (role ${MCP_REVIEWER.role}) drives \`cairn mcp\` over stdio with the official MCP client`,
  );
  try {
    await mcp.connect(transport);
  } catch (err) {
    throw new Error(
      `cairn mcp did not start: ${err instanceof Error ? err.message : String(err)}\n${stderr}`,
      {
        cause: err,
      },
    );
  }
  try {
    const tools = (await mcp.listTools()).tools.map((t) => t.name);
    out(`  cairn mcp (pid ${transport.pid ?? '?'}): ${tools.length} tools: ${tools.join(', ')}`);

    const read = async (): Promise<ReadAnswer> => {
      const r = await callTool(mcp, 'read_entity', { entityType: 'company', entityId: company });
      if (!r.ok) throw new Error(`read_entity refused: ${r.refusal.error}`);
      return r.value as unknown as ReadAnswer;
    };
    const first = await read();
    const risk = first.fields.risk;
    if (!risk) throw new Error(`company/${company} has no risk yet: the analyst has not decided`);
    out(
      `  read_entity company/${company} → version ${first.version}; risk = ${JSON.stringify(risk.value)} by ${risk.by.agentId} (${risk.by.role}), observation ${risk.by.observationId}`,
    );

    // Between its read and its decision, another agent writes to the company.
    const lateKey = `${taskKey}-filing`;
    await client.startTask(lateSourceTask(lateKey, company, 'filings'));
    const late = await client.result(lateKey);
    out(
      `  meanwhile a late filing lands: task ${lateKey}, step ${late.steps[0]?.id ?? '?'} (researcher) ${late.steps[0]?.status ?? '?'}`,
    );

    const decide = (state: ReadAnswer) => {
      const r = state.fields.risk!;
      const employees = state.fields.employees?.value;
      return callTool(mcp, 'append_observations', {
        items: [
          {
            entityType: 'company',
            entityId: company,
            type: 'company.signoff',
            kind: 'decision',
            scope: DILIGENCE_SCOPE,
            fields: {
              approve: r.value !== 'high',
              conditions: `risk ${String(r.value)}; ${String(employees)} employees on record at version ${state.version}`,
            },
            derivedFrom: [r.by.observationId],
          },
        ],
      });
    };
    let refusals = 0;
    let refusal: McpAgentOutcome['refusal'];
    let answer = await decide(first);
    let state = first;
    while (!answer.ok) {
      const d = answer.refusal.details;
      if (d?.versionRead === undefined || d.currentVersion === undefined || refusals > 0)
        throw new Error(`append_observations refused: ${answer.refusal.error} (${answer.refusal.next})`);
      refusals++;
      refusal = { entity: d.entity ?? '?', versionRead: d.versionRead, currentVersion: d.currentVersion };
      out(`  append_observations company.signoff → refused: ${answer.refusal.error}`);
      out(`    next: ${answer.refusal.next}`);
      state = await read();
      out(`  read_entity company/${company} again → version ${state.version}`);
      answer = await decide(state);
    }
    if (refusals === 0)
      out('  (nothing landed between its read and its decision this time, so nothing was refused)');
    const written = (answer.value.observations as { id: string; entityVersion: number }[])[0]!;
    out(
      `  append_observations company.signoff → written: observation ${written.id}, company/${company}@${written.entityVersion}`,
    );

    const { rows } = await pool.query<{ activity_id: string }>(
      'select activity_id from cairn.observations where id = $1',
      [written.id],
    );
    const trace = await traceField(
      pool,
      policyOf,
      { entityType: 'company', entityId: company },
      'approve',
      // The sign-off and the decision it rests on; `cairn trace` follows the rest.
      { ...opts.ui, maxDepth: 1 },
    );
    out(`  trace of the sign-off: the MCP session's call, derived from the model-driven step's decision`);
    if (trace)
      out(
        renderTrace(trace)
          .split('\n')
          .map((l) => `  ${l}`)
          .join('\n'),
      );
    return {
      pid: transport.pid,
      tools,
      refusal,
      refusals,
      decisionId: written.id,
      sessionActivityId: rows[0]?.activity_id ?? '',
    };
  } finally {
    await mcp.close();
  }
}
