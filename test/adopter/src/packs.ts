/* eslint-disable no-console */
import { spawnSync, SpawnSyncOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** The repository root (test/adopter/src → ../../..). */
// eslint-disable-next-line no-restricted-syntax
export const repoRoot = path.resolve(__dirname, '../../..');

/** Every package an adopter installs, by folder: the five plugins and the templates. */
export const PUBLISHED = [
  'plugins/flux-bootstrap-common',
  'plugins/flux-bootstrap-node',
  'plugins/flux-bootstrap-backend',
  'plugins/scaffolder-backend-module-flux-bootstrap',
  'plugins/flux-bootstrap',
  'templates',
] as const;

export interface PackedPackage {
  /** Folder in this repository, e.g. `plugins/flux-bootstrap`. */
  dir: string;
  name: string;
  /** Absolute path of the `npm pack` tarball. */
  tarball: string;
  /** The package.json inside the tarball (what the registry would serve). */
  manifest: Record<string, any>;
  /** Every file in the tarball, relative to its `package/` folder. */
  files: string[];
}

/** Runs a command, throwing with its output when it fails. */
export function sh(
  cmd: string,
  args: string[],
  opts: SpawnSyncOptions = {},
): string {
  const started = Date.now();
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    ...opts,
  });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
    throw new Error(
      `${cmd} ${args.join(' ')} (in ${opts.cwd ?? process.cwd()}) failed with ${
        r.status ?? r.signal
      } after ${Math.round((Date.now() - started) / 1000)} s:\n${out.slice(
        -8000,
      )}`,
    );
  }
  return String(r.stdout ?? '');
}

const backstageCli = path.join(repoRoot, 'node_modules/.bin/backstage-cli');

/**
 * Builds the plugins (tsc declarations, then `backstage-cli package build`) and packs each
 * published package with `npm pack`, as `npm publish` would. Packing runs in a scratch copy of
 * the packages (a minimal workspace whose node_modules links to this repository's), so the
 * prepack/postpack rewrite of package.json never touches the working tree.
 */
export function buildAndPack(outDir: string): PackedPackage[] {
  const t0 = Date.now();
  console.log('[pack] tsc (declarations for the package builds)…');
  sh(path.join(repoRoot, 'node_modules/.bin/tsc'), [], { cwd: repoRoot });
  for (const dir of PUBLISHED) {
    if (!dir.startsWith('plugins/')) continue;
    console.log(`[pack] backstage-cli package build in ${dir}…`);
    sh(backstageCli, ['package', 'build'], { cwd: path.join(repoRoot, dir) });
  }

  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-pack-ws-'));
  try {
    fs.writeFileSync(
      path.join(ws, 'package.json'),
      JSON.stringify({
        name: 'pack-workspace',
        private: true,
        workspaces: ['plugins/*', 'templates'],
      }),
    );
    fs.copyFileSync(
      path.join(repoRoot, 'tsconfig.json'),
      path.join(ws, 'tsconfig.json'),
    );
    fs.symlinkSync(
      path.join(repoRoot, 'node_modules'),
      path.join(ws, 'node_modules'),
    );
    fs.mkdirSync(outDir, { recursive: true });
    const packed: PackedPackage[] = [];
    for (const dir of PUBLISHED) {
      const copy = path.join(ws, dir);
      fs.cpSync(path.join(repoRoot, dir), copy, {
        recursive: true,
        filter: src => path.basename(src) !== 'node_modules',
      });
      const out = sh('npm', ['pack', '--json', '--pack-destination', outDir], {
        cwd: copy,
        env: { ...process.env, npm_config_loglevel: 'error' },
      });
      // npm prints the prepack script's output before the JSON.
      const json = JSON.parse(out.slice(out.indexOf('[')));
      const tarball = path.join(outDir, json[0].filename);
      packed.push(inspectTarball(dir, tarball));
    }
    console.log(
      `[pack] ${packed.length} tarballs in ${Math.round(
        (Date.now() - t0) / 1000,
      )} s: ${packed.map(p => path.basename(p.tarball)).join(', ')}`,
    );
    return packed;
  } finally {
    fs.rmSync(ws, { recursive: true, force: true });
  }
}

function inspectTarball(dir: string, tarball: string): PackedPackage {
  const files = sh('tar', ['tzf', tarball])
    .split('\n')
    .filter(f => f && !f.endsWith('/'))
    .map(f => f.replace(/^package\//, ''));
  const manifest = JSON.parse(
    sh('tar', ['xzf', tarball, '-O', 'package/package.json']),
  );
  return { dir, name: manifest.name, tarball, manifest, files };
}

/**
 * Every file a consumer can reach through the manifest: main, module, types, browser,
 * configSchema, each `exports` target (all conditions) and each `typesVersions` target.
 */
export function entryPoints(manifest: Record<string, any>): string[] {
  const out: string[] = [];
  for (const key of ['main', 'module', 'types', 'typings', 'browser']) {
    if (typeof manifest[key] === 'string') out.push(manifest[key]);
  }
  if (typeof manifest.configSchema === 'string')
    out.push(manifest.configSchema);
  const walk = (v: unknown) => {
    if (typeof v === 'string') out.push(v);
    else if (v && typeof v === 'object') {
      for (const [condition, target] of Object.entries(v)) {
        // `backstage` is Backstage's feature-type marker, not a file.
        if (condition !== 'backstage') walk(target);
      }
    }
  };
  walk(manifest.exports);
  for (const targets of Object.values(manifest.typesVersions ?? {})) {
    walk(targets);
  }
  return out.map(p => path.posix.normalize(p).replace(/^\.\//, ''));
}
