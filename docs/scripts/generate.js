#!/usr/bin/env node
/* eslint-disable no-console */
/*
 * Regenerates the generated parts of docs/reference/actions.md (from the scaffolder actions'
 * schemas and examples) and docs/reference/configuration.md (from
 * plugins/flux-bootstrap-node/config.d.ts):
 *
 *   node docs/scripts/generate.js          # write the pages
 *   node docs/scripts/generate.js --check  # exit 1 when a page is out of date
 *
 * The docs tests run the same generators and fail when a committed page differs.
 */
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
// Backstage's TypeScript loader: the actions and the generator run from source.
require(require.resolve('@backstage/cli-node/config/nodeTransform.cjs', {
  paths: [root],
}));
const { ConfigReader } = require('@backstage/config');
const ref = require('./reference');

function moduleActions() {
  // Every create…Action factory the scaffolder module exports; the docs test checks that they
  // are exactly the actions the module registers.
  const mod = require('../../plugins/scaffolder-backend-module-flux-bootstrap/src');
  const config = new ConfigReader({});
  return Object.entries(mod)
    .filter(
      ([name, value]) =>
        /^create\w+Action$/.test(name) && typeof value === 'function',
    )
    .map(([, factory]) => factory({ config }));
}

const check = process.argv.includes('--check');
const pages = [
  {
    file: ref.ACTIONS_PAGE,
    render: text => ref.renderActionsPage(text, moduleActions()),
  },
  {
    file: ref.CONFIG_PAGE,
    render: text =>
      ref.renderConfigPage(text, fs.readFileSync(ref.CONFIG_SCHEMA, 'utf8')),
  },
];

let stale = 0;
for (const page of pages) {
  const before = fs.readFileSync(page.file, 'utf8');
  const after = page.render(before);
  const rel = path.relative(root, page.file);
  if (before === after) {
    console.log(`${rel}: up to date`);
  } else if (check) {
    console.log(`${rel}: out of date`);
    stale++;
  } else {
    fs.writeFileSync(page.file, after);
    console.log(`${rel}: written`);
  }
}
if (stale) {
  console.log(`Run ${ref.GENERATE_COMMAND} to update ${stale} page(s).`);
  process.exit(1);
}
