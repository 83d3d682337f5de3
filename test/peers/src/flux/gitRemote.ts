import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** The auth part of a Flux Git Secret (fluxcd/pkg git NewAuthOptions keys). */
export interface FluxGitSecretData {
  identity?: string;
  'identity.pub'?: string;
  known_hosts?: string;
  password?: string;
  username?: string;
  bearerToken?: string;
  'ca.crt'?: string;
  caFile?: string;
}

export class GitAuthError extends Error {}

export class GitCommandError extends Error {
  constructor(message: string, readonly stderr: string) {
    super(message);
  }
}

/**
 * Runs git against a remote the way source-controller authenticates, with the system git CLI:
 *  - ssh://: `identity` + `known_hosts` written to a 0700 temp dir (files 0600), used through
 *    GIT_SSH_COMMAND with StrictHostKeyChecking=yes, IdentitiesOnly=yes, BatchMode=yes, no
 *    agent, no user/global ssh config. Both keys are required, as in Flux.
 *  - http(s)://: `username`/`password` (Basic) answered by a GIT_ASKPASS helper reading 0600
 *    files, or `bearerToken` sent as an `http.extraHeader` passed through GIT_CONFIG_* environment
 *    variables (never on the command line, never in the URL); `ca.crt` (or legacy `caFile`) as
 *    `http.sslCAInfo`.
 * git never sees a credential in its arguments, so its error messages cannot contain one.
 */
