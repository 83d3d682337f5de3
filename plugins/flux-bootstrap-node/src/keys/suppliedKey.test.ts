import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputValidationError } from '../util/errors';
import { readSuppliedSshKey } from './suppliedKey';

// Keys written by the real ssh-keygen in every format a user may paste; the derived public key
// and fingerprint must be what ssh-keygen itself says.
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'supplied-key-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const PASSPHRASE = 'canary-passphrase-3f9a1c';
const names = {
  keyField: 'sshPrivateKeySecret',
  passphraseField: 'sshPassphraseSecret',
  keySecret: 'sshPrivateKey',
  passphraseSecret: 'sshPassphrase',
};

interface Generated {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}

function keygen(
  name: string,
  args: string[],
  passphrase: string,
  format?: 'PEM' | 'PKCS8',
): Generated {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', [
    '-q',
    ...args,
    ...(format ? ['-m', format] : []),
    '-N',
    passphrase,
    '-C',
    'user@laptop',
    '-f',
    file,
  ]);
  return {
    privateKey: fs.readFileSync(file, 'utf8'),
    publicKey: fs
      .readFileSync(`${file}.pub`, 'utf8')
      .trim()
      .split(' ')
      .slice(0, 2)
      .join(' '),
    fingerprint: execFileSync('ssh-keygen', ['-lf', `${file}.pub`], {
      encoding: 'utf8',
    }).split(' ')[1],
  };
}

function errorOf(fn: () => unknown): InputValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputValidationError);
    return e as InputValidationError;
  }
  throw new Error('expected an error');
}

