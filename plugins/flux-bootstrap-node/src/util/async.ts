import { setMaxListeners } from 'node:events';
import { setTimeout as wait } from 'node:timers/promises';
import { OperationAbortedError } from './errors';

// Transitional shim (issue #14): the engine's own HTTP code no longer uses these. Their last
// callers (install/*, status/*, keys/hostKey.ts, git/session.ts) move to AbortSignal.any,
// AbortSignal.timeout and node:timers/promises on the "libs" branch; delete this file (and
// async.test.ts) once nothing imports it.

/** @deprecated use `setTimeout` of `node:timers/promises` with `{ signal }`. @public */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return wait(ms, undefined, { signal }).catch(() => {
    throw new OperationAbortedError();
  });
}

/** @deprecated use `AbortSignal.any([signal, AbortSignal.timeout(ms)])`. @public */
export function combineSignals(
  signals: Array<AbortSignal | undefined>,
  timeoutMs?: number,
): { signal: AbortSignal; dispose: () => void; timedOut: () => boolean } {
  const timeout = timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined;
  const signal = AbortSignal.any(
    [...signals, timeout].filter((s): s is AbortSignal => !!s),
  );
  setMaxListeners(256, signal); // shared by many requests in flight
  const timedOut = () => !!timeout?.aborted && !signals.some(s => s?.aborted);
  return { signal, dispose: () => {}, timedOut };
}

/** @deprecated use p-limit, or the HTTP layer's own concurrency. @public */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failed: { error: unknown } | undefined;
  // The first error is thrown once the calls in flight have settled.
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  const workers = Math.max(1, Math.min(limit, items.length));
  await Promise.all(Array.from({ length: workers }, worker));
  if (failed) throw failed.error;
  return results;
}
