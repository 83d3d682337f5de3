/* eslint-disable no-console */
// Runs the app for `npm start`, `npm run sandbox` and the end-to-end tests:
//  - ensureFrontendBuild(): production build of packages/app (served by the backend's
//    app-backend plugin), rebuilt only when its inputs changed; serialized with flock so
//    parallel callers (sandbox + tests) don't build twice;
//  - startBackend(): packages/backend from TypeScript source through Backstage's node transform,
//    without the file watcher of `backstage-cli package start` (a shared working tree changes
//    constantly; a restart would drop the in-memory database and running tasks).
// Plain CommonJS so both scripts/*.js and TypeScript callers can use it.
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const repoRoot = path.resolve(__dirname, '../../..');
const appDir = path.join(repoRoot, 'packages/app');
const backendDir = path.join(repoRoot, 'packages/backend');
const distStamp = path.join(appDir, 'dist/.build-stamp');

/** Folders/files whose changes require a new frontend build. */
const FRONTEND_INPUTS = [
  'packages/app/src',
  'packages/app/public',
  'packages/app/package.json',
  'plugins/flux-bootstrap/src',
  'plugins/flux-bootstrap/package.json',
  'plugins/flux-bootstrap-common/src',
  'package-lock.json',
];

function newestMtime(p) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = st.mtimeMs;
  for (const entry of fs.readdirSync(p)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    newest = Math.max(newest, newestMtime(path.join(p, entry)));
  }
  return newest;
}

/** Why the frontend must be (re)built, or undefined when dist is current. */
function frontendBuildReason() {
  if (!fs.existsSync(path.join(appDir, 'dist/index.html.tmpl')))
    return 'no build yet';
  if (!fs.existsSync(distStamp)) return 'build of unknown age';
  const built = fs.statSync(distStamp).mtimeMs;
  for (const rel of FRONTEND_INPUTS) {
    if (newestMtime(path.join(repoRoot, rel)) > built) return `${rel} changed`;
  }
  return undefined;
}

/**
 * Builds packages/app unless its dist is current. Returns { built, reason, ms }.
 * @param {{ log?: (line: string) => void, force?: boolean }} [opts]
 */
function ensureFrontendBuild(opts = {}) {
  const log = opts.log ?? (line => console.log(line));
  const started = Date.now();
  // flock serializes builds across processes; the child re-checks staleness inside the lock.
  const lockFile = path.join(
    require('node:os').tmpdir(),
    'flux-bootstrap-app-build.lock',
  );
  const args = [lockFile, process.execPath, __filename, '--build-if-stale'];
  if (opts.force) args.push('--force');
  const res = spawnSync('flock', args, { cwd: repoRoot, encoding: 'utf8' });
  if (res.error) throw res.error;
  const out = `${res.stdout ?? ''}${res.stderr ?? ''}`;
  if (res.status !== 0) {
    throw new Error(
      `Building the frontend (packages/app) failed:\n${out.slice(-4000)}`,
    );
  }
  const m = /BUILD-RESULT (\{.*\})/.exec(out);
  const result = m ? JSON.parse(m[1]) : { built: false };
  if (result.built)
    log(
      `Frontend built in ${Math.round((Date.now() - started) / 1000)} s (${
        result.reason
      })`,
    );
  return { ...result, ms: Date.now() - started };
}

function buildIfStale(force) {
  const reason = force ? 'forced' : frontendBuildReason();
  if (!reason) {
    console.log(`BUILD-RESULT ${JSON.stringify({ built: false })}`);
    return;
  }
  console.error(`Building the frontend (packages/app): ${reason}…`);
  const cli = path.join(repoRoot, 'node_modules/.bin/backstage-cli');
  const res = spawnSync(cli, ['package', 'build'], {
    cwd: appDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
    env: {
      ...process.env,
      // A production bundle; also keeps a test runner's NODE_ENV=test away from browserslist.
      NODE_ENV: 'production',
      NODE_OPTIONS: `${
        process.env.NODE_OPTIONS ?? ''
      } --max-old-space-size=3072`.trim(),
    },
  });
  if (res.status !== 0) {
    process.stderr.write(res.stdout ?? '');
    process.stderr.write(res.stderr ?? '');
    process.exit(res.status ?? 1);
  }
  fs.writeFileSync(distStamp, `${new Date().toISOString()}\n`);
  console.log(`BUILD-RESULT ${JSON.stringify({ built: true, reason })}`);
}

