import { generateKeyPairSync } from 'node:crypto';
import { Redactor, redactCredentialPatterns } from './redact';

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
