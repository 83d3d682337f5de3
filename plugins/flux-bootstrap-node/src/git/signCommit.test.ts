import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { signCommit } from './session';

/*
 * Signed commits must verify with gpg every time, not most of the time: the signer used before
 * (@isomorphic-git/pgp-plugin) wrote about one signature in 150-250 that gpg rejects as BAD.
 * Many payloads, each checked by gpg itself.
 */
jest.setTimeout(120_000);

let home: string;
let secretKey: string;
const gpg = (args: string[]) =>
  execFileSync('gpg', ['--batch', '--pinentry-mode', 'loopback', ...args], {
    env: { ...process.env, GNUPGHOME: home },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });

beforeAll(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'sign-commit-'));
  gpg([
    '--passphrase',
    '',
    '--quick-gen-key',
    'Signer <s@example.com>',
    'rsa2048',
    'sign',
    'never',
  ]);
  secretKey = gpg(['--passphrase', '', '--armor', '--export-secret-keys']);
});

afterAll(() => {
  execFileSync('gpgconf', ['--kill', 'gpg-agent'], {
    env: { ...process.env, GNUPGHOME: home },
    stdio: 'ignore',
  });
  fs.rmSync(home, { recursive: true, force: true });
});

it('writes signatures gpg verifies, for 300 different commit payloads', async () => {
  const bad: number[] = [];
  for (let i = 0; i < 300; i++) {
    const payload = `tree ${randomBytes(20).toString('hex')}\nauthor Flux <> ${
      1_700_000_000 + i
    } +0000\ncommitter Flux <> ${
      1_700_000_000 + i
    } +0000\n\nAdd Flux sync manifests\n`;
    const { signature } = await signCommit({ payload, secretKey });
    const dir = fs.mkdtempSync(path.join(home, 'c-'));
    fs.writeFileSync(path.join(dir, 'payload'), payload);
    fs.writeFileSync(path.join(dir, 'payload.asc'), signature);
    try {
      gpg([
        '--verify',
        path.join(dir, 'payload.asc'),
        path.join(dir, 'payload'),
      ]);
    } catch {
      bad.push(i);
    }
  }
  expect(bad).toEqual([]);
});