/** Backstage's `--config` flags for the given files, app-config.yaml (+ .local.yaml) first. */
function configArgs(extraConfigPaths = [], { includeLocal = true } = {}) {
  const files = [path.join(repoRoot, 'app-config.yaml')];
  const local = path.join(repoRoot, 'app-config.local.yaml');
  if (includeLocal && fs.existsSync(local)) files.push(local);
  files.push(...extraConfigPaths.map(p => path.resolve(p)));
  return files.flatMap(f => ['--config', f]);
}

/**
 * Starts packages/backend as a child process.
 * @param {{ configPaths?: string[], includeLocalConfig?: boolean, env?: NodeJS.ProcessEnv,
 *   stdio?: any, onLine?: (line: string) => void }} [opts]
 * @returns {import('node:child_process').ChildProcess}
 */
function startBackend(opts = {}) {
  const nodeTransform = require.resolve(
    '@backstage/cli-node/config/nodeTransform.cjs',
    {
      paths: [repoRoot],
    },
  );
  const args = [
    '--enable-source-maps',
    '--require',
    nodeTransform,
    'src/index.ts',
    ...configArgs(opts.configPaths, {
      includeLocal: opts.includeLocalConfig !== false,
    }),
  ];
  const child = spawn(process.execPath, args, {
    cwd: backendDir,
    env: {
      ...process.env,
      // The guest sign-in provider only runs in development; keep an explicit production, but
      // not the `test` a test runner sets for itself.
      NODE_ENV:
        process.env.NODE_ENV && process.env.NODE_ENV !== 'test'
          ? process.env.NODE_ENV
          : 'development',
      ESBK_TSCONFIG_PATH: path.join(repoRoot, 'tsconfig.json'),
      ...opts.env,
    },
    stdio: opts.stdio ?? (opts.onLine ? ['ignore', 'pipe', 'pipe'] : 'inherit'),
    detached: false,
  });
  if (opts.onLine && child.stdout && child.stderr) {
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', chunk => {
        buf += chunk;
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const line of lines) opts.onLine(line);
      });
      stream.on('end', () => buf && opts.onLine(buf));
    }
  }
  return child;
}

/**
 * Polls the backend's readiness endpoint until it answers 200, the child exits or the abort
 * signal fires. Returns the number of milliseconds it took.
 * @param {string} baseUrl
 * @param {{ child?: import('node:child_process').ChildProcess, signal?: AbortSignal, log?: (line: string) => void }} [opts]
 */
async function waitForBackend(baseUrl, opts = {}) {
  const started = Date.now();
  let lastLog = started;
  let exited;
  opts.child?.once('exit', (code, sig) => {
    exited = `backend exited (${sig ?? `code ${code}`}) before it was ready`;
  });
  for (;;) {
    if (exited) throw new Error(exited);
    if (opts.signal?.aborted)
      throw new Error('aborted while waiting for the backend');
    try {
      const res = await fetch(`${baseUrl}/.backstage/health/v1/readiness`);
      if (res.ok) return Date.now() - started;
    } catch {
      // not listening yet
    }
    if (opts.log && Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      opts.log(
        `Waiting for the backend at ${baseUrl} (plugins still starting)…`,
      );
    }
    await new Promise(r => setTimeout(r, 250));
  }
}

/** Stops a child process: SIGTERM, then SIGKILL after `graceMs`. */
function stopProcess(child, graceMs = 10_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve();
  return new Promise(resolve => {
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

module.exports = {
  repoRoot,
  appDir,
  backendDir,
  ensureFrontendBuild,
  frontendBuildReason,
  configArgs,
  startBackend,
  waitForBackend,
  stopProcess,
};

if (require.main === module && process.argv.includes('--build-if-stale')) {
  buildIfStale(process.argv.includes('--force'));
}
