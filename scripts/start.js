#!/usr/bin/env node
/* eslint-disable no-console */
// `npm start`: installs npm dependencies when they are missing (npm ci), builds the frontend when
// it is missing or out of date, then runs the Backstage backend, which also serves the frontend.
// Configuration: app-config.yaml, then app-config.local.yaml when present, then any
// `--config <file>` given after `npm start --`. Ctrl-C stops it.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

if (!fs.existsSync(path.join(root, 'node_modules/.bin/backstage-cli'))) {
  console.log(
    'npm dependencies are missing: running npm ci (a few minutes, once)…',
  );
  const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (ci.status !== 0) {
    console.error('npm ci failed; see the output above.');
    process.exit(ci.status ?? 1);
  }
}

const runner = require('../packages/backend/scripts/app-runner');

function parseArgs(argv) {
  const configPaths = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--config' && argv[i + 1]) configPaths.push(argv[++i]);
    else if (a.startsWith('--config='))
      configPaths.push(a.slice('--config='.length));
    else if (a === '--help' || a === '-h') {
      console.log('Usage: npm start [-- --config <extra app-config file> ...]');
      process.exit(0);
    } else {
      console.error(`Unknown argument: ${a}`);
      process.exit(2);
    }
  }
  return { configPaths };
}

async function main() {
  const { configPaths } = parseArgs(process.argv.slice(2));
  try {
    runner.ensureFrontendBuild();
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }

  let listen;
  let stopping = false;
  // eslint-disable-next-line prefer-const
  let stop;
  const child = runner.startBackend({
    configPaths,
    onLine: line => {
      console.log(line);
      const m = /Listening on (\S+)/.exec(line);
      if (m && !listen) listen = m[1];
      const inUse = /EADDRINUSE[^\n]*?(\d+\.\d+\.\d+\.\d+:\d+|:::\d+)/.exec(
        line,
      );
      if (inUse && !stopping) {
        console.error(
          `\nAnother process already listens on ${inUse[1]}. Stop it, or choose another port ` +
            'with backend.listen.port, backend.baseUrl and app.baseUrl in app-config.local.yaml.',
        );
        stop('EADDRINUSE', 1);
      }
    },
  });

  stop = async (signal, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping the backend…`);
    await runner.stopProcess(child);
    process.exit(exitCode);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`The backend exited (${signal ?? `code ${code}`}).`);
      process.exit(code ?? 1);
    }
  });

  while (!listen) {
    if (child.exitCode !== null || stopping) return;
    await new Promise(r => setTimeout(r, 200));
  }
  const host = listen.replace(/^(0\.0\.0\.0|::|\[::\])(?=:)/, 'localhost');
  const url = `http://${host}`;
  await runner.waitForBackend(url, { child });
  console.log(
    `\nFlux Bootstrap Backstage is running: ${url}  (sign in as guest; Ctrl-C stops it)\n`,
  );
}

main().catch(e => {
  console.error(e);
  process.exit(1);
});
