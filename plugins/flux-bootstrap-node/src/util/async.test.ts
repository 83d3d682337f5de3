import { retry, mapLimit, sleep, combineSignals } from './async';
import { OperationAbortedError } from './errors';

describe('retry', () => {
  it('retries until success and reports each retry', async () => {
    const seen: number[] = [];
    const result = await retry(
      async attempt => {
        if (attempt < 2) throw new Error(`fail ${attempt}`);
        return 'ok';
      },
      {
        retries: 3,
        baseDelayMs: 1,
        maxDelayMs: 5,
        shouldRetry: () => true,
        onRetry: (_e, attempt) => seen.push(attempt),
      },
    );
    expect(result).toBe('ok');
    expect(seen).toEqual([1, 2]);
  });

  it('does not retry when told not to, and gives up after the bound', async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('no');
        },
        { retries: 5, baseDelayMs: 1, maxDelayMs: 1, shouldRetry: () => false },
      ),
    ).rejects.toThrow('no');
    expect(calls).toBe(1);
    calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error('again');
        },
        { retries: 2, baseDelayMs: 1, maxDelayMs: 1, shouldRetry: () => true },
      ),
    ).rejects.toThrow('again');
    expect(calls).toBe(3);
  });

  it('honours an imposed delay and the abort signal', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    await expect(
      retry(
        async () => {
          throw new Error('busy');
        },
        {
          retries: 3,
          baseDelayMs: 1,
          maxDelayMs: 10_000,
          signal: controller.signal,
          shouldRetry: () => ({ delayMs: 5_000 }),
        },
      ),
    ).rejects.toBeInstanceOf(OperationAbortedError);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

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