export async function withGitAuth<T>(
  url: string,
  secret: FluxGitSecretData | undefined,
  fn: (env: NodeJS.ProcessEnv) => Promise<T>,
): Promise<T> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== 'ssh' && scheme !== 'http' && scheme !== 'https') {
    throw new GitAuthError(
      `failed to configure authentication options: unsupported URL scheme in '${url}'`,
    );
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flux-sim-git-'));
  await fs.chmod(dir, 0o700);
  const config: [string, string][] = [
    ['credential.helper', ''],
    ['core.askPass', ''],
    ['protocol.version', '2'],
  ];
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: dir,
    LANG: 'C',
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
  };
  try {
    if (scheme === 'ssh') {
      if (!secret?.identity) {
        throw new GitAuthError(
          "failed to configure authentication options: invalid 'ssh' auth option: 'identity' is required",
        );
      }
      if (!secret.known_hosts) {
        throw new GitAuthError(
          "failed to configure authentication options: invalid 'ssh' auth option: 'known_hosts' is required",
        );
      }
      const id = path.join(dir, 'identity');
      const kh = path.join(dir, 'known_hosts');
      await fs.writeFile(
        id,
        secret.identity.endsWith('\n')
          ? secret.identity
          : `${secret.identity}\n`,
        { mode: 0o600 },
      );
      await fs.writeFile(
        kh,
        secret.known_hosts.endsWith('\n')
          ? secret.known_hosts
          : `${secret.known_hosts}\n`,
        { mode: 0o600 },
      );
      // An encrypted identity is decrypted with the Secret's `password`, as source-controller
      // does; ssh reads it from an askpass helper (a 0600 file, never the command line).
      const encrypted = isEncryptedPrivateKey(secret.identity);
      if (encrypted && secret.password === undefined) {
        throw new GitAuthError(
          "failed to configure authentication options: SSH identity key is encrypted but no 'password' field was provided in the secret",
        );
      }
      if (encrypted) {
        const passFile = path.join(dir, 'passphrase');
        await fs.writeFile(passFile, secret.password ?? '', { mode: 0o600 });
        const askpass = path.join(dir, 'ssh-askpass');
        await fs.writeFile(
          askpass,
          `#!/bin/sh\ncat ${shellQuote(passFile)}\n`,
          {
            mode: 0o700,
          },
        );
        env.SSH_ASKPASS = askpass;
        env.SSH_ASKPASS_REQUIRE = 'force';
        env.DISPLAY = ':0';
      }
      env.GIT_SSH_COMMAND = [
        'ssh',
        '-F',
        '/dev/null',
        '-i',
        shellQuote(id),
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'IdentityAgent=none',
        '-o',
        // BatchMode disables passphrase prompts; for an encrypted key only the askpass helper
        // answers, and password/keyboard-interactive logins stay off either way.
        encrypted ? 'BatchMode=no' : 'BatchMode=yes',
        '-o',
        'PasswordAuthentication=no',
        '-o',
        'KbdInteractiveAuthentication=no',
        '-o',
        'NumberOfPasswordPrompts=1',
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        `UserKnownHostsFile=${shellQuote(kh)}`,
        '-o',
        'GlobalKnownHostsFile=/dev/null',
        '-o',
        'ConnectTimeout=10',
        '-o',
        'LogLevel=ERROR',
      ].join(' ');
      env.GIT_SSH_VARIANT = 'ssh';
    } else {
      if (secret?.bearerToken) {
        config.push([
          'http.extraHeader',
          `Authorization: Bearer ${secret.bearerToken}`,
        ]);
      } else if (
        secret?.password !== undefined ||
        secret?.username !== undefined
      ) {
        if (!secret.username) {
          throw new GitAuthError(
            "failed to configure authentication options: invalid 'basic' auth option: 'username' must be set when 'password' is set",
          );
        }
        // Basic auth through an askpass helper that reads 0600 files: git answers the server's
        // 401 challenge with them and reports "Authentication failed" when they are wrong.
        await fs.writeFile(path.join(dir, 'username'), secret.username, {
          mode: 0o600,
        });
        await fs.writeFile(path.join(dir, 'password'), secret.password ?? '', {
          mode: 0o600,
        });
        const askpass = path.join(dir, 'askpass');
        await fs.writeFile(
          askpass,
          `#!/bin/sh\ncase "$1" in\n  Username*) cat ${shellQuote(
            path.join(dir, 'username'),
          )} ;;\n  *) cat ${shellQuote(path.join(dir, 'password'))} ;;\nesac\n`,
          { mode: 0o700 },
        );
        env.GIT_ASKPASS = askpass;
      }
      const ca = secret?.['ca.crt'] ?? secret?.caFile;
      if (ca && scheme === 'https') {
        const caPath = path.join(dir, 'ca.crt');
        await fs.writeFile(caPath, ca, { mode: 0o600 });
        config.push(['http.sslCAInfo', caPath]);
      }
    }
    env.GIT_CONFIG_COUNT = String(config.length);
    config.forEach(([k, v], i) => {
      env[`GIT_CONFIG_KEY_${i}`] = k;
      env[`GIT_CONFIG_VALUE_${i}`] = v;
    });
    return await fn(env);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/**
 * Whether a private key needs a passphrase: OpenSSH format with a cipher other than `none`, or
 * PEM with `Proc-Type: 4,ENCRYPTED` / `BEGIN ENCRYPTED PRIVATE KEY`.
 */
export function isEncryptedPrivateKey(pem: string): boolean {
  if (
    /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(pem)
  )
    return true;
  const m =
    /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]*?)-----END OPENSSH PRIVATE KEY-----/.exec(
      pem,
    );
  if (!m) return false;
  const blob = Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (blob.subarray(0, magic.length).toString('latin1') !== magic) return false;
  const len = blob.readUInt32BE(magic.length);
  const cipher = blob
    .subarray(magic.length + 4, magic.length + 4 + len)
    .toString('latin1');
  return cipher !== 'none';
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Runs git; rejects with GitCommandError carrying git's own stderr. */
export function runGit(
  args: string[],
  opts: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    signal?: AbortSignal;
    timeoutMs?: number;
  },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, {
      env: opts.env,
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      signal: opts.signal,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', d => (stdout += d));
    child.stderr.on('data', d => (stderr += d));
    const timer = setTimeout(
      () => child.kill('SIGKILL'),
      opts.timeoutMs ?? 30_000,
    );
    child.once('error', err => {
      clearTimeout(timer);
      reject(new GitCommandError(err.message, stderr));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else {
        const msg =
          stderr.trim() ||
          `git ${args[0]} ${
            signal ? `killed by ${signal}` : `exited with ${code}`
          }`;
        reject(new GitCommandError(msg, stderr));
      }
    });
  });
}

/** `git ls-remote <url> <ref>` → the sha of the exact ref, or undefined when the remote has no such ref. */
export async function lsRemote(
  url: string,
  ref: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const out = await runGit(['ls-remote', '--', url, ref], {
    env,
    signal,
    timeoutMs: 30_000,
  });
  for (const line of out.split('\n')) {
    const [sha, name] = line.trim().split(/\s+/);
    if (name === ref) return sha;
  }
  return undefined;
}
