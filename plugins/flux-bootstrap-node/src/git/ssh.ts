import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { InputValidationError } from '../util/errors';
import { runProcess } from './process';
import {
  GitTransport,
  isConflictMessage,
  PushOutcome,
  RemoteRefs,
} from './transport';

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Checks an `ssh://[user@]host[:port]/path` remote. scp-like `host:path` is not accepted: the
 * explicit form keeps the port and leaves no room for option injection.
 * @public
 */
export function validateSshUrl(value: unknown, field = 'url'): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new InputValidationError(
      field,
      'is required, e.g. ssh://git@bitbucket.example.com:7999/PROJ/fleet.git',
    );
  }
  const v = value;
  if (CONTROL.test(v) || /\s/.test(v)) {
    throw new InputValidationError(
      field,
      'must not contain whitespace or control characters',
    );
  }
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InputValidationError(
      field,
      'must be an ssh:// URL such as ssh://git@host:7999/PROJ/repo.git',
    );
  }
  if (u.protocol !== 'ssh:') {
    throw new InputValidationError(
      field,
      'must be an ssh:// URL such as ssh://git@host:7999/PROJ/repo.git',
    );
  }
  if (u.password)
    throw new InputValidationError(field, 'must not contain a password');
  if (
    !u.hostname ||
    u.hostname.startsWith('-') ||
    (u.username && u.username.startsWith('-'))
  ) {
    throw new InputValidationError(field, 'has an invalid host or user');
  }
  if (!/^[A-Za-z0-9._~-]*$/.test(decodeURIComponent(u.username))) {
    throw new InputValidationError(field, 'has an invalid user name');
  }
  if (u.pathname === '' || u.pathname === '/' || u.search || u.hash) {
    throw new InputValidationError(
      field,
      'must name a repository path and have no query or fragment',
    );
  }
  if (u.pathname.split('/').some(s => s === '..')) {
    throw new InputValidationError(field, 'must not contain ".." segments');
  }
  return v;
}

/** Options of {@link SshGitTransport}. @public */
export interface SshGitTransportOptions {
  /** `ssh://git@host:7999/PROJ/repo.git` */
  url: string;
  /** The private key (OpenSSH or PEM/PKCS#8). Written to a 0600 temp file, deleted on close. */
  privateKey: string;
  /** Passphrase of an encrypted key; handed to ssh through SSH_ASKPASS and an env var. */
  passphrase?: string;
  /** known_hosts lines for the server; host keys are checked strictly. */
  knownHosts: string;
  /** Timeout of one git command. Default 120 000 ms. */
  timeoutMs?: number;
  /** The git program. Default `git`. */
  gitBinary?: string;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Git over SSH with the system git and OpenSSH: `GIT_SSH_COMMAND` points at a temporary key file
 * (0600) and a strict known_hosts file; a passphrase goes through SSH_ASKPASS with
 * `SSH_ASKPASS_REQUIRE=force`, reading it from the environment — never from a command line.
 * No user or system ssh/git configuration, agent or terminal prompt is used.
 * @public
 */
export class SshGitTransport implements GitTransport {
  readonly displayUrl: string;
  private dir?: string;
  private readonly host: string;

  constructor(private readonly options: SshGitTransportOptions) {
    this.displayUrl = validateSshUrl(options.url);
    const u = new URL(this.displayUrl);
    this.host = u.port ? `[${u.hostname}]:${u.port}` : u.hostname;
  }

  /** The temporary folder holding the key and known_hosts files while in use (diagnostics and tests). */
  get keyDirectory(): string | undefined {
    return this.dir;
  }

  private async prepare(): Promise<string> {
    if (this.dir) return this.dir;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flux-bootstrap-ssh-'));
    try {
      await fs.chmod(dir, 0o700);
      const key = `${this.options.privateKey.replace(/\r\n/g, '\n').trim()}\n`;
      await fs.writeFile(path.join(dir, 'identity'), key, { mode: 0o600 });
      await fs.writeFile(
        path.join(dir, 'known_hosts'),
        `${this.options.knownHosts.replace(/\r\n/g, '\n').trim()}\n`,
        { mode: 0o600 },
      );
      const askpass = this.options.passphrase
        ? '#!/bin/sh\nprintf \'%s\\n\' "$FLUX_BOOTSTRAP_SSH_PASSPHRASE"\n'
        : '#!/bin/sh\nexit 1\n';
      await fs.writeFile(path.join(dir, 'askpass.sh'), askpass, {
        mode: 0o700,
      });
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    this.dir = dir;
    return dir;
  }

  private async env(): Promise<NodeJS.ProcessEnv> {
    const dir = await this.prepare();
    const connectTimeout = Math.max(
      5,
      Math.round((this.options.timeoutMs ?? 120_000) / 4000),
    );
    const ssh = [
      'ssh',
      '-F /dev/null',
      `-i ${shellQuote(path.join(dir, 'identity'))}`,
      '-o IdentitiesOnly=yes',
      '-o IdentityAgent=none',
      '-o StrictHostKeyChecking=yes',
      `-o UserKnownHostsFile=${shellQuote(path.join(dir, 'known_hosts'))}`,
      '-o GlobalKnownHostsFile=/dev/null',
      '-o UpdateHostKeys=no',
      '-o PasswordAuthentication=no',
      '-o KbdInteractiveAuthentication=no',
      `-o ConnectTimeout=${connectTimeout}`,
      '-o ServerAliveInterval=15',
      '-o ServerAliveCountMax=4',
      '-o LogLevel=ERROR',
    ].join(' ');
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: dir,
      LANG: 'C',
      LC_ALL: 'C',
      GIT_SSH_COMMAND: ssh,
      GIT_SSH_VARIANT: 'ssh',
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
      SSH_ASKPASS: path.join(dir, 'askpass.sh'),
      SSH_ASKPASS_REQUIRE: 'force',
      DISPLAY: 'none',
      ...(this.options.passphrase
        ? { FLUX_BOOTSTRAP_SSH_PASSPHRASE: this.options.passphrase }
        : {}),
    };
  }

