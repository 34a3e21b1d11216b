/**
 * `cairn task …`: what an orchestrator or a person does with tasks from a shell. Tasks are found
 * by key; listing filters on the search attributes Cairn sets (CairnTaskKey, CairnTaskStatus,
 * CairnRoles).
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CairnClient } from '../../client';
import { jsonSchema, type TaskInput } from '../../shared/task';
import type { Command, CliContext } from '../command';
import { UsageError } from '../command';
import { printJson, renderTable } from '../table';
import { requireFromRepository } from '../repoOnly';
import { RolesAttribute, TaskKeyAttribute, TaskStatusAttribute } from '../../shared/taskMessages';

const SUBCOMMANDS = 'start | status | send | cancel | result | list';

export const taskCommand: Command = {
  name: 'task',
  summary: 'Start, inspect, message, cancel and list tasks.',
  usage: [
    `cairn task <${SUBCOMMANDS}>`,
    '  cairn task start (--file plan.json | --example due-diligence --key KEY) [--json]',
    '  cairn task status KEY [--json]',
    '  cairn task send KEY --to ROLE --type TYPE --content JSON [--from ROLE] [--id ID]',
    '  cairn task cancel KEY',
    '  cairn task result KEY [--json]',
    "  cairn task list [--status running|completed|failed|cancelled] [--role ROLE] [--key KEY] [--limit N] [--json]",
  ].join('\n'),
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    const client = await CairnClient.connect(ctx.config());
    try {
      switch (sub) {
        case 'start':
          return await start(client, rest, ctx);
        case 'status':
          return await status(client, rest, ctx);
        case 'send':
          return await send(client, rest, ctx);
        case 'cancel': {
          const key = need(parseArgs({ args: rest, allowPositionals: true }).positionals[0], 'KEY');
          await client.cancel(key);
          ctx.io.out(`cancellation requested for task ${key}`);
          return 0;
        }
        case 'result':
          return await result(client, rest, ctx);
        case 'list':
          return await list(client, rest, ctx);
        default:
          throw new UsageError(`expected one of ${SUBCOMMANDS}`);
      }
    } finally {
      await client.close();
    }
  },
};

function need(value: string | undefined, what: string): string {
  if (!value) throw new UsageError(`missing ${what}`);
  return value;
}

async function start(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { file: { type: 'string' }, example: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' } } });
  let input: TaskInput;
  if (values.file) {
    input = JSON.parse(readFileSync(values.file, 'utf8')) as TaskInput;
  } else if (values.example === 'due-diligence') {
    const example = requireFromRepository<{ dueDiligenceTask(key: string): TaskInput }>('examples/due-diligence/index.ts', '--example');
    input = example.dueDiligenceTask(need(values.key, '--key'));
  } else {
    throw new UsageError('give --file plan.json or --example due-diligence --key KEY');
  }
  const started = await client.startTask(input);
  if (values.json) printJson(ctx.io, started);
  else ctx.io.out(`task ${started.taskKey}: workflow ${started.workflowId} run ${started.runId}\n${started.uiUrl}`);
  return 0;
}

async function status(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const key = need(positionals[0], 'KEY');
  const desc = await client.handle(key).describe();
  if (desc.status.name !== 'RUNNING') {
    ctx.io.out(`task ${key}: ${desc.status.name.toLowerCase()} (use \`cairn task result ${key}\`)`);
    return 0;
  }
  const view = await client.status(key);
  if (values.json) {
    printJson(ctx.io, view);
    return 0;
  }
  ctx.io.out(`task ${view.taskKey}: ${view.status} — ${view.goal}`);
  ctx.io.out(`messages: ${view.pendingMessages} pending, ${view.deliveredMessages} delivered; continued-as-new ${view.continuedAsNew}×`);
  ctx.io.out(renderTable(['step', 'role', 'title', 'status', 'runs', 'note'], view.steps.map((s) => [s.id, s.role, s.title, s.status, s.attempts, s.error])));
  return 0;
}

async function send(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { to: { type: 'string' }, type: { type: 'string' }, content: { type: 'string' }, from: { type: 'string' }, id: { type: 'string' } },
  });
  const key = need(positionals[0], 'KEY');
  let content: unknown;
  try {
    content = JSON.parse(need(values.content, '--content'));
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError('--content must be JSON (quote strings: \'"text"\')');
  }
  const message = {
    id: values.id ?? `cli-${randomUUID()}`,
    fromRole: values.from ?? 'human',
    toRole: need(values.to, '--to'),
    type: need(values.type, '--type'),
    content: jsonSchema.parse(content),
  };
  await client.sendContext(key, message);
  ctx.io.out(`sent ${message.id} to ${message.toRole} in task ${key}`);
  return 0;
}

async function result(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const key = need(positionals[0], 'KEY');
  const r = await client.result(key);
  if (values.json) printJson(ctx.io, r);
  else {
    ctx.io.out(`task ${r.taskKey}: ${r.status}; ${r.observations} observations, ${r.messages} messages`);
    ctx.io.out(renderTable(['step', 'role', 'status', 'output / error'], r.steps.map((s) => [s.id, s.role, s.status, s.error ?? JSON.stringify(s.output ?? null)])));
  }
  return r.status === 'completed' ? 0 : 1;
}

/** Visibility query over Cairn's search attributes; values are quoted for the query language. */
export function taskListQuery(filter: { status?: string | undefined; role?: string | undefined; key?: string | undefined }): string {
  const q = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  const parts = ["WorkflowType = 'taskWorkflow'"];
  if (filter.status) parts.push(`CairnTaskStatus = ${q(filter.status)}`);
  if (filter.role) parts.push(`CairnRoles = ${q(filter.role)}`);
  if (filter.key) parts.push(`CairnTaskKey = ${q(filter.key)}`);
  return parts.join(' AND ');
}

async function list(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { status: { type: 'string' }, role: { type: 'string' }, key: { type: 'string' }, limit: { type: 'string' }, json: { type: 'boolean' } },
  });
  const limit = Number(values.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
  const rows: { taskKey: string; status: string; roles: string[]; workflowId: string; runId: string; startTime: string }[] = [];
  for await (const wf of client.temporal.workflow.list({ query: taskListQuery(values) })) {
    const sa = wf.typedSearchAttributes;
    rows.push({
      taskKey: String(sa.get(TaskKeyAttribute) ?? ''),
      status: String(sa.get(TaskStatusAttribute) ?? wf.status.name.toLowerCase()),
      roles: sa.get(RolesAttribute) ?? [],
      workflowId: wf.workflowId,
      runId: wf.runId,
      startTime: wf.startTime.toISOString(),
    });
    if (rows.length >= limit) break;
  }
  if (values.json) printJson(ctx.io, rows);
  else ctx.io.out(renderTable(['task', 'status', 'roles', 'started', 'workflow'], rows.map((r) => [r.taskKey, r.status, r.roles.join(','), r.startTime, r.workflowId])));
  return 0;
}

