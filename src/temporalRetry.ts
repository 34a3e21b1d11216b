/**
 * Riding out an unreachable Temporal frontend (a restart, a deploy, a network blip): calls that
 * fail with gRPC UNAVAILABLE are tried again with backoff for a bounded time. The SDK's own retry
 * gives up after about ten tries (seconds); a server restart takes longer than that.
 *
 * Only for calls that are safe to repeat: reads (result, status), and writes that deduplicate
 * (a start with a fixed workflow id and USE_EXISTING, a signal whose message id deduplicates).
 */

/** gRPC status UNAVAILABLE (grpc.status.UNAVAILABLE; spelled out to avoid depending on grpc-js). */
const UNAVAILABLE = 14;

/** Whether `err` (or its cause chain) is a gRPC UNAVAILABLE: the frontend could not be reached. */
export function isTemporalUnavailable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; typeof e === 'object' && e !== null && depth < 5; depth++) {
    const { code } = e as { code?: unknown };
    if (code === UNAVAILABLE) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

export interface TemporalRetryOptions {
  /** Give up (rethrow the last error) once this much time has passed since the first try. */
  budgetMs: number;
  onRetry?: (err: unknown, retry: number, delayMs: number) => void;
}

export async function withTemporalRetry<T>(fn: () => Promise<T>, opts: TemporalRetryOptions): Promise<T> {
  const started = Date.now();
  for (let retry = 1; ; retry++) {
    try {
      return await fn();
    } catch (err) {
      const left = opts.budgetMs - (Date.now() - started);
      if (!isTemporalUnavailable(err) || left <= 0) throw err;
      const base = Math.min(5000, 200 * 2 ** Math.min(retry - 1, 10));
      const delay = Math.min(left, base / 2 + Math.random() * (base / 2));
      opts.onRetry?.(err, retry, delay);
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
