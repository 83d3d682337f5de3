import fs from 'node:fs';
import path from 'node:path';
import { canConnect } from '../common/net';
import { run } from '../common/process';
import { isRoot } from '../common/fs';
import { tempDirs } from '../git/testUtils';
import { startSshd, sshFingerprint } from './sshd';
import { newKey } from './testKeys';

jest.setTimeout(60_000);

const sshArgs = (key: string, knownHosts: string, port: number) => [
  '-F',
  '/dev/null',
  '-i',
  key,
  '-p',
  String(port),
  '-o',
  'IdentitiesOnly=yes',
  '-o',
  'BatchMode=yes',
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  `UserKnownHostsFile=${knownHosts}`,
  '-o',
  'GlobalKnownHostsFile=/dev/null',
  '-o',
  'ConnectTimeout=10',
];

describe('startSshd (real OpenSSH sshd)', () => {
  const tmp = tempDirs();
  afterAll(() => tmp.cleanup());

  it('serves its ed25519, ecdsa and rsa host keys with the reported fingerprints', async () => {
    const sshd = await startSshd();
    try {
      expect(sshd.host).toBe(`127.0.0.1:${sshd.port}`);
      expect(sshd.hostKeys.map(k => k.type)).toEqual([
        'ssh-ed25519',
        'ecdsa-sha2-nistp256',
        'ssh-rsa',
      ]);
      const scan = await run('ssh-keyscan', [
        '-p',
        String(sshd.port),
        '-t',
        'ed25519,ecdsa,rsa',
        '127.0.0.1',
      ]);
      const scanned = scan.stdout
        .split('\n')
        .filter(l => l && !l.startsWith('#'))
        .map(l => l.split(' ').slice(1).join(' '))
        .sort();
      expect(scanned).toEqual(sshd.hostKeys.map(k => k.publicKey).sort());
      for (const k of sshd.hostKeys) {
        const dir = tmp.make();
        fs.writeFileSync(path.join(dir, 'k.pub'), `${k.publicKey}\n`);
        const { stdout } = await run('ssh-keygen', [
          '-l',
          '-E',
          'sha256',
          '-f',
          path.join(dir, 'k.pub'),
        ]);
        expect(stdout.split(' ')[1]).toBe(k.fingerprint);
        expect(sshFingerprint(k.publicKey.split(' ')[1])).toBe(k.fingerprint);
      }
      expect(sshd.knownHosts.trim().split('\n')).toHaveLength(3);
    } finally {
      await sshd.stop();
    }
  });

  it('replaces its host keys on the same port (a re-keyed server): new connections see the new keys', async () => {
    const sshd = await startSshd();
    const scan = async () =>
      (
        await run('ssh-keyscan', [
          '-p',
          String(sshd.port),
          '-t',
          'ed25519,ecdsa,rsa',
          '127.0.0.1',
        ])
      ).stdout
        .split('\n')
        .filter(l => l && !l.startsWith('#'))
        .map(l => l.split(' ').slice(1).join(' '))
        .sort();
    try {
      const before = sshd.hostKeys.map(k => k.publicKey).sort();
      const knownBefore = sshd.knownHosts;
      expect(await scan()).toEqual(before);
      const replaced = await sshd.replaceHostKeys();
      const after = replaced.map(k => k.publicKey).sort();
      expect(sshd.hostKeys.map(k => k.publicKey).sort()).toEqual(after);
      for (const k of after) expect(before).not.toContain(k);
      expect(await scan()).toEqual(after);
      expect(sshd.knownHosts).not.toBe(knownBefore);
      expect(sshd.knownHosts).toContain(
        `[127.0.0.1]:${sshd.port} ${replaced[0].publicKey}`,
      );
    } finally {
      await sshd.stop();
    }
  });

  it('accepts only authorised keys, runs their forced command, and checks the host key', async () => {
    const dir = tmp.make();
    const good = await newKey(dir, 'good');
    const stranger = await newKey(dir, 'stranger');
    const sshd = await startSshd({
      authorizedKeys: `command="echo forced:$SSH_ORIGINAL_COMMAND",restrict ${good.pub}\n`,
    });
    try {
      const kh = path.join(dir, 'known_hosts');
      fs.writeFileSync(kh, sshd.knownHosts);
      const ok = await run(
        'ssh',
        [
          ...sshArgs(good.file, kh, sshd.port),
          `${sshd.user}@127.0.0.1`,
          'hello',
        ],
        { check: false },
      );
      expect(ok.stdout.trim()).toBe('forced:hello');
      const refused = await run(
        'ssh',
        [
          ...sshArgs(stranger.file, kh, sshd.port),
          `${sshd.user}@127.0.0.1`,
          'hello',
        ],
        { check: false },
      );
      expect(refused.code).toBe(255);
      expect(refused.stderr).toMatch(/Permission denied \(publickey\)/);
      const otherKh = path.join(dir, 'wrong_known_hosts');
      fs.writeFileSync(otherKh, `[127.0.0.1]:${sshd.port} ${stranger.pub}\n`);
      const spoofed = await run(
        'ssh',
        [
          ...sshArgs(good.file, otherKh, sshd.port),
          `${sshd.user}@127.0.0.1`,
          'hello',
        ],
        { check: false },
      );
      expect(spoofed.code).toBe(255);
      expect(spoofed.stderr).toMatch(/Host key verification failed/);
    } finally {
      await sshd.stop();
    }
  });

  it('asks its AuthorizedKeysCommand (root-owned, safe path) for keys; without root it falls back to the file', async () => {
    const dir = tmp.make();
    const key = await newKey(dir, 'cmdkey');
    const blob = key.pub.split(' ')[1];
    const sshd = await startSshd({
      authorizedKeysCommand: `#!/bin/sh\n[ "$3" = "${blob}" ] && echo "command=\\"echo via-command:$1:$2\\",restrict ${key.pub}"\nexit 0\n`,
      authorizedKeys: `command="echo via-file",restrict ${key.pub}\n`,
    });
    try {
      expect(sshd.usesAuthorizedKeysCommand).toBe(isRoot());
      // sshd refuses a command whose path has a component not owned by root or writable by others
      const unsafe: string[] = [];
      for (let d = sshd.dir; d !== '/'; d = path.dirname(d)) {
        const st = fs.statSync(d);
        if (st.uid !== 0 || (st.mode & 0o022) !== 0) unsafe.push(d);
      }
      expect(unsafe).toEqual(isRoot() ? [] : unsafe);
      const kh = path.join(dir, 'known_hosts');
      fs.writeFileSync(kh, sshd.knownHosts);
      const ok = await run(
        'ssh',
        [...sshArgs(key.file, kh, sshd.port), `${sshd.user}@127.0.0.1`, 'x'],
        { check: false },
      );
      expect(ok.stdout.trim()).toBe(
        isRoot() ? `via-command:${sshd.user}:ssh-ed25519` : 'via-file',
      );
    } finally {
      await sshd.stop();
    }
  });

  it('stop() ends its own process, closes the port and removes its folder', async () => {
    // Host keys of its own: the freed port may be taken at once by a parallel test's sshd, which
    // shares the cached host keys; what must be gone is this one.
    const sshd = await startSshd({ freshHostKeys: true });
    const pid = sshd.pid;
    const ownKeys = sshd.hostKeys.map(k => k.publicKey);
    expect(ownKeys).toHaveLength(3);
    expect(() => process.kill(pid, 0)).not.toThrow();
    expect(await canConnect(sshd.port)).toBe(true);
    await sshd.stop();
    const scan = (await canConnect(sshd.port))
      ? await run(
          'ssh-keyscan',
          ['-p', String(sshd.port), '-t', 'ed25519,ecdsa,rsa', '127.0.0.1'],
          { check: false },
        )
      : { stdout: '' };
    const served = scan.stdout
      .split('\n')
      .map(l => l.split(' ').slice(1).join(' '));
    expect(served.filter(k => ownKeys.includes(k))).toEqual([]);
    expect(fs.existsSync(sshd.dir)).toBe(false);
    expect(() => process.kill(pid, 0)).toThrow();
  });
});