  private async git(args: string[], what: string, signal?: AbortSignal) {
    return runProcess(this.options.gitBinary ?? 'git', args, {
      env: await this.env(),
      timeoutMs: this.options.timeoutMs ?? 120_000,
      signal,
      what,
    });
  }

  private explain(stderr: string, what: string): Error {
    const text = stderr.trim();
    let hint = '';
    if (
      /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i.test(
        text,
      )
    ) {
      hint = `the SSH host key of ${this.host} does not match knownHosts (host keys are checked strictly)`;
    } else if (
      /incorrect passphrase|bad passphrase|Load key .*: (incorrect|invalid)/i.test(
        text,
      )
    ) {
      hint =
        'the SSH private key could not be loaded (wrong or missing passphrase, or not a private key)';
    } else if (/invalid format|error in libcrypto/i.test(text)) {
      hint = 'the SSH private key is not in a format OpenSSH reads';
    } else if (/Permission denied \(publickey/i.test(text)) {
      hint = `${this.host} refused the SSH key (is it registered as an access key with write permission?)`;
    } else if (
      /Connection refused|Connection timed out|Could not resolve hostname|No route to host/i.test(
        text,
      )
    ) {
      hint = `cannot reach ${this.host}`;
    } else if (
      /does not appear to be a git repository|Repository not found|not found/i.test(
        text,
      )
    ) {
      hint = `the repository ${this.displayUrl} does not exist or the key has no access to it`;
    }
    const lastLines = text.split('\n').filter(Boolean).slice(-3).join(' | ');
    return new Error(
      `git over SSH failed while ${what}: ${
        hint || lastLines || 'unknown error'
      }${hint && lastLines ? ` (${lastLines})` : ''}`,
    );
  }

  async listRefs(signal?: AbortSignal): Promise<RemoteRefs> {
    const r = await this.git(
      ['ls-remote', '--symref', this.displayUrl],
      `listing the branches of ${this.displayUrl}`,
      signal,
    );
    if (r.code !== 0)
      throw this.explain(
        r.stderr,
        `listing the branches of ${this.displayUrl}`,
      );
    const heads = new Map<string, string>();
    let defaultBranch: string | undefined;
    for (const line of r.stdout.split('\n')) {
      const sym = /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line);
      if (sym) {
        defaultBranch = sym[1];
        continue;
      }
      const m = /^([0-9a-f]{40,64})\trefs\/heads\/(.+)$/.exec(line);
      if (m) heads.set(m[2], m[1]);
    }
    return { heads, defaultBranch };
  }

  async fetch(
    gitdir: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<string> {
    const what = `fetching ${branch} from ${this.displayUrl}`;
    const tracking = `refs/remotes/origin/${branch}`;
    const r = await this.git(
      [
        '--git-dir',
        gitdir,
        'fetch',
        '--quiet',
        '--no-tags',
        '--depth=1',
        this.displayUrl,
        `+refs/heads/${branch}:${tracking}`,
      ],
      what,
      signal,
    );
    if (r.code !== 0) throw this.explain(r.stderr, what);
    const rev = await this.git(
      ['--git-dir', gitdir, 'rev-parse', '--verify', `${tracking}^{commit}`],
      what,
      signal,
    );
    if (rev.code !== 0)
      throw new Error(
        `git over SSH failed while ${what}: the fetched branch is missing`,
      );
    return rev.stdout.trim();
  }

  async push(
    gitdir: string,
    oid: string,
    branch: string,
    signal?: AbortSignal,
  ): Promise<PushOutcome> {
    const what = `pushing to ${branch} of ${this.displayUrl}`;
    const r = await this.git(
      [
        '--git-dir',
        gitdir,
        'push',
        '--porcelain',
        this.displayUrl,
        `${oid}:refs/heads/${branch}`,
      ],
      what,
      signal,
    );
    if (r.code === 0) return { status: 'ok' };
    const rejected = r.stdout
      .split('\n')
      .filter(l => l.startsWith('!'))
      .map(l => l.split('\t').slice(2).join(' '))
      .join('; ');
    const reason = rejected || r.stderr;
    if (isConflictMessage(reason) || isConflictMessage(r.stderr)) {
      return { status: 'conflict', reason: rejected || 'rejected' };
    }
    if (rejected)
      throw new Error(
        `git over SSH failed while ${what}: the server rejected the push (${rejected})`,
      );
    throw this.explain(r.stderr, what);
  }

  async close(): Promise<void> {
    const dir = this.dir;
    this.dir = undefined;
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  }
}
