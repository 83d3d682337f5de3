import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { runProcess, type ProcessResult } from './process';
import { branchProtectionError } from './pushRejection';
import {
  GitTransport,
  isConflictMessage,
  PushOutcome,
  RemoteRefs,
} from './transport';

/** Options of {@link SshGitTransport}. @public */
export interface SshGitTransportOptions {
  /** `ssh://git@host:7999/PROJ/repo.git`, checked by the caller (no option-like host or user). */
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

const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Options of the ssh git runs: only our key and known_hosts, no config, agent or prompt. */
const SSH_OPTIONS =
  `IdentitiesOnly=yes IdentityAgent=none StrictHostKeyChecking=yes
  GlobalKnownHostsFile=/dev/null UpdateHostKeys=no PasswordAuthentication=no
  KbdInteractiveAuthentication=no ServerAliveInterval=15 ServerAliveCountMax=4 LogLevel=ERROR`
    .split(/\s+/)
    .map(o => `-o ${o}`)
    .join(' ');

/** Git over SSH with OpenSSH: a temporary 0600 key, strict known_hosts, no config, agent or prompt. @public */
export class SshGitTransport implements GitTransport {
  readonly displayUrl: string;
  private dir?: string;
  private readonly host: string;
  private readonly timeoutMs: number;

  constructor(private readonly options: SshGitTransportOptions) {
    this.displayUrl = options.url;
    this.timeoutMs = options.timeoutMs ?? 120_000;
    const u = new URL(options.url);
    this.host = u.port ? `[${u.hostname}]:${u.port}` : u.hostname;
  }

  /** The temporary folder of the key and known_hosts files while in use (for tests). */
  get keyDirectory(): string | undefined {
    return this.dir;
  }

  private async prepare(): Promise<string> {
    if (this.dir) return this.dir;
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'flux-bootstrap-ssh-'));
    const { privateKey, knownHosts, passphrase } = this.options;
    const file = (name: string, text: string, mode = 0o600) =>
      fs.writeFile(path.join(dir, name), text, { mode });
    const lines = (text: string) => `${text.replace(/\r\n/g, '\n').trim()}\n`;
    try {
      await fs.chmod(dir, 0o700);
      await file('identity', lines(privateKey));
      await file('known_hosts', lines(knownHosts));
      await file(
        'askpass.sh',
        passphrase
          ? '#!/bin/sh\nprintf \'%s\\n\' "$FLUX_BOOTSTRAP_SSH_PASSPHRASE"\n'
          : '#!/bin/sh\nexit 1\n',
        0o700,
      );
    } catch (e) {
      await fs.rm(dir, { recursive: true, force: true });
      throw e;
    }
    return (this.dir = dir);
  }

  private async env(): Promise<NodeJS.ProcessEnv> {
    const dir = await this.prepare();
    const connectTimeout = Math.max(5, Math.round(this.timeoutMs / 4000));
    const identity = shellQuote(path.join(dir, 'identity'));
    const knownHosts = shellQuote(path.join(dir, 'known_hosts'));
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: dir,
      LANG: 'C',
      LC_ALL: 'C',
      GIT_SSH_COMMAND: `ssh -F /dev/null -i ${identity} -o UserKnownHostsFile=${knownHosts} -o ConnectTimeout=${connectTimeout} ${SSH_OPTIONS}`,
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

  /** Runs git; a failure (unless `check` is false) is explained from ssh's and git's stderr. */
  private async git(
    args: string[],
    what: string,
    signal?: AbortSignal,
    check = true,
  ): Promise<ProcessResult> {
    const r = await runProcess(this.options.gitBinary ?? 'git', args, {
      env: await this.env(),
      timeoutMs: this.timeoutMs,
      signal,
      what,
    });
    if (check && r.code !== 0) throw this.explain(r.stderr, what);
    return r;
  }

  private explain(stderr: string, what: string): Error {
    const text = stderr.trim();
    const hints: [RegExp, string][] = [
      [
        /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No .* host key is known/i,
        `the SSH host key of ${this.host} does not match knownHosts (host keys are checked strictly)`,
      ],
      [
        /incorrect passphrase|bad passphrase|Load key .*: (incorrect|invalid)/i,
        'the SSH private key could not be loaded (wrong or missing passphrase, or not a private key)',
      ],
      [
        /invalid format|error in libcrypto/i,
        'the SSH private key is not in a format OpenSSH reads',
      ],
      [
        /Permission denied \(publickey/i,
        `${this.host} refused the SSH key (is it registered as an access key with write permission?)`,
      ],
      [
        /Connection refused|Connection timed out|Could not resolve hostname|No route to host/i,
        `cannot reach ${this.host}`,
      ],
      [
        /does not appear to be a git repository|Repository not found|not found/i,
        `the repository ${this.displayUrl} does not exist or the key has no access to it`,
      ],
    ];
    const hint = hints.find(([re]) => re.test(text))?.[1];
    const lastLines = text.split('\n').filter(Boolean).slice(-3).join(' | ');
    const said =
      hint && lastLines
        ? `${hint} (${lastLines})`
        : hint || lastLines || 'unknown error';
    return new Error(`git over SSH failed while ${what}: ${said}`);
  }

  async listRefs(signal?: AbortSignal): Promise<RemoteRefs> {
    const { stdout } = await this.git(
      ['ls-remote', '--symref', this.displayUrl],
      `listing the branches of ${this.displayUrl}`,
      signal,
    );
    const heads = new Map<string, string>();
    let defaultBranch: string | undefined;
    for (const line of stdout.split('\n')) {
      defaultBranch ??= /^ref: refs\/heads\/(\S+)\tHEAD$/.exec(line)?.[1];
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
    const from = `+refs/heads/${branch}:${tracking}`;
    const fetch = ['fetch', '--quiet', '--no-tags', '--depth=1'];
    const args = ['--git-dir', gitdir, ...fetch, this.displayUrl, from];
    await this.git(args, what, signal);
    const rev = await this.git(
      ['--git-dir', gitdir, 'rev-parse', '--verify', `${tracking}^{commit}`],
      what,
      signal,
      false,
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
    const refspec = `${oid}:refs/heads/${branch}`;
    const r = await this.git(
      ['--git-dir', gitdir, 'push', '--porcelain', this.displayUrl, refspec],
      what,
      signal,
      false,
    );
    if (r.code === 0) return { status: 'ok' };
    const rejected = r.stdout
      .split('\n')
      .filter(l => l.startsWith('!'))
      .map(l => l.split('\t').slice(2).join(' '))
      .join('; ');
    if (isConflictMessage(rejected) || isConflictMessage(r.stderr))
      return { status: 'conflict', reason: rejected || 'rejected' };
    const remote = r.stderr.split('\n').filter(l => l.startsWith('remote:'));
    const refused = branchProtectionError(
      branch,
      this.displayUrl,
      rejected,
      remote.join('\n'),
    );
    if (refused) throw refused;
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
