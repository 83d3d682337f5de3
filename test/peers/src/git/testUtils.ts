// Helpers for the peers' own self-tests (not exported from the package index).
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir } from '../common/fs';
import { run, RunResult } from '../common/process';

/** A git CLI environment for a test client: no system/global config, no prompts. */
export function clientEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Test Client',
    GIT_AUTHOR_EMAIL: 'client@example.com',
    GIT_COMMITTER_NAME: 'Test Client',
    GIT_COMMITTER_EMAIL: 'client@example.com',
    ...extra,
  };
}

/** Runs the git CLI as a client (never throws; inspect `code`). Async, so in-process servers keep serving. */
export function gitClient(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return run('git', args, {
    cwd: opts.cwd,
    env: clientEnv(opts.env),
    check: false,
    timeoutMs: 60_000,
  });
}

/** Asserts success and returns stdout. */
export async function gitOk(
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  const r = await gitClient(args, opts);
  if (r.code !== 0)
    throw new Error(`git ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Temp folders removed by `cleanup()`. */
export function tempDirs() {
  const dirs: string[] = [];
  return {
    make(prefix = 'peer-test') {
      const d = makeTempDir(prefix);
      dirs.push(d);
      return d;
    },
    cleanup() {
      for (const d of dirs.splice(0)) removeDir(d);
    },
  };
}

/** Writes a file in a work tree, commits it and returns the new commit id. */
export async function commitFile(
  workdir: string,
  file: string,
  content: string,
  message = `edit ${file}`,
): Promise<string> {
  fs.mkdirSync(path.dirname(path.join(workdir, file)), { recursive: true });
  fs.writeFileSync(path.join(workdir, file), content);
  await gitOk(['-C', workdir, 'add', file]);
  await gitOk(['-C', workdir, 'commit', '-q', '-m', message]);
  return (await gitOk(['-C', workdir, 'rev-parse', 'HEAD'])).trim();
}

/** A fresh local repository with one commit on `branch`. */
export async function newLocalRepo(
  dir: string,
  branch = 'main',
): Promise<string> {
  await gitOk(['init', '-q', `--initial-branch=${branch}`, dir]);
  return commitFile(dir, 'README.md', '# test\n', 'initial');
}
