/**
 * Telling tasks that their decisions rest on quarantined facts: one context message per task
 * and quarantine, to a role the caller chooses (e.g. a reviewer that re-checks). Sent through the
 * Temporal client as a signal; the message id is derived from the quarantine, the role and the
 * task, so notifying twice delivers once. A task that has finished cannot be signalled: it is
 * reported as skipped, with the reason.
 */
import type { CairnClient } from './client';
import type { ObservationKind } from './shared/observation';
import type { Queryable } from './store/pool';
import { loadTaint, type Taint } from './store/quarantine';

export interface NotifyTaintedOptions {
  /** The role of each task that receives the message. */
  toRole: string;
  /** Only this quarantine's taint (default: every active quarantine). */
  quarantineId?: string;
  /** Which tainted observations make a task worth telling (default: decisions). */
  kinds?: readonly ObservationKind[];
  /** A taint already loaded (default: loaded now). */
  taint?: Taint;
}

export interface TaintNotice {
  taskKey: string;
  quarantineId: string;
  observationIds: string[];
}

export interface NotifyTaintedResult {
  notified: TaintNotice[];
  skipped: (TaintNotice & { reason: string })[];
}

export const TAINT_MESSAGE_TYPE = 'cairn.tainted';

export async function notifyTaintedTasks(
  client: CairnClient,
  db: Queryable,
  opts: NotifyTaintedOptions,
): Promise<NotifyTaintedResult> {
  const taint = opts.taint ?? (await loadTaint(db));
  const kinds = new Set<ObservationKind>(opts.kinds ?? ['decision']);
  const byTask = new Map<string, TaintNotice>();
  for (const mark of taint.marks.values()) {
    if (!kinds.has(mark.kind) || mark.taskKey === '') continue;
    if (opts.quarantineId !== undefined && mark.quarantineId !== opts.quarantineId) continue;
    const key = `${mark.taskKey}\u0000${mark.quarantineId}`;
    const notice = byTask.get(key) ?? {
      taskKey: mark.taskKey,
      quarantineId: mark.quarantineId,
      observationIds: [],
    };
    notice.observationIds.push(mark.observationId);
    byTask.set(key, notice);
  }
  const quarantines = new Map(taint.quarantines.map((q) => [q.id, q]));
  const result: NotifyTaintedResult = { notified: [], skipped: [] };
  for (const notice of byTask.values()) {
    const q = quarantines.get(notice.quarantineId);
    try {
      await client.sendContext(notice.taskKey, {
        id: `cairn:taint:${notice.quarantineId}:${opts.toRole}:${notice.taskKey}`.slice(0, 200),
        fromRole: 'cairn',
        toRole: opts.toRole,
        type: TAINT_MESSAGE_TYPE,
        content: {
          quarantineId: notice.quarantineId,
          rootObservationId: q?.rootObservationId ?? null,
          reason: q?.reason ?? null,
          observationIds: notice.observationIds,
        },
      });
      result.notified.push(notice);
    } catch (err) {
      result.skipped.push({ ...notice, reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return result;
}
