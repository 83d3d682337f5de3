#!/usr/bin/env node
/* eslint-disable no-console */
// Fails when an installed package has install scripts that package.json's `allowScripts` neither
// approves nor denies (npm 11's `npm install-scripts ls`): a new dependency with an install script
// must be reviewed, so `npm ci` stays quiet and keeps working when npm enforces the approvals.
const { spawnSync } = require('node:child_process');

const r = spawnSync('npm', ['install-scripts', 'ls'], { encoding: 'utf8' });
const out = `${r.stdout}${r.stderr}`.trim();
if (
  r.status !== 0 ||
  !/No packages with unreviewed install scripts/.test(out)
) {
  console.error(out);
  console.error(
    '\nReview these install scripts: `npm install-scripts approve <pkg>` or `npm install-scripts deny <pkg>` (allowScripts in package.json).',
  );
  process.exit(1);
}
console.log('install scripts: every one is reviewed in allowScripts');
