import fs from 'node:fs/promises';
import path from 'node:path';
import { FluxGitSecretData, runGit, withGitAuth } from './gitRemote';
import { TreeEntry, TreeReader } from './kustomize';

/**
 * One commit's files, fetched with real git (the source's credentials) into a local bare
 * repository: what source-controller's artifact would contain. Paths are repository-relative.
 */
export class GitTree implements TreeReader {
  private readonly entries = new Map<string, TreeEntry & { oid: string }>();
  private readonly kids = new Map<string, string[]>();

  constructor(
    private readonly repo: string,
    readonly sha: string,
    listing: string,
  ) {
    for (const rec of listing.split('\0')) {
      if (!rec) continue;
      const tab = rec.indexOf('\t');
      const [, type, oid] = rec.slice(0, tab).split(' ');
      const p = rec.slice(tab + 1);
      if (type !== 'blob' && type !== 'tree') continue; // submodules (commit) are skipped
      this.entries.set(p, { type, oid });
      const parent = path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p);
      const list = this.kids.get(parent) ?? [];
      list.push(path.posix.basename(p));
      this.kids.set(parent, list);
    }
    for (const list of this.kids.values()) list.sort();
  }

  entry(p: string): TreeEntry | undefined {
    if (p === '' || p === '.') return { type: 'tree' };
    const e = this.entries.get(p);
    return e ? { type: e.type } : undefined;
  }

  children(dir: string): string[] {
    return [...(this.kids.get(dir === '.' ? '' : dir) ?? [])];
  }

  async read(p: string): Promise<string> {
    const e = this.entries.get(p);
    if (!e || e.type !== 'blob') throw new Error(`${p}: no such file`);
    return runGit(['-C', this.repo, 'cat-file', 'blob', e.oid], {
      env: { PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1' },
    });
  }
}

/**
 * Fetches commits into `<workDir>/snapshots.git` and lists their trees. A commit is immutable,
 * so each is fetched and listed once. `fetch` returns undefined when the ref moved on since the
 * commit was resolved (the caller retries with the new head).
 */
export class GitSnapshots {
  private readonly trees = new Map<string, GitTree>();
  private readonly repo: string;
  private initialized = false;

  constructor(workDir: string, private readonly signal: AbortSignal) {
    this.repo = path.join(workDir, 'snapshots.git');
  }

  async fetch(
    url: string,
    secret: FluxGitSecretData | undefined,
    fetchRef: string,
    sha: string,
  ): Promise<GitTree | undefined> {
    const cached = this.trees.get(sha);
    if (cached) return cached;
    const localEnv = { PATH: process.env.PATH, GIT_CONFIG_NOSYSTEM: '1' };
    if (!this.initialized) {
      await fs.mkdir(this.repo, { recursive: true });
      await runGit(['init', '--quiet', '--bare', this.repo], {
        env: localEnv,
        signal: this.signal,
      });
      this.initialized = true;
    }
    const have = await runGit(
      ['-C', this.repo, 'cat-file', '-e', `${sha}^{commit}`],
      { env: localEnv },
    ).then(
      () => true,
      () => false,
    );
    if (!have) {
      const fetched = await withGitAuth(url, secret, async env => {
        await runGit(
          [
            '-C',
            this.repo,
            'fetch',
            '--quiet',
            '--depth=1',
            '--no-tags',
            '--',
            url,
            `+${fetchRef}:refs/sim/head`,
          ],
          { env, signal: this.signal, timeoutMs: 60_000 },
        );
        return (
          await runGit(
            ['-C', this.repo, 'rev-parse', 'refs/sim/head^{commit}'],
            {
              env,
            },
          )
        ).trim();
      });
      if (fetched !== sha) return undefined;
    }
    const listing = await runGit(
      ['-C', this.repo, 'ls-tree', '-r', '-t', '-z', '--full-tree', sha],
      { env: localEnv, signal: this.signal },
    );
    const tree = new GitTree(this.repo, sha, listing);
    this.trees.set(sha, tree);
    return tree;
  }
}
