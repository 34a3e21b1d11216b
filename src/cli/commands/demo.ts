/**
 * `cairn demo`: brings up whatever is missing, runs the due-diligence example end to end, and
 * prints what an engineer would want to see: the result, every observation with provenance, the
 * reduced state with its contested values, the trace of a field, the model-driven analyst's
 * decision with its model call, a reviewer agent in another process (over MCP) refused once as
 * stale and signing off after a re-read, the analyst's and the writer's agreement on publishing
 * (decision and votes), a decision refused as stale and retried, a retraction with its blast
 * radius and taint, the messages, a claim race, the UI address.
 * `--llm`: the analyst asks a real model (OPENAI_API_KEY or ANTHROPIC_API_KEY; src/cli/demoLlm.ts).
 */
import { parseArgs } from 'node:util';
import { CairnClient } from '../../client';
import { dueDiligenceTask } from '../../../examples/due-diligence';
import { createDueDiligenceAgents } from '../../../examples/due-diligence/agents';
import { policyResolverFor } from '../../shared/reducer';
import { taskWorkflowId } from '../../shared/task';
import { listMessages } from '../../store/messages';
import { getEntityState } from '../../store/observations/read';
import { listObservations } from '../../store/observations/list';
import { traceField } from '../../store/observations/trace';
import { createPool } from '../../store/pool';
import { createWorker } from '../../worker';
import type { Command } from '../command';
import { loadAgentModule } from '../agentModule';
import { installConciseRuntime } from '../logging';
import { repositoryRoot } from '../repoOnly';
import { bringUpDatabase, bringUpTemporal } from '../stack';
import { renderEntityState, renderObservations, renderTrace } from '../format';
import { renderTable } from '../table';
import { showReadReceipts } from '../demoReadReceipts';
import { showClaimRace } from '../demoClaims';
import { showAgreement } from '../demoAgreement';
import { chooseLlm, loadLlm } from '../demoLlm';
import { showMcpAgent } from '../demoMcpAgent';
import { showModelDecision } from '../demoModelAgent';

export const demoCommand: Command = {
  name: 'demo',
  summary: 'Run the due-diligence example end to end on a real Temporal server and Postgres.',
  usage:
    'cairn demo [--keep] [--task-key KEY] [--company ID] [--llm [--provider openai|anthropic] [--model ID]]',
  async run(argv, ctx) {
    const { values } = parseArgs({
      args: argv,
      options: {
        keep: { type: 'boolean' },
        'task-key': { type: 'string' },
        company: { type: 'string' },
        llm: { type: 'boolean' },
        provider: { type: 'string' },
        model: { type: 'string' },
      },
    });
    const config = ctx.config();
    const out = (m = '') => ctx.io.out(m);
    const step = (m: string) => out(`» ${m}`);
    // Checked before anything starts: a missing key or package is a one-line error.
    const llm = values.llm ? chooseLlm(process.env, values) : undefined;
    const realModel = llm ? await loadLlm(llm) : undefined;
    if (llm) step(`the analyst asks ${llm.provider}/${llm.modelId} (--llm, key from ${llm.keyVariable})`);

    step('database');
    await bringUpDatabase(config, (m) => out(`  ${m}`));
    step('temporal');
    const server = await bringUpTemporal(config, ctx.root, (m) => out(`  ${m}`), {
      keepRunning: values.keep ?? false,
    });

    installConciseRuntime(out);
    const mod = loadAgentModule(ctx.root, undefined);
    // The engineer's view of every scope; agent steps run under their own grant (withScope).
    const pool = createPool(config.databaseUrl, { scopes: 'all' });
    let worker: Awaited<ReturnType<typeof createWorker>> | undefined;
    let client: CairnClient | undefined;
    try {
      step('worker');
      const agents = realModel ? createDueDiligenceAgents({ analystModel: () => realModel }) : mod.agents;
      worker = await createWorker({ config, pool, registry: mod.types, agents });
      const running = worker.run();
      out(`  serving ${worker.taskQueues.join(', ')}`);

      client = await CairnClient.connect(config);
      const taskKey =
        values['task-key'] ??
        `demo-${new Date()
          .toISOString()
          .replace(/[-:.TZ]/g, '')
          .slice(0, 17)}`;
      const company = values.company ?? 'acme';
      // `review`: a compliance step decides alongside the analyst (refused once as stale).
      // `agreement`: analyst and writer must agree on publishing the report.
      const started = await client.startTask(
        dueDiligenceTask(taskKey, company, { review: true, agreement: true }),
      );
      step(
        started.alreadyFinished
          ? `task ${taskKey} had already finished (workflow ${started.workflowId}); showing what it recorded`
          : `task ${taskKey} started (workflow ${started.workflowId})`,
      );
      out(`  Temporal UI: ${started.uiUrl}`);
      const result = await client.result(taskKey);

      out();
      step(`result: ${result.status}`);
      out(
        renderTable(
          ['step', 'role', 'status', 'output'],
          result.steps.map((s) => [s.id, s.role, s.status, JSON.stringify(s.output ?? null)]),
        ),
      );

      const observations = await listObservations(pool, { taskKey, limit: 100 });
      out();
      step(`observations written by this task (${observations.length}), with provenance`);
      out(renderObservations(observations));

      const policyOf = policyResolverFor(mod.types);
      const ref = { entityType: 'company', entityId: company };
      const state = await getEntityState(pool, policyOf, ref);
      out();
      step(`entity company/${company} reduced under its field policies (version ${state.version})`);
      out(renderEntityState(state));

      const trace = await traceField(pool, policyOf, ref, 'headquarters', {
        uiUrl: config.temporalUiUrl,
        namespace: config.temporalNamespace,
      });
      out();
      step(`trace of company/${company}.headquarters`);
      out(trace ? renderTrace(trace) : '  (no value)');

      await showModelDecision({ pool, taskKey, out, step });

      await showMcpAgent({
        client,
        pool,
        policyOf,
        root: repositoryRoot() ?? ctx.root,
        databaseUrl: config.databaseUrl,
        taskKey,
        company,
        out,
        step,
        ui: { uiUrl: config.temporalUiUrl, namespace: config.temporalNamespace },
      });

      await showAgreement({ client, pool, taskKey, out, step });

      await showReadReceipts({ pool, policyOf, taskKey, company, out, step });

      const messages = await listMessages(pool, { taskKey });
      out();
      step(`context messages (${messages.length})`);
      out(
        renderTable(
          ['from', 'to', 'type', 'acknowledged by'],
          messages.map((m) => [m.fromRole, m.toRole, m.type, m.ackedBy ?? 'unread']),
        ),
      );

      await showClaimRace({ client, pool, taskKey, company, out, step });

      out();
      out(`Temporal UI for this run: ${client.uiUrl(taskWorkflowId(taskKey), started.runId)}`);
      if (values.keep)
        out(
          'Worker and server keep running (--keep); Ctrl-C stops the worker, `cairn dev --stop` the server.',
        );
      if (values.keep) {
        await running;
      } else {
        await worker.shutdown();
      }
    } finally {
      await client?.close();
      if (!values.keep) await worker?.shutdown();
      await pool.end();
      if (!values.keep) await server.stop();
    }
    return 0;
  },
};
