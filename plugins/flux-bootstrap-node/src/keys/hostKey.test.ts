import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AddressInfo } from 'node:net';
import { Server } from 'ssh2';
import { InputValidationError, OperationAbortedError } from '../util/errors';
import {
  HostKeyMismatchError,
  HostKeyScanError,
  knownHostsFor,
  knownHostsHostField,
  parseKnownHosts,
  parseSshHost,
  scanHostKey,
} from './hostKey';

jest.setTimeout(60_000);

/**
 * A local SSH server (ssh2) with three host keys made by ssh-keygen. It records whether any
 * client ever reached authentication.
 */
let dir: string;
let server: Server;
let port: number;
const hostKeys: Record<string, { fingerprint: string; publicKey: string }> = {};
const events: string[] = [];

function keygen(type: string, extra: string[] = []) {
  const file = path.join(dir, `host_${type}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...extra,
    '-N',
    '',
    '-C',
    '',
    '-f',
    file,
  ]);
  const publicKey = fs
    .readFileSync(`${file}.pub`, 'utf8')
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
  const fingerprint = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], {
    encoding: 'utf8',
  }).split(' ')[1];
  hostKeys[publicKey.split(' ')[0]] = { fingerprint, publicKey };
  return fs.readFileSync(file);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hostkey-test-'));
  const keys = [
    keygen('ed25519'),
    keygen('ecdsa', ['-b', '256']),
    keygen('rsa', ['-b', '2048']),
  ];
  server = new Server({ hostKeys: keys }, client => {
    events.push('connection');
    client.on('authentication', ctx => {
      events.push(`authentication:${ctx.method}`);
      ctx.reject();
    });
    client.on('error', () => {});
    client.on('close', () => events.push('close'));
  });
  await new Promise<void>(resolve =>
    server.listen(0, '127.0.0.1', () => resolve()),
  );
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>(resolve => server.close(() => resolve()));
  fs.rmSync(dir, { recursive: true, force: true });
});

const count = (e: string) => events.filter(x => x === e).length;
/** Waits until the server saw every connection close: nothing more can arrive. */
async function connectionsClosed() {
  while (count('close') < count('connection'))
    await new Promise(r => setTimeout(r, 10));
}
beforeEach(async () => {
  await connectionsClosed();
  events.length = 0;
});

/** A TCP server that accepts and never says anything (not SSH, or a black hole). */
async function silentServer() {
  const sockets: net.Socket[] = [];
  const s = net.createServer(sock => sockets.push(sock));
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', () => resolve()));
  return {
    port: (s.address() as AddressInfo).port,
    close: () =>
      new Promise<void>(resolve => {
        sockets.forEach(x => x.destroy());
        s.close(() => resolve());
      }),
  };
}

describe('scanHostKey', () => {
  it('records the key the server presents and disconnects before authentication', async () => {
    const scanned = await scanHostKey({ sshHost: `127.0.0.1:${port}` });
    // ssh2 prefers Ed25519, as recent OpenSSH clients do.
    expect(scanned.type).toBe('ssh-ed25519');
    expect(scanned.publicKey).toBe(hostKeys['ssh-ed25519'].publicKey);
    expect(scanned.fingerprint).toBe(hostKeys['ssh-ed25519'].fingerprint);
    expect(scanned.knownHosts).toBe(
      `[127.0.0.1]:${port} ${hostKeys['ssh-ed25519'].publicKey}`,
    );
    await connectionsClosed();
    expect(events).toEqual(['connection', 'close']);
  });

  it('writes a known_hosts line OpenSSH finds for the host', async () => {
    const scanned = await scanHostKey({ sshHost: `127.0.0.1:${port}` });
    const file = path.join(dir, 'known_hosts');
    fs.writeFileSync(file, `${scanned.knownHosts}\n`);
    const out = execFileSync(
      'ssh-keygen',
      ['-F', `[127.0.0.1]:${port}`, '-f', file],
      { encoding: 'utf8' },
    );
    expect(out).toContain(hostKeys['ssh-ed25519'].publicKey);
  });

  it('finds a pinned key of another type by asking for the other key types', async () => {
    const rsa = hostKeys['ssh-rsa'];
    const scanned = await scanHostKey({
      sshHost: `127.0.0.1:${port}`,
      expectedFingerprint: rsa.fingerprint,
    });
    expect(scanned.type).toBe('ssh-rsa');
    expect(scanned.fingerprint).toBe(rsa.fingerprint);
    expect(scanned.knownHosts).toBe(`[127.0.0.1]:${port} ${rsa.publicKey}`);
    await connectionsClosed();
    // Three handshakes (Ed25519 refused, ECDSA refused, then RSA), no authentication in any.
    expect(count('connection')).toBe(3);
    expect(events.filter(e => e.startsWith('authentication'))).toEqual([]);
  });

  it('fails on a pinned fingerprint the server does not have, listing what it presented', async () => {
    const wrong = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    const error = await scanHostKey({
      sshHost: `127.0.0.1:${port}`,
      expectedFingerprint: wrong,
    }).catch(e => e);
    expect(error).toBeInstanceOf(HostKeyMismatchError);
    expect(error.message).toContain(wrong);
    for (const k of Object.values(hostKeys))
      expect(error.message).toContain(k.fingerprint);
  });

  it('times out on a server that never speaks SSH', async () => {
    const silent = await silentServer();
    try {
      const error = await scanHostKey({
        sshHost: `127.0.0.1:${silent.port}`,
        timeoutMs: 300,
      }).catch(e => e);
      expect(error).toBeInstanceOf(HostKeyScanError);
      expect(error.code).toBe('ETIMEDOUT');
      expect(error.message).toContain(`127.0.0.1:${silent.port}`);
    } finally {
      await silent.close();
    }
  });

  it('stops when the signal aborts', async () => {
    const silent = await silentServer();
    try {
      const c = new AbortController();
      const pending = scanHostKey({
        sshHost: `127.0.0.1:${silent.port}`,
        signal: c.signal,
      });
      setTimeout(() => c.abort(), 50);
      await expect(pending).rejects.toBeInstanceOf(OperationAbortedError);
    } finally {
      await silent.close();
    }
  });

  it('says so when nothing listens', async () => {
    const silent = await silentServer();
    const closedPort = silent.port;
    await silent.close();
    const error = await scanHostKey({
      sshHost: `127.0.0.1:${closedPort}`,
    }).catch(e => e);
    expect(error).toBeInstanceOf(HostKeyScanError);
    expect(error.message).toMatch(/refused/);
  });
});

describe('SSH host inputs', () => {
  it('parses host:port, [v6]:port and a bare host (port 22)', () => {
    expect(parseSshHost('bitbucket.example.com:7999')).toEqual({
      host: 'bitbucket.example.com',
      port: 7999,
    });
    expect(parseSshHost('BB.Example.com')).toEqual({
      host: 'bb.example.com',
      port: 22,
    });
    expect(parseSshHost('[::1]:2222')).toEqual({ host: '::1', port: 2222 });
    expect(parseSshHost('10.0.0.1:22')).toEqual({ host: '10.0.0.1', port: 22 });
  });

  it.each([
    '',
    'ssh://bb:7999',
    'git@bb:7999',
    'bb:0',
    'bb:70000',
    'bb:x',
    'bb/x:22',
    'b b:22',
    '[nothost]:22',
    '-bb:22',
  ])('refuses %j naming sshHost', value => {
    expect(() => parseSshHost(value)).toThrow(InputValidationError);
    expect(() => parseSshHost(value)).toThrow(
      expect.objectContaining({ field: 'sshHost' }),
    );
  });

  it('formats known_hosts hosts like OpenSSH', () => {
    expect(knownHostsHostField({ host: 'bb.example.com', port: 22 })).toBe(
      'bb.example.com',
    );
    expect(knownHostsHostField({ host: 'bb.example.com', port: 7999 })).toBe(
      '[bb.example.com]:7999',
    );
  });

  it('reads known_hosts entries per host', () => {
    const ed = hostKeys['ssh-ed25519'].publicKey;
    const text = `# comment\n[bb]:7999 ${ed}\nother ${ed}\n|1|hashed|x ${ed}\n`;
    expect(parseKnownHosts(text)).toHaveLength(2);
    expect(knownHostsFor(text, { host: 'bb', port: 7999 })).toEqual([
      expect.objectContaining({
        type: 'ssh-ed25519',
        fingerprint: hostKeys['ssh-ed25519'].fingerprint,
      }),
    ]);
    expect(knownHostsFor(text, { host: 'bb', port: 22 })).toEqual([]);
  });
});
