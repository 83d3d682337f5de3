import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './cleanup';

/**
 * `--baseline <git-rev>`: the engine source of an older commit, loaded into this process next to
 * today's engine, so that a benchmark measures both in the same run against the same peers.
 */

/** The engine package inside the repository (at any commit). */
const ENGINE_DIR = 'plugins/flux-bootstrap-node';

/** A resolved `--baseline` revision (checked before any benchmark starts). */
export interface BaselineRev {
  /** As given on the command line, e.g. `81ac4a9` or `main~20`. */
  rev: string;
  /** Abbreviated commit id, for tables. */
  commit: string;
  /** Full commit id. */
  sha: string;
}

/** The baseline engine, extracted to a temp folder and loadable file by file. */
export interface BaselineEngine extends BaselineRev {
  /**
   * The first module of `files` (paths under the engine's `src/`, without `.ts`) that exports
   * `name`. The old engine exported most internals from its index; today's keeps them in their
   * files, so adapters list both places.
   */
  pick<T>(name: string, files: string[]): T;
  /** Whether any of `files` exports `name` (for adapters that differ by engine generation). */
  has(name: string, files: string[]): boolean;
}

function git(args: string[]): string {
  return execFileSync('git', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  }).trim();
}

/** Resolves `rev` in this checkout; throws a clear message when it is not a commit with the engine. */
export function resolveBaselineRev(rev: string): BaselineRev {
  let sha: string;
  try {
    sha = git(['rev-parse', '--verify', '--quiet', `${rev}^{commit}`]);
  } catch {
    throw new Error(
      `--baseline ${rev}: not a commit of this repository (a shallow clone may lack it: git fetch --unshallow)`,
    );
  }
  try {
    git(['cat-file', '-e', `${sha}:${ENGINE_DIR}/src/index.ts`]);
  } catch {
    throw new Error(
      `--baseline ${rev}: commit ${sha.slice(
        0,
        9,
      )} has no ${ENGINE_DIR}/src/index.ts`,
    );
  }
  return { rev, sha, commit: git(['rev-parse', '--short', sha]) };
}

/** `git archive <sha> <paths> | tar -x -C <dir>` */
function extract(sha: string, paths: string[], dir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const archive = spawn('git', ['archive', '--format=tar', sha, ...paths], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tar = spawn('tar', ['-x', '-C', dir], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    archive.stderr.on('data', d => (err += d));
    tar.stderr.on('data', d => (err += d));
    archive.stdout.pipe(tar.stdin);
    archive.on('error', reject);
    tar.on('error', reject);
    let archiveCode: number | null = null;
    archive.on('close', c => (archiveCode = c));
    tar.on('close', c => {
      if (c === 0 && archiveCode === 0) resolve();
      else
        reject(
          new Error(`git archive ${sha} ${paths.join(' ')} failed: ${err}`),
        );
    });
  });
}

/** The workspace packages of `sha`, by package name → folder. */
function workspacePackagesAt(sha: string): Map<string, string> {
  const out = new Map<string, string>();
  const dirs = git(['ls-tree', '-d', '--name-only', sha, 'plugins/']).split(
    '\n',
  );
  for (const dir of dirs.filter(Boolean)) {
    try {
      const pkg = JSON.parse(git(['show', `${sha}:${dir}/package.json`]));
      if (pkg.name) out.set(pkg.name, dir);
    } catch {
      // a folder without package.json
    }
  }
  return out;
}

/**
 * A `node_modules` folder for the extracted packages: every entry of the repository's root
 * `node_modules` as a symlink (so `yaml`, `isomorphic-git`, `@kubernetes/client-node`… resolve to
 * the installed copies), except the workspace packages extracted from the baseline commit, which
 * point at those.
 */
