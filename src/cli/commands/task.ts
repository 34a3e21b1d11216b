/**
 * `cairn task …`: what an orchestrator or a person does with tasks from a shell. Tasks are found
 * by key; listing filters on the search attributes Cairn sets (CairnTaskKey, CairnTaskStatus,
 * CairnRoles).
 */
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { CairnClient, TaskFailedError, TaskInputError } from '../../client';
import { createPool } from '../../store/pool';
import { sweepEndedTasks } from '../../taskSweep';
import { jsonSchema, parseTaskInput, roleTaskQueue, type TaskInput } from '../../shared/task';
import type { Command, CliContext } from '../command';
import { UsageError } from '../command';
import { printJson, renderTable } from '../table';
import { requireFromRepository } from '../repoOnly';
import { RolesAttribute, TaskKeyAttribute, TaskStatusAttribute } from '../../shared/taskMessages';

const SUBCOMMANDS = 'start | status | send | cancel | result | list | sweep';

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
    '  cairn task list [--status running|completed|failed|cancelled] [--role ROLE] [--key KEY] [--limit N] [--json]',
  ].join('\n'),
  async run(argv, ctx) {
    const [sub, ...rest] = argv;
    // The plan is read and checked before connecting: a bad file never waits on Temporal.
    const plan = sub === 'start' ? readPlan(rest) : undefined;
    const client = await CairnClient.connect(ctx.config());
    try {
      switch (sub) {
        case 'start':
          return await start(client, plan!, ctx);
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
        case 'sweep':
          return await sweep(client, ctx);
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

interface Plan {
  input: TaskInput;
  source: string;
  json: boolean;
}

/** Reads and checks a plan: JSON errors name the file; every problem is one line. */
export function readPlan(argv: string[]): Plan {
  const { values } = parseArgs({
    args: argv,
    options: {
      file: { type: 'string' },
      example: { type: 'string' },
      key: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  let input: unknown;
  let source: string;
  if (values.file) {
    source = values.file;
    let text: string;
    try {
      text = readFileSync(values.file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${values.file}: ${(err as Error).message}`);
    }
    try {
      input = JSON.parse(text);
    } catch (err) {
      throw new UsageError(`${values.file} is not valid JSON: ${(err as Error).message}`);
    }
  } else if (values.example === 'due-diligence') {
    source = 'example due-diligence';
    const example = requireFromRepository<{ dueDiligenceTask(key: string): TaskInput }>(
      'examples/due-diligence/index.ts',
      '--example',
    );
    input = example.dueDiligenceTask(need(values.key, '--key'));
  } else {
    throw new UsageError('give --file plan.json or --example due-diligence --key KEY');
  }
  const parsed = parseTaskInput(input);
  if (!parsed.ok) throw new TaskInputError(parsed.problems, source);
  return { input: input as TaskInput, source, json: values.json ?? false };
}

async function start(client: CairnClient, plan: Plan, ctx: CliContext): Promise<number> {
  const started = await client.startTask(plan.input, plan.source);
  if (plan.json) printJson(ctx.io, started);
  else if (started.alreadyFinished) {
    ctx.io.out(
      `task ${started.taskKey} already finished (workflow ${started.workflowId} run ${started.runId}); nothing started. \`cairn task result ${started.taskKey}\` shows its result.\n${started.uiUrl}`,
    );
  } else
    ctx.io.out(
      `task ${started.taskKey}: workflow ${started.workflowId} run ${started.runId}\n${started.uiUrl}`,
    );
  return 0;
}

async function status(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' } },
  });
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
  ctx.io.out(
    `messages: ${view.pendingMessages} pending, ${view.deliveredMessages} delivered; continued-as-new ${view.continuedAsNew}×`,
  );
  if (view.rejectedSignals?.count)
    ctx.io.out(
      `rejected signals: ${view.rejectedSignals.count}; latest: ${view.rejectedSignals.recent.at(-1) ?? ''}`,
    );
  for (const u of view.undeliverable ?? [])
    ctx.io.out(`undeliverable: ${u.id} to ${u.toRole} in task ${u.toTask} (step ${u.stepId}): ${u.reason}`);
  // The workflow knows a step is scheduled; Temporal knows whether a worker started it, and the attempt.
  const activities = new Map(pendingSteps(desc.raw).map((a) => [a.activityId, a]));
  const prefix = ctx.config().taskQueuePrefix;
  ctx.io.out(
    renderTable(
      ['step', 'role', 'title', 'status', 'runs', 'note'],
      view.steps.map((s) => {
        const live = activities.get(`step-${s.id}`);
        if (s.status === 'scheduled' && live) {
          // PendingActivityState: 1 scheduled, 2 started, 3 cancel requested.
          const started = live.state === 2 || live.state === 3;
          const queue = s.queue ?? roleTaskQueue(prefix, s.role);
          return [
            s.id,
            s.role,
            s.title,
            started ? 'running' : 'waiting',
            live.attempt,
            started
              ? ''
              : `waiting for a worker on ${queue}${live.lastFailure ? `; last attempt: ${live.lastFailure}` : ''}`,
          ];
        }
        const notes = [
          s.error,
          s.lostMemoryWrites?.length ? `lost memory writes: ${s.lostMemoryWrites.join(', ')}` : undefined,
          s.undeliverable ? `${s.undeliverable} undeliverable` : undefined,
        ];
        return [s.id, s.role, s.title, s.status, s.attempts, notes.filter(Boolean).join('; ')];
      }),
    ),
  );
  return 0;
}

async function send(client: CairnClient, argv: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      to: { type: 'string' },
      type: { type: 'string' },
      content: { type: 'string' },
      from: { type: 'string' },
      id: { type: 'string' },
    },
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
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' } },
  });
  const key = need(positionals[0], 'KEY');
  let r;
  try {
    r = await client.result(key);
  } catch (err) {
    // Every cause, one per line: "Workflow execution failed" alone helps nobody.
    if (!(err instanceof TaskFailedError)) throw err;
    if (values.json) printJson(ctx.io, { taskKey: key, status: 'failed', causes: err.causes });
    else {
      ctx.io.out(`task ${key}: failed`);
      ctx.io.out(err.causes.map((c, i) => `${'  '.repeat(i + 1)}${i ? 'caused by: ' : ''}${c}`).join('\n'));
      if (err.hint) ctx.io.out(`limit: ${err.hint}`);
    }
    return 1;
  }
  if (values.json) printJson(ctx.io, r);
  else {
    ctx.io.out(`task ${r.taskKey}: ${r.status}; ${r.observations} observations, ${r.messages} messages`);
    ctx.io.out(
      renderTable(
        ['step', 'role', 'status', 'output / error'],
        r.steps.map((s) => [s.id, s.role, s.status, s.error ?? outputCell(s.output ?? null)]),
      ),
    );
  }
  return r.status === 'completed' ? 0 : 1;
}

/** A step output for the table: large ones abbreviated with their size (`--json` prints them whole). */
function outputCell(output: unknown): string {
  const text = JSON.stringify(output);
  if (text.length <= OUTPUT_CELL_MAX) return text;
  const bytes = Buffer.byteLength(text, 'utf8');
  return `${text.slice(0, OUTPUT_CELL_MAX)}… (${bytes} bytes; --json prints it whole)`;
}
const OUTPUT_CELL_MAX = 200;

/** The task's pending step activities from a describe: state, attempt, last failure. */
function pendingSteps(
  raw: unknown,
): { activityId: string; state: unknown; attempt: number; lastFailure?: string }[] {
  const list =
    (
      raw as {
        pendingActivities?:
          | {
              activityId?: string | null;
              state?: unknown;
              attempt?: number | null;
              lastFailure?: { message?: string | null } | null;
            }[]
          | null;
      }
    ).pendingActivities ?? [];
  return list.map((a) => ({
    activityId: a.activityId ?? '',
    state: a.state,
    attempt: a.attempt ?? 1,
    ...(a.lastFailure?.message ? { lastFailure: a.lastFailure.message } : {}),
  }));
}

/** Visibility query over Cairn's search attributes; values are quoted for the query language. */
export function taskListQuery(filter: {
  status?: string | undefined;
  role?: string | undefined;
  key?: string | undefined;
}): string {
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
    options: {
      status: { type: 'string' },
      role: { type: 'string' },
      key: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const limit = Number(values.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
  const rows: {
    taskKey: string;
    status: string;
    roles: string[];
    workflowId: string;
    runId: string;
    startTime: string;
  }[] = [];
  for await (const wf of client.temporal.workflow.list({ query: taskListQuery(values) })) {
    const sa = wf.typedSearchAttributes;
    rows.push({
      taskKey: String(sa.get(TaskKeyAttribute) ?? ''),
      // A closed run's attributes cannot change: one the server ended still says running.
      status: closedButRunning(String(sa.get(TaskStatusAttribute) ?? ''), wf.status.name),
      roles: sa.get(RolesAttribute) ?? [],
      workflowId: wf.workflowId,
      runId: wf.runId,
      startTime: wf.startTime.toISOString(),
    });
    if (rows.length >= limit) break;
  }
  if (values.json) printJson(ctx.io, rows);
  else
    ctx.io.out(
      renderTable(
        ['task', 'status', 'roles', 'started', 'workflow'],
        rows.map((r) => [r.taskKey, r.status, r.roles.join(','), r.startTime, r.workflowId]),
      ),
    );
  return 0;
}

function closedButRunning(label: string, temporalStatus: string): string {
  if (temporalStatus === 'RUNNING' || (label !== '' && label !== 'running')) return label || 'running';
  return temporalStatus === 'CONTINUED_AS_NEW' ? 'running (continued as new)' : temporalStatus.toLowerCase();
}

async function sweep(client: CairnClient, ctx: CliContext): Promise<number> {
  const pool = createPool(ctx.config().databaseUrl, { max: 1, applicationName: 'cairn-cli', scopes: 'all' });
  try {
    const swept = await sweepEndedTasks(client.temporal, pool);
    for (const t of swept)
      ctx.io.out(`recorded failed episode for task ${t.taskKey} (${t.status}: ${t.reason})`);
    if (swept.length === 0) ctx.io.out('no ended task is missing its episode');
    return 0;
  } finally {
    await pool.end();
  }
}
