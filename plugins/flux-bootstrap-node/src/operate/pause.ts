import { setTimeout as sleep } from 'node:timers/promises';
import { OperationAbortedError } from '../util/errors';

/** Waits `ms` between two polls; an abort ends the wait with an OperationAbortedError naming `what`. */
export async function pause(
  ms: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<void> {
  try {
    await sleep(ms, undefined, { signal });
  } catch (error) {
    if (signal?.aborted)
      throw new OperationAbortedError(`Cancelled while ${what}`);
    throw error;
  }
}
