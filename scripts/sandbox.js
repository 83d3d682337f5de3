#!/usr/bin/env node
/* eslint-disable no-console */
// `npm run sandbox`: a complete local playground. Starts the test-ground peers — a Bitbucket
// Server double (REST API, git over HTTP, a real sshd), a real kube-apiserver + etcd, the Flux
// controller simulator and a fixture Flux release bundle — seeds a demo user, project and token,
// and runs the app against them. Open the printed URL, sign in as guest, choose
// "Bootstrap Flux on a cluster (Bitbucket Server)" and watch the cluster's card turn green.
// The template asks you to sign in to Bitbucket (the double's login and consent pages, HTTPS with
// its own CA) and acts as you there; --no-bitbucket-sign-in turns that off (token or
// integration only). Ctrl-C stops everything. Options: --port <n> (default 7007),
// --show-backend-logs, --no-bitbucket-sign-in.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const say = line => console.log(`[sandbox] ${line}`);

if (!fs.existsSync(path.join(root, 'node_modules/.bin/backstage-cli'))) {
  say('npm dependencies are missing: running npm ci (a few minutes, once)…');
  const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (ci.status !== 0) process.exit(ci.status ?? 1);
}

// The peers are real programs (sshd, git, etcd, kube-apiserver): the same system packages as the
// test suite. As root they are installed when missing; otherwise the script says what to install.
const sys = spawnSync(
  'bash',
  [path.join(root, 'test/peers/scripts/install-system-deps.sh')],
  {
    cwd: root,
    stdio: 'inherit',
  },
);
if (sys.status !== 0) {
  say(
    'the sandbox needs the system packages listed above (see README "System packages").',
  );
  process.exit(sys.status ?? 1);
}

function parseArgs(argv) {
  const out = { port: 7007, showBackendLogs: false, bitbucketSignIn: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') out.port = Number(argv[++i]);
    else if (a.startsWith('--port=')) out.port = Number(a.slice(7));
    else if (a === '--show-backend-logs') out.showBackendLogs = true;
    else if (a === '--no-bitbucket-sign-in') out.bitbucketSignIn = false;
    else if (a === '--help' || a === '-h') {
      console.log(
        'Usage: npm run sandbox [-- --port <n>] [--show-backend-logs] [--no-bitbucket-sign-in]',
      );
      process.exit(0);
    } else {
      console.error(`Unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(out.port) || out.port < 1 || out.port > 65535) {
    console.error('--port must be a TCP port number');
    process.exit(2);
  }
  return out;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // Backstage's TypeScript loader, so the sandbox (test/e2e/src/sandbox.ts) and the peers run from source.
  require(require.resolve('@backstage/cli-node/config/nodeTransform.cjs', {
    paths: [root],
  }));
  const { startSandbox, SANDBOX } = require('../test/e2e/src/sandbox');

  let sandbox;
  let stopping = false;
  const stop = async code => {
    if (stopping) return;
    stopping = true;
    if (sandbox) await sandbox.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));

  sandbox = await startSandbox({
    port: args.port,
    showBackendLogs: args.showBackendLogs,
    bitbucketSignIn: args.bitbucketSignIn,
  });
  if (stopping) return;
  sandbox.backendProcess().on('exit', (code, signal) => {
    if (!stopping) {
      say(`the backend exited (${signal ?? `code ${code}`}); last log lines:`);
      console.log(sandbox.backendLogs().slice(-30).join('\n'));
      stop(1);
    }
  });
  console.log(`
[sandbox] ──────────────────────────────────────────────────────────────────────────────
[sandbox]  ${SANDBOX.title} is running: ${sandbox.baseUrl}
[sandbox]  1. Open it and sign in as guest.
[sandbox]  2. Create → "Bootstrap Flux on a cluster (Bitbucket Server)":
[sandbox]       cluster "${SANDBOX.cluster}", project ${
    SANDBOX.project
  }, any repository name, SSH.
[sandbox]  3. Follow "Cluster" at the end: the Flux bootstrap card turns green.
[sandbox]  Bitbucket double: ${sandbox.bitbucket.baseUrl} (user "${
    SANDBOX.user
  }", token ${sandbox.token})${
    sandbox.signIn
      ? `
[sandbox]  Bitbucket sign-in: on the repository step Backstage asks you to log in to Bitbucket:
[sandbox]       user "${sandbox.signIn.user}", password ${sandbox.signIn.password}, then "Allow"; the steps act as
[sandbox]       that user. The double's certificate is its own CA's (${sandbox.bitbucket.caFile}):
[sandbox]       let your browser trust it, or accept the warning in the sign-in window (local only).`
      : ''
  }
[sandbox]  Kubernetes:       ${sandbox.kube.url} (kubeconfig ${
    sandbox.kube.kubeconfigPath
  })
[sandbox]  Everything here is local and temporary. Ctrl-C stops it all.
[sandbox] ──────────────────────────────────────────────────────────────────────────────
`);
}

main().catch(async e => {
  console.error(`[sandbox] failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
