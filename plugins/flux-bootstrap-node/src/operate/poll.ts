import { setTimeout as sleep } from 'node:timers/promises';
import { OperationAbortedError } from '../util/errors';

/** How {@link pollUntil} waits. */
export interface PollOptions {
  timeoutMs: number;
  pollIntervalMs: number;
  /** Called with the time waited so far, at most every `progressIntervalMs` (default 5 s). */
  progress?: (waitedMs: number) => void | Promise<void>;
  progressIntervalMs?: number;
  signal?: AbortSignal;
  /** What is waited for, for the OperationAbortedError of an abort. */
  what: string;
}

/**
 * Calls `check` until it returns true (then true), or until `timeoutMs` has passed (then
 * false); between two calls `progress`, then a pause that an abort ends at once.
 */
export async function pollUntil(
  check: () => Promise<boolean>,
  options: PollOptions,
): Promise<boolean> {
  const started = Date.now();
  let lastProgress = started;
  for (;;) {
    if (await check()) return true;
    const waited = Date.now() - started;
    if (waited >= options.timeoutMs) return false;
    if (Date.now() - lastProgress >= (options.progressIntervalMs ?? 5_000)) {
      lastProgress = Date.now();
      await options.progress?.(waited);
    }
    try {
      await sleep(options.pollIntervalMs, undefined, {
        signal: options.signal,
      });
    } catch (error) {
      if (options.signal?.aborted)
        throw new OperationAbortedError(`Cancelled while ${options.what}`);
      throw error;
    }
  }
}
