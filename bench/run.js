#!/usr/bin/env node
// `npm run bench [-- --only install,keys --runs 5 --write-docs]`: benchmarks of the engine against
// real peers (see docs/benchmarks.md). Not part of the test suite. The benchmarks are TypeScript,
// run through the same SWC transform the Backstage CLI uses for the backend.
const path = require('node:path');

const root = path.resolve(__dirname, '..');
process.chdir(root);
require(require.resolve('@backstage/cli-node/config/nodeTransform.cjs', {
  paths: [root],
}));
require('./src/main.ts')
  .main(process.argv.slice(2))
  .then(code => process.exit(code))
  .catch(e => {
    console.error(e);
    process.exit(1);
  });
