import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { run } from '../common/process';

/**
 * Configuration every git process of the peers runs with, passed as command-line scope
 * (GIT_CONFIG_COUNT/KEY/VALUE) so that it is honoured for protected settings such as
 * `safe.directory` and never depends on the machine's ~/.gitconfig.
 */
export const PEER_GIT_CONFIG: [string, string][] = [
  ['safe.directory', '*'],
  ['http.receivepack', 'true'],
  ['core.sharedRepository', '0666'],
  ['receive.denyDeleteCurrent', 'warn'],
  ['uploadpack.allowFilter', 'true'],
  ['init.defaultBranch', 'main'],
];

/** Environment for git processes of the peers: isolated from system/global config. */
export function peerGitEnv(
  extra: NodeJS.ProcessEnv = {},
  config = PEER_GIT_CONFIG,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? '/',
    LANG: 'C',
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_CONFIG_COUNT: String(config.length),
  };
  config.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return { ...env, ...extra };
}

/** Runs git with the peers' environment. */
export async function git(
  args: string[],
  opts: { cwd?: string; input?: string | Buffer; check?: boolean } = {},
) {
  return run('git', args, {
    cwd: opts.cwd,
    input: opts.input,
    env: peerGitEnv(),
    check: opts.check,
  });
}

function gitSync(args: string[], opts: { input?: string } = {}): string {
  return execFileSync('git', args, {
    env: peerGitEnv(),
    input: opts.input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

/**
 * Creates a bare repository that is readable and writable by every local user (the sshd side
 * may run git as another user than the HTTP side) with HEAD pointing at `defaultBranch`.
 */
export function initBareRepoSync(
  repoPath: string,
  defaultBranch = 'main',
): void {
  fs.mkdirSync(path.dirname(repoPath), { recursive: true, mode: 0o755 });
  gitSync([
    'init',
    '--quiet',
    '--bare',
    '--shared=0666',
    `--initial-branch=${defaultBranch}`,
    repoPath,
  ]);
  // Files git created before core.sharedRepository applied (hooks, description…) stay 0644,
  // which is fine; directories git writes into must be world-writable.
  for (const d of [
    '',
    'objects',
    'refs',
    'refs/heads',
    'refs/tags',
    'objects/info',
    'objects/pack',
  ]) {
    const p = path.join(repoPath, d);
    if (fs.existsSync(p)) fs.chmodSync(p, 0o2777);
  }
  // The config file is rewritten (lock + rename) by some git commands: keep it world-writable.
  fs.chmodSync(path.join(repoPath, 'config'), 0o666);
  fs.chmodSync(path.join(repoPath, 'HEAD'), 0o666);
}

/** A branch of a bare repository. */
export interface GitBranch {
  /** e.g. `refs/heads/main` */
  ref: string;
  /** e.g. `main` */
  name: string;
  sha: string;
}

/** Lists branches (refs/heads) with their head commits. */
export function listBranchesSync(repoPath: string): GitBranch[] {
  const out = gitSync([
    '-C',
    repoPath,
    'for-each-ref',
    '--format=%(refname)%09%(objectname)',
    'refs/heads/',
  ]);
  return out
    .split('\n')
    .filter(Boolean)
    .map(line => {
      const [ref, sha] = line.split('\t');
      return { ref, name: ref.replace(/^refs\/heads\//, ''), sha };
    });
}

/** Lists branches (async). */
export async function listBranches(repoPath: string): Promise<GitBranch[]> {
  const { stdout } = await git([
    '-C',
    repoPath,
    'for-each-ref',
    '--format=%(refname)%09%(objectname)',
    'refs/heads/',
  ]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map(line => {
      const [ref, sha] = line.split('\t');
      return { ref, name: ref.replace(/^refs\/heads\//, ''), sha };
    });
}

/** The ref HEAD points at (the configured default branch), e.g. `refs/heads/main`. */
export function headRefSync(repoPath: string): string {
  return gitSync(['-C', repoPath, 'symbolic-ref', 'HEAD']).trim();
}

/** Points HEAD at `ref` (which need not exist yet). */
export function setHeadRefSync(repoPath: string, ref: string): void {
  gitSync(['-C', repoPath, 'symbolic-ref', 'HEAD', ref]);
}

/** Resolves a revision to a commit id, or undefined. */
export async function resolveCommit(
  repoPath: string,
  rev: string,
): Promise<string | undefined> {
  if (rev.startsWith('-')) return undefined;
  const r = await git(
    [
      '-C',
      repoPath,
      'rev-parse',
      '--verify',
      '--quiet',
      '--end-of-options',
      `${rev}^{commit}`,
    ],
    {
      check: false,
    },
  );
  return r.code === 0 ? r.stdout.trim() : undefined;
}

/** Creates `refs/heads/<name>` at `sha`; false if it already exists. */
export async function createBranch(
  repoPath: string,
  name: string,
  sha: string,
): Promise<boolean> {
  const r = await git(
    ['-C', repoPath, 'update-ref', `refs/heads/${name}`, sha, '0'.repeat(40)],
    { check: false },
  );
  return r.code === 0;
}

/** Deletes a branch; false if it did not exist. */
export async function deleteBranch(
  repoPath: string,
  name: string,
): Promise<boolean> {
  const r = await git(
    ['-C', repoPath, 'update-ref', '-d', `refs/heads/${name}`],
    { check: false },
  );
  return r.code === 0;
}

/** A commit as read from git. */
export interface GitCommit {
  id: string;
  parents: string[];
  authorName: string;
  authorEmail: string;
  authorTimestamp: number;
  committerName: string;
  committerEmail: string;
  committerTimestamp: number;
  message: string;
}

const LOG_FORMAT = [
  '%H',
  '%P',
  '%an',
  '%ae',
  '%at',
  '%cn',
  '%ce',
  '%ct',
  '%B',
].join('%x1f');

function parseLog(out: string): GitCommit[] {
  return out
    .split('\0')
    .filter(s => s.trim() !== '')
    .map(rec => {
      const [id, parents, an, ae, at, cn, ce, ct, ...msg] = rec
        .replace(/^\n/, '')
        .split('\x1f');
      return {
        id,
        parents: parents ? parents.split(' ') : [],
        authorName: an,
        authorEmail: ae,
        authorTimestamp: Number(at) * 1000,
        committerName: cn,
        committerEmail: ce,
        committerTimestamp: Number(ct) * 1000,
        message: msg.join('\x1f').replace(/\n$/, ''),
      };
    });
}

/** Commits reachable from `until` (excluding those reachable from `since`), newest first. */
export async function logCommits(
  repoPath: string,
  opts: {
    until: string;
    since?: string;
    skip?: number;
    max?: number;
    path?: string;
  },
): Promise<GitCommit[]> {
  const args = ['-C', repoPath, 'log', '-z', `--format=${LOG_FORMAT}`];
  if (opts.skip) args.push(`--skip=${opts.skip}`);
  if (opts.max !== undefined) args.push(`--max-count=${opts.max}`);
  args.push('--end-of-options', opts.until);
  if (opts.since) args.push(`^${opts.since}`);
  if (opts.path) args.push('--', opts.path);
  const { stdout } = await git(args);
  return parseLog(stdout);
}

/**
 * Writes a first commit (a README) on `branch` of a bare repository with plumbing commands,
 * like Bitbucket's "initialise repository" does. Returns the commit id.
 */
export function seedInitialCommitSync(
  repoPath: string,
  branch: string,
  opts: {
    authorName?: string;
    authorEmail?: string;
    message?: string;
    files?: Record<string, string>;
  } = {},
): string {
  const files = opts.files ?? {
    'README.md': `# ${path.basename(repoPath, '.git')}\n`,
  };
  const entries = Object.entries(files).map(([name, content]) => {
    if (name.includes('/'))
      throw new Error('seedInitialCommitSync supports top-level files only');
    const blob = gitSync(['-C', repoPath, 'hash-object', '-w', '--stdin'], {
      input: content,
    }).trim();
    return `100644 blob ${blob}\t${name}`;
  });
  const tree = gitSync(['-C', repoPath, 'mktree'], {
    input: `${entries.join('\n')}\n`,
  }).trim();
  const name = opts.authorName ?? 'Test Peer';
  const email = opts.authorEmail ?? 'peer@example.invalid';
  const commit = execFileSync(
    'git',
    [
      '-C',
      repoPath,
      'commit-tree',
      tree,
      '-m',
      opts.message ?? 'Initial commit',
    ],
    {
      env: {
        ...peerGitEnv(),
        GIT_AUTHOR_NAME: name,
        GIT_AUTHOR_EMAIL: email,
        GIT_COMMITTER_NAME: name,
        GIT_COMMITTER_EMAIL: email,
      },
      encoding: 'utf8',
    },
  ).trim();
  gitSync(['-C', repoPath, 'update-ref', `refs/heads/${branch}`, commit]);
  return commit;
}