describe('readSuppliedSshKey', () => {
  const cases: [string, string[], 'PEM' | 'PKCS8' | undefined][] = [
    ['ed25519 OpenSSH', ['-t', 'ed25519'], undefined],
    ['ecdsa P-384 OpenSSH', ['-t', 'ecdsa', '-b', '384'], undefined],
    ['rsa 3072 OpenSSH', ['-t', 'rsa', '-b', '3072'], undefined],
    ['ecdsa P-256 PEM (SEC1)', ['-t', 'ecdsa', '-b', '256'], 'PEM'],
    ['rsa 2048 PEM (PKCS#1)', ['-t', 'rsa', '-b', '2048'], 'PEM'],
  ];

  it.each(cases)(
    '%s: encrypted and plain, the public key and fingerprint are those ssh-keygen prints',
    (label, args, format) => {
      const slug = label.replace(/\W+/g, '-');
      const encrypted = keygen(`${slug}-enc`, args, PASSPHRASE, format);
      const plain = keygen(`${slug}-plain`, args, '', format);

      const e = readSuppliedSshKey(encrypted.privateKey, PASSPHRASE, names);
      expect(e).toMatchObject({
        publicKey: encrypted.publicKey,
        fingerprint: encrypted.fingerprint,
        type: encrypted.publicKey.split(' ')[0],
        encrypted: true,
        passphrase: PASSPHRASE,
        passphraseIgnored: false,
      });
      // The key is kept as supplied (flux writes the raw --private-key-file).
      expect(e.privateKey).toBe(encrypted.privateKey);

      const p = readSuppliedSshKey(plain.privateKey, undefined, names);
      expect(p).toMatchObject({
        publicKey: plain.publicKey,
        fingerprint: plain.fingerprint,
        encrypted: false,
        passphraseIgnored: false,
      });
      expect(p.passphrase).toBeUndefined();
    },
  );

  it('reads unencrypted PKCS#8 (the format flux:generate-key writes) for every algorithm', () => {
    for (const [name, args] of [
      ['p8-ecdsa', ['-t', 'ecdsa', '-b', '384']],
      ['p8-rsa', ['-t', 'rsa', '-b', '2048']],
    ] as const) {
      const k = keygen(name, [...args], '', 'PKCS8');
      expect(k.privateKey).toContain('-----BEGIN PRIVATE KEY-----');
      expect(readSuppliedSshKey(k.privateKey, undefined, names)).toMatchObject({
        publicKey: k.publicKey,
        fingerprint: k.fingerprint,
      });
    }
  });

  it('normalises CRLF and surrounding blank lines of a pasted key, and nothing else', () => {
    const k = keygen('crlf', ['-t', 'ed25519'], PASSPHRASE);
    const pasted = `\r\n  ${k.privateKey.replace(/\n/g, '\r\n')}\r\n\r\n`;
    const read = readSuppliedSshKey(pasted, PASSPHRASE, names);
    expect(read.privateKey).toBe(k.privateKey);
    expect(read.publicKey).toBe(k.publicKey);
  });

  it('needs the passphrase of an encrypted key, naming the passphrase input', () => {
    const k = keygen('needs-pass', ['-t', 'ed25519'], PASSPHRASE);
    const pem = keygen('needs-pass-pem', ['-t', 'rsa'], PASSPHRASE, 'PEM');
    for (const key of [k.privateKey, pem.privateKey]) {
      for (const missing of [undefined, '']) {
        const e = errorOf(() => readSuppliedSshKey(key, missing, names));
        expect(e.field).toBe('sshPassphraseSecret');
        expect(e.message).toMatch(
          /is needed: the private key in the task secret "sshPrivateKey" is encrypted/,
        );
      }
    }
  });

  it('refuses a wrong passphrase, naming the passphrase input and never echoing it', () => {
    const k = keygen('wrong-pass', ['-t', 'ecdsa'], PASSPHRASE);
    const pem = keygen('wrong-pass-pem', ['-t', 'ecdsa'], PASSPHRASE, 'PEM');
    for (const key of [k.privateKey, pem.privateKey]) {
      const e = errorOf(() =>
        readSuppliedSshKey(key, 'not-the-canary-passphrase', names),
      );
      expect(e.field).toBe('sshPassphraseSecret');
      expect(e.message).toMatch(
        /the task secret "sshPassphrase" does not decrypt the private key in the task secret "sshPrivateKey" \(wrong passphrase\)/,
      );
      expect(e.message).not.toContain('not-the-canary-passphrase');
      for (const line of key.split('\n').filter(l => l.length > 16)) {
        expect(e.message).not.toContain(line);
      }
    }
  });

  it('does not keep a passphrase the key does not need', () => {
    const k = keygen('plain-with-pass', ['-t', 'ed25519'], '');
    const read = readSuppliedSshKey(k.privateKey, PASSPHRASE, names);
    expect(read).toMatchObject({
      encrypted: false,
      passphraseIgnored: true,
      publicKey: k.publicKey,
    });
    expect(read.passphrase).toBeUndefined();
  });

  it('refuses encrypted PKCS#8 (Flux cannot read it) and says how to convert it', () => {
    const k = keygen('p8-enc', ['-t', 'ecdsa'], PASSPHRASE, 'PKCS8');
    expect(k.privateKey).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----');
    const e = errorOf(() =>
      readSuppliedSshKey(k.privateKey, PASSPHRASE, names),
    );
    expect(e.field).toBe('sshPrivateKeySecret');
    expect(e.message).toMatch(/encrypted PKCS#8.*ssh-keygen -p -f/);
  });

  it('refuses a missing key, a public key, garbage and a truncated key, naming the key input', () => {
    const k = keygen('bad', ['-t', 'ed25519'], '');
    const lines = k.privateKey.trim().split('\n');
    const truncated = [...lines.slice(0, 2), lines[lines.length - 1]].join(
      '\n',
    );
    for (const [value, message] of [
      [undefined, /"sshPrivateKey" is empty or missing/],
      ['  \n', /"sshPrivateKey" is empty or missing/],
      [`${k.publicKey} user@laptop`, /holds a public key/],
      ['hello', /is not an SSH private key/],
      [
        '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
        /is not an SSH private key/,
      ],
      [truncated, /is not a readable OpenSSH private key/],
      [
        '-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END RSA PRIVATE KEY-----',
        /is not a readable PEM private key/,
      ],
    ] as [string | undefined, RegExp][]) {
      const e = errorOf(() => readSuppliedSshKey(value, undefined, names));
      expect(e.field).toBe('sshPrivateKeySecret');
      expect(e.message).toMatch(message);
    }
  });
});
