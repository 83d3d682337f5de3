import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isRoot, makeTempDir, removeDir, writeFileMode } from '../common/fs';
import { canConnect, freePort } from '../common/net';
import { ManagedProcess, run, spawnManaged, waitFor } from '../common/process';

export const SSHD_BINARY = '/usr/sbin/sshd';
const HOST_KEY_TYPES = ['ed25519', 'ecdsa', 'rsa'] as const;

/** A host key of the sshd. */
export interface SshHostKey {
  /** e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa` */
  type: string;
  /** `type base64` */
  publicKey: string;
  /** OpenSSH fingerprint `SHA256:…` */
  fingerprint: string;
}

export interface SshdOptions {
  /** Login user that may connect (default: `git` when running as root, else the current user). */
  user?: string;
  /**
   * Content of an `AuthorizedKeysCommand` script (needs root: sshd requires it and every folder
   * above it to be root-owned and not group/world writable). Called as `<script> %u %t %k`
   * (user, key type, base64 key) and must print authorized_keys lines.
   */
  authorizedKeysCommand?: string;
  /** User the command runs as (default `nobody`). */
  authorizedKeysCommandUser?: string;
  /** Static authorized_keys content (used when no command is given, or when not root). */
  authorizedKeys?: string;
  /** Extra executable files written next to the config (e.g. a forced command), name → content. */
  scripts?: Record<string, string>;
  /** Generate new host keys instead of reusing the per-machine cached ones (RSA takes ~1 s). */
  freshHostKeys?: boolean;
}

/** A running OpenSSH sshd. */
export interface SshdInstance {
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  user: string;
  /** PID of the sshd listener process. */
  pid: number;
  hostKeys: SshHostKey[];
  /** known_hosts lines for all host keys, e.g. `[127.0.0.1]:2222 ssh-ed25519 AAAA…`. */
  knownHosts: string;
  /** Folder holding the config and scripts (root-owned, not writable by others, when root). */
  dir: string;
  /** Absolute path of a script given in `scripts`. */
  scriptPath(name: string): string;
  /** Replaces the static authorized_keys file. */
  setAuthorizedKeys(content: string): void;
  /** Whether `AuthorizedKeysCommand` is in use (false: the static file is). */
  usesAuthorizedKeysCommand: boolean;
  /**
   * Replaces the host keys with freshly generated ones, on the same port (a server re-keyed, or a
   * man in the middle): sshd re-executes itself per connection and loads the new keys. Updates
   * `hostKeys` and `knownHosts` in place.
   */
  replaceHostKeys(): Promise<SshHostKey[]>;
  /** sshd's own log (stderr, `-e`). */
  output(): string;
  stop(): Promise<void>;
}

/** OpenSSH fingerprint of a public key blob. */
export function sshFingerprint(base64Blob: string): string {
  const digest = crypto
    .createHash('sha256')
    .update(Buffer.from(base64Blob, 'base64'))
    .digest('base64');
  return `SHA256:${digest.replace(/=+$/, '')}`;
}

/** The login user of the SSH peers: `git` when running as root, else the current user. */
export function defaultSshUser(): string {
  return isRoot() ? 'git' : os.userInfo().username;
}

/**
 * Makes sure the `git` login user exists and is usable for public-key logins (root only):
 * an account with a locked password (`!`) is refused by sshd when PAM is off, so its password
 * field is set to `*` (no password, not locked). The install script does the same.
 */
export async function ensureGitUser(name = 'git'): Promise<void> {
  if (!isRoot()) return;
  const home = '/var/lib/flux-bootstrap-git';
  const exists = await run('getent', ['passwd', name], { check: false });
  if (exists.code !== 0) {
    fs.mkdirSync(home, { recursive: true, mode: 0o755 });
    await run('useradd', [
      '--system',
      '--shell',
      '/bin/sh',
      '--home-dir',
      home,
      '--no-create-home',
      name,
    ]);
    await run('chown', [`${name}:`, home]);
  }
  const shadow = await run('getent', ['shadow', name], { check: false });
  const pw = shadow.stdout.split(':')[1] ?? '';
  if (pw.startsWith('!')) await run('usermod', ['-p', '*', name]);
}

