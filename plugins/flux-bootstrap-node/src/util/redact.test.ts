import { generateKeyPairSync } from 'node:crypto';
import { Redactor, redactCredentialPatterns } from './redact';
import { retry, mapLimit, sleep, combineSignals } from './async';
import { OperationAbortedError } from './errors';

describe('Redactor', () => {
  const canary = 'canary-token-5f1d2c9a';

  it('masks the secret and its base64 and URL-encoded forms', () => {
    const r = new Redactor([canary]);
    const b64 = Buffer.from(canary).toString('base64');
    const text = `a ${canary} b ${b64} c ${encodeURIComponent(canary)}`;
    expect(r.redact(text)).not.toContain(canary);
    expect(r.redact(text)).not.toContain(b64);
  });

  it('masks Authorization headers and URL credentials it was never told about', () => {
    const text =
      'GET https://alice:s3cr3t-pw@bb.example.com/scm/x.git Authorization: Bearer abcdefghijklmnop';
    const out = redactCredentialPatterns(text);
    expect(out).not.toContain('s3cr3t-pw');
    expect(out).not.toContain('abcdefghijklmnop');
    expect(out).toContain('https://alice:***@bb.example.com');
  });

  it('masks PEM private keys, whole and line by line', () => {
    // A throwaway key made here: no key material is committed.
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-384' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString()
      .trim();
    const r = new Redactor([pem]);
    const secondLine = pem.split('\n')[1];
    expect(r.redact(`key: ${pem}`)).not.toContain(secondLine);
    expect(r.redact(`only a line: ${secondLine}`)).not.toContain(secondLine);
    expect(redactCredentialPatterns(pem)).not.toContain(secondLine);
  });

  it('redacts errors and keeps their status', () => {
    const err = Object.assign(new Error(`boom ${canary}`), { status: 401 });
    const safe = new Redactor([canary]).redactError(err);
    expect(safe.message).toBe('boom ***');
    expect(safe.stack).not.toContain(canary);
    expect((safe as any).status).toBe(401);
  });

  it('wraps a logger', () => {
    const lines: string[] = [];
    const log = (m: string, meta?: unknown) =>
      lines.push(m + (meta ? JSON.stringify(meta) : ''));
    const logger = new Redactor([canary]).wrapLogger({
      info: log,
      warn: log,
      error: log,
      debug: log,
    });
    logger.info(`token ${canary}`, { header: `Bearer ${canary}` });
    logger.error('failed', new Error(canary));
    expect(lines.join('\n')).not.toContain(canary);
    expect(lines).toHaveLength(2);
  });
});

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
