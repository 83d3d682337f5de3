#!/usr/bin/env node
/* eslint-disable no-console */
// `npm test`: the whole suite. Checks the system packages the real peers need (installing them
// only when run as root), installs npm dependencies when missing, then runs every package's
// tests through backstage-cli (jest) and prints a closing "N passed, N failed" line.
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

const resultsFile = path.join(root, 'test-results', 'jest-results.json');
fs.mkdirSync(path.dirname(resultsFile), { recursive: true });
fs.rmSync(resultsFile, { force: true });
const extra = process.argv.slice(2);
const jest = run(
  path.join(root, 'node_modules/.bin/backstage-cli'),
  ['repo', 'test', '--json', `--outputFile=${resultsFile}`, ...extra],
  { env: { ...process.env, CI: 'true' } },
);

let summary = 'no results file written';
if (fs.existsSync(resultsFile)) {
  const r = JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  const failedSuites = r.numFailedTestSuites ?? 0;
  summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed`;
  if (failedSuites && !r.numFailedTests) {
    summary += ` (${failedSuites} test suite(s) failed to run)`;
  }
}
console.log(`\n${summary}`);
process.exit(jest.status ?? 1);