/** A folder for sshd files whose path components are all root-owned and not writable by others. */
function safeBaseDir(): string {
  if (!isRoot()) return makeTempDir('peer-sshd');
  for (const base of [
    '/run/flux-bootstrap-test',
    '/var/lib/flux-bootstrap-test',
  ]) {
    try {
      fs.mkdirSync(base, { recursive: true, mode: 0o755 });
      fs.chmodSync(base, 0o755);
      const dir = fs.mkdtempSync(path.join(base, 'sshd-'));
      fs.chmodSync(dir, 0o755);
      return dir;
    } catch {
      // try the next location
    }
  }
  throw new Error(
    'cannot create a root-owned folder for sshd in /run or /var/lib',
  );
}

let cachedKeys: Promise<string> | undefined;

/** Host keys generated once per machine (RSA generation is slow) in a private cache folder. */
function hostKeyCache(): Promise<string> {
  cachedKeys ??= (async () => {
    const dir = path.join(
      os.homedir(),
      '.cache',
      'flux-bootstrap-test',
      'ssh-host-keys-v1',
    );
    if (
      HOST_KEY_TYPES.every(t =>
        fs.existsSync(path.join(dir, `ssh_host_${t}_key.pub`)),
      )
    )
      return dir;
    fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o700 });
    const tmp = fs.mkdtempSync(`${dir}.tmp-`);
    await generateHostKeys(tmp);
    try {
      fs.renameSync(tmp, dir);
    } catch {
      removeDir(tmp); // another process won the race; use its keys
    }
    return dir;
  })();
  return cachedKeys;
}

async function generateHostKeys(dir: string): Promise<void> {
  await Promise.all(
    HOST_KEY_TYPES.map(t =>
      run('ssh-keygen', [
        '-q',
        '-t',
        t,
        ...(t === 'rsa' ? ['-b', '3072'] : []),
        '-N',
        '',
        '-C',
        `flux-bootstrap-test-${t}`,
        '-f',
        path.join(dir, `ssh_host_${t}_key`),
      ]),
    ),
  );
}

