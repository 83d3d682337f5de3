import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretScanner } from './scanner';

// The suite's "zero occurrences" only means something if the scanner finds every form a secret
// can leak in; these cases prove it does, and that public key material is not mistaken for it.
describe('SecretScanner', () => {
  const token = 'CANARY-bb-0123456789abcdef0123456789abcdef01234567';

  function scanner() {
    const s = new SecretScanner();
    s.add('token', token, { usernames: ['demo'] });
    return s;
  }

  it.each([
    ['raw', `Authorization: Bearer ${token}`],
    ['JSON-escaped', JSON.stringify({ message: `"${token}"` })],
    ['URL-encoded', `https://x/?t=${encodeURIComponent(`a b ${token}`)}`],
    ['base64', Buffer.from(token).toString('base64')],
    [
      'Basic auth',
      `Authorization: Basic ${Buffer.from(`demo:${token}`).toString('base64')}`,
    ],
    ['a truncated fragment', `token ${token.slice(5, 25)}…`],
  ])('finds a secret written %s', (_form, text) => {
    const s = scanner();
    expect(s.scan('test: case', text)).toHaveLength(1);
    expect(s.findings()[0].context).toContain('«token»');
    expect(s.findings()[0].context).not.toContain(token.slice(10, 26));
  });

  it('finds nothing in clean text, and counts what it scanned', () => {
    const s = scanner();
    expect(
      s.scan('logs: a', 'Using the token input for Bitbucket 127.0.0.1:7990'),
    ).toEqual([]);
    expect(s.scan('logs: b', undefined)).toEqual([]);
    expect(s.stats()).toEqual({ logs: { items: 2, bytes: 50 } });
  });

  it('finds private key material however it is wrapped, but not the public key it embeds', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scanner-test-'));
    try {
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        '',
        '-C',
        '',
        '-f',
        path.join(dir, 'k'),
      ]);
      const pem = fs.readFileSync(path.join(dir, 'k'), 'utf8');
      const pub = fs.readFileSync(path.join(dir, 'k.pub'), 'utf8').trim();
      const s = new SecretScanner();
      s.addPrivateKey('key', pem, pub);
      // The public key (access keys, identity.pub, logs) is not a leak.
      expect(s.scan('access keys: pub', `{"text":"${pub} flux"}`)).toEqual([]);
      // The private key in a JSON string (\n escapes), re-wrapped, or a single inner line is.
      expect(
        s.scan('events: json', JSON.stringify({ error: pem })),
      ).toHaveLength(1);
      const body = pem
        .split('\n')
        .filter(l => l && !l.startsWith('-----'))
        .join('');
      expect(
        s.scan('logs: rewrapped', body.replace(/(.{50})/g, '$1\n')),
      ).toHaveLength(1);
      expect(
        s.scan('logs: base64', Buffer.from(pem).toString('base64')),
      ).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
