/**
 * A small due-diligence team: two researchers gather facts in parallel (and disagree), an
 * analyst reads the reduced state and decides, a writer reports. The analyst's first attempt
 * fails like a flaky model call would; Temporal retries it and nothing is written twice.
 * No LLM is needed: the "reasoning" is deterministic so the demo is repeatable.
 */
import { defineAgent, type AgentDefinition } from '../../src/agent';
import type { TaskInput } from '../../src/shared/task';

const SOURCES: Record<string, { headquarters: string; employees: number; url: string }> = {
  registry: { headquarters: 'Berlin', employees: 120, url: 'https://registry.example/acme' },
  press: { headquarters: 'Munich', employees: 150, url: 'https://news.example/acme-expands' },
};

export const researcher = defineAgent({
  role: 'researcher',
  description: 'Gathers company facts from one source.',
  async handle(ctx) {
    const { company, source } = ctx.step.input as { company: string; source: string };
    const found = SOURCES[source];
    if (!found) throw new Error(`unknown source ${source}`);
    ctx.append({
      entityType: 'company',
      entityId: company,
      type: 'company.profile',
      fields: { name: 'ACME GmbH', headquarters: found.headquarters, employees: found.employees, sources: [found.url] },
      source: { kind: 'url', ref: found.url },
    });
    ctx.send('analyst', 'finding', { source, headquarters: found.headquarters, employees: found.employees });
    return { source, headquarters: found.headquarters };
  },
});

export const analyst = defineAgent({
  role: 'analyst',
  description: 'Reads the reduced company state and decides on risk.',
  async handle(ctx) {
    const { company } = ctx.step.input as { company: string };
    if (ctx.step.attempt === 1) throw new Error('model endpoint timed out (simulated; Temporal retries this step)');
    const state = await ctx.memory.entity({ entityType: 'company', entityId: company });
    const hq = state.fields.headquarters;
    const contested = hq?.contested.length ?? 0;
    const risk = contested > 0 ? 'medium' : 'low';
    const derivedFrom = Object.values(state.fields).map((f) => f.winner.observationId);
    ctx.append({
      entityType: 'company',
      entityId: company,
      type: 'company.risk',
      kind: 'decision',
      fields: {
        risk,
        rationale: `${ctx.inbox.length} findings received; headquarters ${contested > 0 ? 'contested' : 'agreed'} (now ${JSON.stringify(hq?.value)})`,
      },
      derivedFrom: [...new Set(derivedFrom)],
    });
    ctx.setMemory('risk', risk, ctx.memory.working.risk?.version ?? 0);
    ctx.send('writer', 'decision', { company, risk, findings: ctx.inbox.length });
    return { risk };
  },
});

export const writer = defineAgent({
  role: 'writer',
  description: 'Writes the report from the analyst’s decision.',
  async handle(ctx) {
    const decision = ctx.inbox.find((m) => m.type === 'decision');
    const content = (decision?.content ?? {}) as { company?: string; risk?: 'low' | 'medium' | 'high' };
    const text = `Due diligence on ${content.company ?? '?'}: risk ${content.risk ?? 'unknown'}.`;
    ctx.append({ entityType: 'report', entityId: ctx.task.taskKey, type: 'report.summary', fields: { text, risk: content.risk ?? 'high' } });
    return { text };
  },
});

export const dueDiligenceAgents: AgentDefinition[] = [researcher, analyst, writer];

export function dueDiligenceTask(taskKey: string, company = 'acme'): TaskInput {
  return {
    taskKey,
    goal: `Assess vendor ${company} before signing`,
    steps: [
      { id: 'registry', role: 'researcher', title: 'gather registry facts', input: { company, source: 'registry' } },
      { id: 'press', role: 'researcher', title: 'gather press facts', input: { company, source: 'press' } },
      { id: 'assess', role: 'analyst', title: 'assess risk', input: { company }, dependsOn: ['registry', 'press'] },
      { id: 'report', role: 'writer', title: 'write report', input: { company }, dependsOn: ['assess'] },
    ],
    rolePolicies: { analyst: { maxAttempts: 3, initialRetryMs: 200 } },
  };
}