/**
 * Starts the real OpenSSH daemon (`/usr/sbin/sshd -D -e -f <config>`) on 127.0.0.1 on a free
 * port with its own host keys (ed25519, ecdsa, rsa). Only public-key authentication of one
 * login user is allowed; keys come from an `AuthorizedKeysCommand` (root) or a static file.
 */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdInstance> {
  if (!fs.existsSync(SSHD_BINARY)) {
    throw new Error(
      `${SSHD_BINARY} not found: install the openssh-server package (test/peers/scripts/install-system-deps.sh)`,
    );
  }
  const root = isRoot();
  const user = opts.user ?? defaultSshUser();
  if (root && user === 'git') await ensureGitUser('git');
  if (root) fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // privilege separation folder
  const dir = safeBaseDir();
  try {
    const keySource = opts.freshHostKeys ? dir : await hostKeyCache();
    if (opts.freshHostKeys) await generateHostKeys(dir);
    const hostKeys: SshHostKey[] = [];
    const readHostKeys = () =>
      HOST_KEY_TYPES.map(t => {
        const [type, blob] = fs
          .readFileSync(path.join(dir, `ssh_host_${t}_key.pub`), 'utf8')
          .trim()
          .split(/\s+/);
        return {
          type,
          publicKey: `${type} ${blob}`,
          fingerprint: sshFingerprint(blob),
        };
      });
    for (const t of HOST_KEY_TYPES) {
      const priv = path.join(dir, `ssh_host_${t}_key`);
      if (keySource !== dir) {
        writeFileMode(
          priv,
          fs.readFileSync(path.join(keySource, `ssh_host_${t}_key`)),
          0o600,
        );
        fs.copyFileSync(
          path.join(keySource, `ssh_host_${t}_key.pub`),
          `${priv}.pub`,
        );
      }
      const [type, blob] = fs
        .readFileSync(`${priv}.pub`, 'utf8')
        .trim()
        .split(/\s+/);
      hostKeys.push({
        type,
        publicKey: `${type} ${blob}`,
        fingerprint: sshFingerprint(blob),
      });
    }
    for (const [name, content] of Object.entries(opts.scripts ?? {})) {
      writeFileMode(path.join(dir, name), content, 0o755);
    }
    const useCommand = !!opts.authorizedKeysCommand && root;
    const authorizedKeysFile = path.join(dir, 'authorized_keys');
    writeFileMode(authorizedKeysFile, opts.authorizedKeys ?? '', 0o644);
    if (useCommand)
      writeFileMode(
        path.join(dir, 'authorized-keys-command'),
        opts.authorizedKeysCommand!,
        0o755,
      );

    let lastError = '';
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const config = [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        ...HOST_KEY_TYPES.map(
          t => `HostKey ${path.join(dir, `ssh_host_${t}_key`)}`,
        ),
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        'UsePAM no',
        'PubkeyAuthentication yes',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'HostbasedAuthentication no',
        'PermitRootLogin no',
        `AllowUsers ${user}`,
        'StrictModes no',
        ...(useCommand
          ? [
              'AuthorizedKeysFile none',
              `AuthorizedKeysCommand ${path.join(
                dir,
                'authorized-keys-command',
              )} %u %t %k`,
              `AuthorizedKeysCommandUser ${
                opts.authorizedKeysCommandUser ?? 'nobody'
              }`,
            ]
          : [`AuthorizedKeysFile ${authorizedKeysFile}`]),
        'AcceptEnv GIT_PROTOCOL',
        'AllowTcpForwarding no',
        'AllowAgentForwarding no',
        'X11Forwarding no',
        'PermitTTY no',
        'PrintMotd no',
        'PrintLastLog no',
        'MaxStartups 64:30:128',
        'MaxSessions 32',
        'LoginGraceTime 30',
        'LogLevel VERBOSE',
        '',
      ].join('\n');
      const configFile = path.join(dir, 'sshd_config');
      writeFileMode(configFile, config, 0o644);
      const proc: ManagedProcess = spawnManaged(SSHD_BINARY, [
        '-D',
        '-e',
        '-f',
        configFile,
      ]);
      try {
        await waitFor(
          `sshd on port ${port}`,
          async () => {
            if (proc.exited())
              throw new Error(`sshd exited: ${proc.output().trim()}`);
            return (
              /Server listening on 127\.0\.0\.1 port/.test(proc.output()) &&
              (await canConnect(port))
            );
          },
          { timeoutMs: 10_000, intervalMs: 10 },
        );
      } catch (e) {
        lastError = String(e);
        await proc.stop();
        if (/Address already in use/.test(proc.output())) continue;
        throw new Error(`sshd did not start: ${lastError}`);
      }
      const host = `127.0.0.1:${port}`;
      const knownHostsOf = (keys: SshHostKey[]) =>
        keys.map(k => `[127.0.0.1]:${port} ${k.publicKey}\n`).join('');
      const instance: SshdInstance = {
        host,
        port,
        user,
        pid: proc.pid,
        hostKeys,
        knownHosts: knownHostsOf(hostKeys),
        async replaceHostKeys() {
          for (const t of HOST_KEY_TYPES) {
            for (const f of [`ssh_host_${t}_key`, `ssh_host_${t}_key.pub`]) {
              fs.rmSync(path.join(dir, f), { force: true });
            }
          }
          await generateHostKeys(dir);
          hostKeys.splice(0, hostKeys.length, ...readHostKeys());
          instance.knownHosts = knownHostsOf(hostKeys);
          return hostKeys;
        },
        dir,
        scriptPath: name => path.join(dir, name),
        setAuthorizedKeys: content =>
          writeFileMode(authorizedKeysFile, content, 0o644),
        usesAuthorizedKeysCommand: useCommand,
        output: () => proc.output(),
        async stop() {
          await proc.stop();
          removeDir(dir);
        },
      };
      return instance;
    }
    throw new Error(`sshd did not start: ${lastError}`);
  } catch (e) {
    removeDir(dir);
    throw e;
  }
}
