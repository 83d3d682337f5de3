import { combineSignals, mapLimit, sleep } from './async';
import { OperationAbortedError } from './errors';

// Tests of the transitional shim; they go with it (see async.ts). The retry policy that replaced
// util's retry() is tested with the HTTP layer (http/client.test.ts).

describe('mapLimit', () => {
  it('keeps order and never exceeds the limit', async () => {
    let inFlight = 0;
    let max = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (n, i) => {
      inFlight++;
      max = Math.max(max, inFlight);
      await sleep(n * 3);
      inFlight--;
      return n * 10 + i;
    });
    expect(out).toEqual([50, 11, 42, 23, 34]);
    expect(max).toBe(2);
  });

  it('rejects with the first error', async () => {
    await expect(
      mapLimit([1, 2, 3], 3, async n => {
        if (n === 2) throw new Error('two');
        return n;
      }),
    ).rejects.toThrow('two');
  });
});

describe('combineSignals', () => {
  it('aborts on timeout and says so', async () => {
    const { signal, dispose, timedOut } = combineSignals([], 10);
    await new Promise(r => signal.addEventListener('abort', r));
    expect(timedOut()).toBe(true);
    dispose();
  });

  it('aborts when a parent aborts', () => {
    const parent = new AbortController();
    const { signal, dispose, timedOut } = combineSignals(
      [parent.signal],
      10_000,
    );
    parent.abort();
    expect(signal.aborted).toBe(true);
    expect(timedOut()).toBe(false);
    dispose();
  });
});

describe('sleep', () => {
  it('rejects with OperationAbortedError when the signal aborts', async () => {
    const controller = new AbortController();
    const pending = sleep(10_000, controller.signal);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(OperationAbortedError);
  });
});
