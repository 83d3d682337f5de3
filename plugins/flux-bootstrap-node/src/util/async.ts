import { setMaxListeners } from 'node:events';
import { OperationAbortedError } from './errors';

/** Resolves after `ms`, or rejects with OperationAbortedError when the signal aborts. @public */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new OperationAbortedError());
      return;
    }
    const settle = {
      timer: undefined as ReturnType<typeof setTimeout> | undefined,
    };
    const onAbort = () => {
      clearTimeout(settle.timer);
      reject(new OperationAbortedError());
    };
    settle.timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A signal that aborts when any of the given signals aborts, or after `timeoutMs`.
 * Call `dispose()` when done so that no timer or listener is left behind.
 * @public
 */
export function combineSignals(
  signals: Array<AbortSignal | undefined>,
  timeoutMs?: number,
): { signal: AbortSignal; dispose: () => void; timedOut: () => boolean } {
  const controller = new AbortController();
  // Shared by many concurrent requests (each adds a listener while in flight): not a leak.
  setMaxListeners(256, controller.signal);
  let didTimeOut = false;
  const cleanups: Array<() => void> = [];
  for (const s of signals) {
    if (!s) continue;
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    const onAbort = () => controller.abort(s.reason);
    s.addEventListener('abort', onAbort, { once: true });
    cleanups.push(() => s.removeEventListener('abort', onAbort));
  }
  if (timeoutMs !== undefined && timeoutMs > 0 && !controller.signal.aborted) {
    const timer = setTimeout(() => {
      didTimeOut = true;
      controller.abort(new Error(`timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    cleanups.push(() => clearTimeout(timer));
  }
  return {
    signal: controller.signal,
    dispose: () => cleanups.forEach(c => c()),
    timedOut: () => didTimeOut,
  };
}

/**
 * Runs `fn` over `items` with at most `limit` in flight; results keep the input order.
 * Rejects with the first error after in-flight calls settle.
 * @public
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index], index);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  const workers = Array.from(
    { length: Math.max(1, Math.min(limit, items.length)) },
    worker,
  );
  await Promise.all(workers);
  if (failed) throw failed.error;
  return results;
}

/** Options of {@link retry}. @public */
export interface RetryOptions {
  /** Attempts after the first one. */
  retries: number;
  /** First delay; doubles every attempt. */
  baseDelayMs: number;
  /** Upper bound of one delay. */
  maxDelayMs: number;
  signal?: AbortSignal;
  /** Decides whether an error is worth another attempt, and may impose a delay (Retry-After). */
  shouldRetry: (
    error: unknown,
    attempt: number,
  ) => boolean | { delayMs: number };
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/**
 * Retries `fn` with bounded exponential backoff and full jitter; honours the abort signal
 * between attempts.
 * @public
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (attempt >= options.retries || options.signal?.aborted) throw error;
      const decision = options.shouldRetry(error, attempt);
      if (!decision) throw error;
      const backoff = Math.min(
        options.maxDelayMs,
        options.baseDelayMs * 2 ** attempt,
      );
      const delayMs =
        typeof decision === 'object'
          ? Math.min(options.maxDelayMs, Math.max(0, decision.delayMs))
          : Math.round(backoff / 2 + (Math.random() * backoff) / 2);
      options.onRetry?.(error, attempt + 1, delayMs);
      await sleep(delayMs, options.signal);
    }
  }
}