function linkNodeModules(
  repoRoot: string,
  dir: string,
  own: Map<string, string>,
): void {
  const rootModules = path.join(repoRoot, 'node_modules');
  const target = path.join(dir, 'node_modules');
  fs.mkdirSync(target);
  for (const entry of fs.readdirSync(rootModules)) {
    if (entry.startsWith('.')) continue;
    const from = path.join(rootModules, entry);
    if (entry.startsWith('@')) {
      fs.mkdirSync(path.join(target, entry));
      for (const sub of fs.readdirSync(from))
        fs.symlinkSync(path.join(from, sub), path.join(target, entry, sub));
    } else {
      fs.symlinkSync(from, path.join(target, entry));
    }
  }
  for (const [name, folder] of own) {
    const link = path.join(target, name);
    fs.rmSync(link, { force: true });
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(dir, folder), link);
  }
}

/**
 * Extracts the engine of `rev` (and the workspace packages it depends on, e.g. the common
 * package) into a temp folder removed when the benchmark ends, and returns a loader for its
 * modules. The modules go through the same SWC transform as today's engine (bench/run.js); they
 * share the root's installed npm packages and nothing else with today's engine.
 */
export async function loadBaselineEngine(
  rev: BaselineRev,
  log: (line: string) => void,
): Promise<BaselineEngine> {
  const repoRoot = process.cwd();
  const { dir } = tempDir(`baseline-${rev.commit}`);
  await extract(rev.sha, [ENGINE_DIR], dir);
  const engineDir = path.join(dir, ENGINE_DIR);
  const pkg = JSON.parse(
    fs.readFileSync(path.join(engineDir, 'package.json'), 'utf8'),
  ) as { name: string; dependencies?: Record<string, string> };
  const workspace = workspacePackagesAt(rev.sha);
  const own = new Map<string, string>([[pkg.name, ENGINE_DIR]]);
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    const folder = workspace.get(dep);
    if (folder && folder !== ENGINE_DIR) {
      await extract(rev.sha, [folder], dir);
      own.set(dep, folder);
    }
  }
  linkNodeModules(repoRoot, dir, own);
  // Dependencies whose installed version is not the one the baseline commit asked for: said, not
  // fatal (the figures then include that library's change too).
  const drift: string[] = [];
  for (const [dep, range] of Object.entries(pkg.dependencies ?? {})) {
    if (own.has(dep)) continue;
    try {
      const installed = JSON.parse(
        fs.readFileSync(
          path.join(repoRoot, 'node_modules', dep, 'package.json'),
          'utf8',
        ),
      ).version as string;
      const wanted = range.replace(/^[\^~=]/, '');
      if (
        installed !== wanted &&
        installed.split('.')[0] !== wanted.split('.')[0]
      )
        drift.push(`${dep} ${range} (installed ${installed})`);
    } catch {
      drift.push(`${dep} ${range} (not installed at the root)`);
    }
  }
  log(
    `baseline engine ${rev.rev} (${rev.commit}) extracted to ${dir} (${[
      ...own.keys(),
    ].join(', ')})${
      drift.length ? `; dependencies that differ: ${drift.join(', ')}` : ''
    }`,
  );
  const src = path.join(engineDir, 'src');
  const modules = new Map<string, Record<string, unknown>>();
  const load = (file: string): Record<string, unknown> | undefined => {
    if (!modules.has(file)) {
      const full = [`${file}.ts`, `${file}/index.ts`]
        .map(f => path.join(src, f))
        .find(f => fs.existsSync(f));
      if (!full) return undefined;
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      modules.set(file, require(full));
    }
    return modules.get(file);
  };
  const find = (name: string, files: string[]) => {
    for (const f of files) {
      const m = load(f);
      if (m && name in m) return m[name];
    }
    return undefined;
  };
  const started = Date.now();
  load('index');
  log(`baseline engine loaded in ${Date.now() - started} ms`);
  return {
    ...rev,
    has: (name, files) => find(name, files) !== undefined,
    pick<T>(name: string, files: string[]): T {
      const found = find(name, files);
      if (found === undefined)
        throw new Error(
          `baseline engine ${rev.rev} (${rev.commit}): none of ${files.join(
            ', ',
          )} exports ${name}`,
        );
      return found as T;
    },
  };
}
