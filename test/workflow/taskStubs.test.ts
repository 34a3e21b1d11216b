/**
 * Failure paths of the task workflow with stub activities (the samples' worker.runUntil pattern,
 * real dev server, no Postgres): what the status says while the episode is being recorded, and
 * what happens when context cannot be persisted.
 */
import { randomUUID } from 'node:crypto';
import { expect, inject, it } from 'vitest';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { AgentStepInput, StepResult, TaskResult } from '../../src/shared/task';
import type { AdmitMessagesInput, EpisodeInput, TaskActivities } from '../../activities/types';

async function withStubWorker(
  activities: Partial<TaskActivities> & { runAgentStep: (i: AgentStepInput) => Promise<StepResult> },
  fn: (client: Client, prefix: string) => Promise<void>,
): Promise<void> {
  const env = inject('cairnTest');
  const prefix = `stub${randomUUID().slice(0, 8)}`;
  const connection = await NativeConnection.connect({ address: env.temporalAddress });
  const clientConnection = await Connection.connect({ address: env.temporalAddress });
  const client = new Client({ connection: clientConnection, namespace: env.namespace });
  const stubs = {
    bindTaskKey: async () => ({ kind: 'bound' as const }),
    admitMessages: async (i: AdmitMessagesInput) => ({ fresh: i.messages.map((m) => m.id) }),
    recordEpisode: async () => ({ episodeId: 'e' }),
    ...activities,
  };
  const tasks = await Worker.create({
    connection,
    namespace: env.namespace,
    taskQueue: `${prefix}-tasks`,
    workflowBundle: { codePath: env.workflowBundlePath },
    activities: stubs,
  });
  const role = await Worker.create({
    connection,
    namespace: env.namespace,
    taskQueue: `${prefix}-role-echo`,
    activities: { runAgentStep: activities.runAgentStep },
  });
  try {
    await tasks.runUntil(role.runUntil(fn(client, prefix)));
  } finally {
    await clientConnection.close();
    await connection.close();
  }
}

const done = (): StepResult => ({
  output: 'ok',
  observations: [],
  messages: [],
  proposedSteps: [],
  acknowledged: [],
  attempt: 1,
});

it('CairnTaskStatus stays running until the episode is recorded, then says completed', async () => {
  let release!: () => void;
  const recorded = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const recording = new Promise<void>((r) => (entered = r));
  const episodes: EpisodeInput[] = [];
  await withStubWorker(
    {
      runAgentStep: async () => done(),
      recordEpisode: async (e) => {
        entered();
        await recorded;
        episodes.push(e);
        return { episodeId: 'e1' };
      },
    },
    async (client, prefix) => {
      const h = await client.workflow.start('taskWorkflow', {
        taskQueue: `${prefix}-tasks`,
        workflowId: `stub-status-${prefix}`,
        args: [
          {
            taskQueuePrefix: prefix,
            task: { taskKey: `stub-${prefix}`, goal: 'g', steps: [{ id: 'a', role: 'echo', title: 'a' }] },
          },
        ],
      });
      // The step is done and the episode is being written (a local activity: no event until it ends).
      await recording;
      expect((await h.describe()).searchAttributes.CairnTaskStatus).toEqual(['running']);
      release();
      expect(((await h.result()) as TaskResult).status).toBe('completed');
      expect((await h.describe()).searchAttributes.CairnTaskStatus).toEqual(['completed']);
      expect(episodes.map((e) => e.outcome)).toEqual(['completed']);
    },
  );
});

it('context that cannot be persisted fails the task with that cause, after recording the episode', async () => {
  const episodes: EpisodeInput[] = [];
  let releaseStep!: () => void;
  const stepMayFinish = new Promise<void>((r) => (releaseStep = r));
  await withStubWorker(
    {
      runAgentStep: async () => {
        await stepMayFinish;
        return done();
      },
      admitMessages: async () => {
        throw ApplicationFailure.nonRetryable('database unavailable (stub)');
      },
      recordEpisode: async (e) => {
        episodes.push(e);
        return { episodeId: 'e2' };
      },
    },
    async (client, prefix) => {
      const h = await client.workflow.start('taskWorkflow', {
        taskQueue: `${prefix}-tasks`,
        workflowId: `stub-admit-${prefix}`,
        args: [
          {
            taskQueuePrefix: prefix,
            task: {
              taskKey: `stub-admit-${prefix}`,
              goal: 'g',
              steps: [
                { id: 'a', role: 'echo', title: 'a' },
                { id: 'b', role: 'echo', title: 'b', dependsOn: ['a'] },
              ],
            },
          },
        ],
      });
      await h.signal('context', { id: 'm1', fromRole: 'human', toRole: 'echo', type: 'note', content: 1 });
      releaseStep();
      const err = await h.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(String((err as WorkflowFailedError).cause?.message)).toContain(
        'could not persist context messages',
      );
      expect(String((err as WorkflowFailedError).cause?.message)).toContain('database unavailable (stub)');
      expect(episodes.map((e) => e.outcome)).toEqual(['failed']);
      expect((await h.describe()).searchAttributes.CairnTaskStatus).toEqual(['failed']);
    },
  );
});
