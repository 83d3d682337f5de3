#!/usr/bin/env node
/* eslint-disable no-console */
// `npm test`: the whole suite. Checks the system packages the real peers need (installing them
// only when run as root), installs npm dependencies when missing, then runs every package's
// tests through backstage-cli (jest) on the machine's Node.js and prints a closing
// "N passed, N failed" line.
//
// FLUX_TEST_NODE_VERSIONS="22 24" (what CI sets) runs the suite again on each of those Node.js
// versions, fetched from the npm registry (scripts/node-runtimes.js): every package's unit and
// real-peer tests, and the end-to-end suite (test/e2e) on the last of them only
// (FLUX_TEST_E2E_NODE overrides which). The adopter test (test/adopter) runs once, in the first
// run; it installs the packages into an app running on Node 22 itself. The closing line then
// adds up all runs.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const run = (cmd, args, opts = {}) =>
  spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });

const sys = run('bash', [
  path.join(root, 'test/peers/scripts/install-system-deps.sh'),
]);
if (sys.status !== 0) {
  // install-system-deps.sh exits 3 when packages are missing and this is not root.
  console.error(
    sys.status === 3
      ? '\nThe test suite needs system packages (see README "System packages"); nothing was installed because this is not root.'
      : '\nInstalling the system packages the test suite needs failed (see the output above).',
  );
  process.exit(sys.status ?? 1);
}

if (!fs.existsSync(path.join(root, 'node_modules/.bin/backstage-cli'))) {
  console.log('npm dependencies missing: running npm ci');
  const ci = run('npm', ['ci']);
  if (ci.status !== 0) process.exit(ci.status ?? 1);
}

const extra = process.argv.slice(2);
const versions = (process.env.FLUX_TEST_NODE_VERSIONS ?? '')
  .split(/[\s,]+/)
  .filter(Boolean);
let runtimes = [];
if (versions.length) {
  const { ensureNodeRuntime, ensureNativeAddons } = require('./node-runtimes');
  try {
    runtimes = versions.map(ensureNodeRuntime);
    ensureNativeAddons(runtimes);
  } catch (e) {
    console.error(
      `\nPreparing Node.js ${versions.join(', ')} failed: ${e.message}`,
    );
    process.exit(1);
  }
}
const e2eNode = process.env.FLUX_TEST_E2E_NODE ?? versions.at(-1);

/** One jest run of the whole workspace; returns its counts. */
function jestRun(label, resultsFile, args, env) {
  fs.rmSync(resultsFile, { force: true });
  console.log(`\n=== tests on ${label} ===\n`);
  const started = Date.now();
  const jest = run(
    path.join(root, 'node_modules/.bin/backstage-cli'),
    ['repo', 'test', '--json', `--outputFile=${resultsFile}`, ...args],
    { env: { ...process.env, CI: 'true', ...env } },
  );
  const r = fs.existsSync(resultsFile)
    ? JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
    : undefined;
  return {
    label,
    status: jest.status ?? 1,
    passed: r?.numPassedTests ?? 0,
    failed: r?.numFailedTests ?? 0,
    failedSuites: r ? r.numFailedTestSuites ?? 0 : undefined,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

const resultsDir = path.join(root, 'test-results');
fs.mkdirSync(resultsDir, { recursive: true });
// The browser and sandbox e2e run once: on FLUX_TEST_E2E_NODE (default: the last version asked
// for) when other runtimes are asked for, else on this machine's Node.js.
const e2eElsewhere = runtimes.some(rt => rt.major === e2eNode);
const results = [
  jestRun(
    `Node.js ${process.versions.node} (this machine's${
      e2eElsewhere ? ', without @flux-bootstrap/test-e2e' : ''
    })`,
    path.join(resultsDir, 'jest-results.json'),
    e2eElsewhere
      ? ['--ignoreProjects', '@flux-bootstrap/test-e2e', ...extra]
      : extra,
    {},
  ),
];
for (const rt of runtimes) {
  const ignore = ['@flux-bootstrap/test-adopter'];
  if (rt.major !== e2eNode) ignore.push('@flux-bootstrap/test-e2e');
  results.push(
    jestRun(
      `Node.js ${rt.version} (without ${ignore.join(', ')})`,
      path.join(resultsDir, `jest-results-node${rt.major}.json`),
      ['--ignoreProjects', ...ignore, ...extra],
      { PATH: `${rt.binDir}:${process.env.PATH}` },
    ),
  );
}

const describe = r => {
  let line = `${r.passed} passed, ${r.failed} failed`;
  if (r.failedSuites === undefined) line += ' (no results file written)';
  else if (r.failedSuites && !r.failed) {
    line += ` (${r.failedSuites} test suite(s) failed to run)`;
  }
  return line;
};
if (results.length > 1) {
  console.log('');
  for (const r of results) {
    console.log(`${r.label}: ${describe(r)} in ${r.seconds} s`);
  }
}
const total = {
  passed: results.reduce((n, r) => n + r.passed, 0),
  failed: results.reduce((n, r) => n + r.failed, 0),
  failedSuites: results.some(r => r.failedSuites === undefined)
    ? undefined
    : results.reduce((n, r) => n + r.failedSuites, 0),
};
console.log(`\n${describe(total)}`);
process.exit(results.find(r => r.status !== 0)?.status ?? 0);
