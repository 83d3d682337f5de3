#!/usr/bin/env node
/* eslint-disable no-console */
/**
 * Screenshots of the Flux bootstrap card in each state, from the RUNNING APP (the sandbox of
 * `npm run sandbox`: the real backend and frontend against a real kube-apiserver, the Flux
 * controller simulator and the Bitbucket Server double), taken in headless Chromium.
 *
 *   node test/e2e/scripts/sandbox-screenshots.js [--out docs/screenshots]
 *
 * It starts the sandbox, registers two cluster Resources ("sandbox", and "partner" whose token may
 * read nothing) and a fleet Component listing both, then walks the sandbox cluster through the
 * states and shoots the card each time:
 *   not-installed → installing (Flux applied, controllers not up) → ready (in sync) → behind
 *   → failing (source error) → suspended → unreachable (apiserver stopped), plus forbidden
 *   ("partner") and the fleet Component with both clusters.
 * Everything is local and stopped at the end.
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../../..');
require(require.resolve('@backstage/cli-node/config/nodeTransform.cjs', {
  paths: [root],
}));
const YAML = require('yaml');
const {
  startSandbox,
  SANDBOX,
} = require('@flux-bootstrap/test-e2e/src/sandbox');
const peers = require('@flux-bootstrap/test-peers');

const say = line => console.log(`[screenshots] ${line}`);
const NS = 'flux-system';
const FM = 'card-screenshots';

function parseArgs(argv) {
  const out = { out: path.join(root, 'docs/screenshots') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out') out.out = path.resolve(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return out;
}

/**
 * Runs screenshot.js in a child process WITHOUT blocking this process: the peers (Bitbucket
 * double, simulator) live in this process's event loop and must keep answering meanwhile.
 */
function shoot(outDir, name, url, waitText) {
  say(`${name}: waiting for "${waitText}" at ${url}`);
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        path.join(__dirname, 'screenshot.js'),
        '--out',
        outDir,
        '--wait-text',
        waitText,
        '--timeout',
        '120000',
        `${name}=${url}`,
      ],
      { stdio: ['ignore', 'inherit', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', d => {
      stderr = (stderr + d.toString()).slice(-8000);
    });
    child.on('error', reject);
    child.on('exit', code => {
      if (code === 0) resolve();
      else {
        reject(
          new Error(
            `screenshot ${name} failed: ${stderr
              .split('\n')
              .filter(l => !/dbus|DevTools listening|Frame latency/.test(l))
              .join('\n')}`,
          ),
        );
      }
    });
  });
}

/** Server-side apply with the admin token (these stand in for `flux bootstrap`'s own writes). */
async function apply(http, obj) {
  const { kubePath } = peers;
  const plural = {
    Secret: 'secrets',
    GitRepository: 'gitrepositories',
    Kustomization: 'kustomizations',
  }[obj.kind];
  await http.apply(
    kubePath({
      apiVersion: obj.apiVersion,
      resource: plural,
      namespace: obj.metadata.namespace,
      name: obj.metadata.name,
    }),
    obj,
    { fieldManager: FM, force: true },
  );
}

function pushCommit(bitbucket, file, content) {
  const bare = bitbucket.repoPath(SANDBOX.project, 'fleet-infra');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'card-shots-'));
  const env = {
    ...peers.peerGitEnv(),
    GIT_AUTHOR_NAME: SANDBOX.userDisplayName,
    GIT_AUTHOR_EMAIL: 'demo@example.com',
    GIT_COMMITTER_NAME: SANDBOX.userDisplayName,
    GIT_COMMITTER_EMAIL: 'demo@example.com',
  };
  const git = (...args) =>
    spawnSync('git', args, { cwd: dir, env, encoding: 'utf8' }).stdout.trim();
  git('clone', '-q', '--branch', 'main', bare, '.');
  fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
  fs.writeFileSync(path.join(dir, file), content);
  git('add', '-A');
  git('commit', '-q', '-m', `Update ${file}`);
  git('push', '-q', 'origin', 'main');
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  fs.mkdirSync(args.out, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'card-shots-'));
  let sandbox;
  let sim;
  let http;
  try {
    sandbox = await startSandbox({ log: say });
    const { kube, bitbucket } = sandbox;
    const base = sandbox.baseUrl;
    http = new peers.KubeHttp(kube.info());

    // A second cluster entry on the same apiserver whose token may read nothing (forbidden).
    const partnerToken = await peers.mintToken(kube.info(), {
      name: 'card-partner',
    });
    const entitiesFile = path.join(tmp, 'card-entities.yaml');
    const resource = (name, title) => ({
      apiVersion: 'backstage.io/v1alpha1',
      kind: 'Resource',
      metadata: { name, title, description: `Kubernetes cluster ${name}` },
      spec: {
        type: 'kubernetes-cluster',
        owner: `group:default/${SANDBOX.group}`,
      },
    });
    fs.writeFileSync(
      entitiesFile,
      [
        resource('sandbox', SANDBOX.clusterTitle),
        resource('partner', 'Partner cluster'),
        {
          apiVersion: 'backstage.io/v1alpha1',
          kind: 'Component',
          metadata: {
            name: 'fleet-infra',
            description: 'Fleet repository of the sandbox clusters',
            annotations: { 'flux-bootstrap.io/clusters': 'sandbox, partner' },
          },
          spec: {
            type: 'service',
            lifecycle: 'production',
            owner: `group:default/${SANDBOX.group}`,
          },
        },
      ]
        .map(e => YAML.stringify(e))
        .join('---\n'),
    );
    const appConfig = YAML.parse(
      fs.readFileSync(path.join(root, 'app-config.yaml'), 'utf8'),
    );
    const generated = YAML.parse(fs.readFileSync(sandbox.configPath, 'utf8'));
    const ca = Buffer.from(kube.caPem).toString('base64');
    generated.kubernetes = {
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: [
            {
              name: 'sandbox',
              title: SANDBOX.clusterTitle,
              url: kube.url,
              authProvider: 'serviceAccount',
              serviceAccountToken: kube.adminToken,
              caData: ca,
            },
            {
              name: 'partner',
              title: 'Partner cluster',
              url: kube.url,
              authProvider: 'serviceAccount',
              serviceAccountToken: partnerToken,
              caData: ca,
            },
          ],
        },
      ],
    };
    generated.catalog = {
      locations: [
        ...(appConfig.catalog?.locations ?? []),
        {
          type: 'file',
          target: entitiesFile,
          rules: [{ allow: ['Component', 'Resource'] }],
        },
      ],
    };
    generated.fluxBootstrap = {
      ...generated.fluxBootstrap,
      status: { cacheTtlSeconds: 1, clusterTimeoutSeconds: 3 },
    };
    fs.writeFileSync(sandbox.configPath, YAML.stringify(generated));
    await sandbox.restartBackend();

    const clusterPage = name => `${base}/catalog/default/resource/${name}`;
    await shoot(
      args.out,
      'card-not-installed',
      clusterPage('sandbox'),
      'Not installed',
    );

    // Installing: Flux applied, its controllers not up yet, sync objects not reconciled.
    await sandbox.simulator.stop();
    const bundle = await peers.buildFluxBundle({
      version: SANDBOX.fluxVersion,
    });
    await peers.applyFluxBundle(kube.info(), bundle, {
      namespace: NS,
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ],
    });
    bitbucket.createRepo(SANDBOX.project, 'fleet-infra', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    pushCommit(
      bitbucket,
      'clusters/sandbox/flux-system/kustomization.yaml',
      'resources: []\n',
    );
    await apply(http, {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: NS, namespace: NS },
      stringData: { username: SANDBOX.user, password: sandbox.token },
    });
    const gitRepository = {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: NS, namespace: NS },
      spec: {
        interval: '1m0s',
        ref: { branch: 'main' },
        secretRef: { name: NS },
        url: bitbucket.cloneUrls(SANDBOX.project, 'fleet-infra').http,
      },
    };
    const kustomization = suspend => ({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: NS, namespace: NS },
      spec: {
        interval: '10m0s',
        path: './clusters/sandbox',
        prune: true,
        sourceRef: { kind: 'GitRepository', name: NS },
        ...(suspend ? { suspend: true } : {}),
      },
    });
    await apply(http, gitRepository);
    await apply(http, kustomization(false));
    await shoot(
      args.out,
      'card-installing',
      clusterPage('sandbox'),
      'Installing',
    );

    sim = await peers.startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 300,
    });
    await shoot(args.out, 'card-ready', clusterPage('sandbox'), 'in sync');

    await sim.stop();
    pushCommit(
      bitbucket,
      'clusters/sandbox/apps.yaml',
      'apiVersion: v1\nkind: List\nitems: []\n',
    );
    await shoot(args.out, 'card-behind', clusterPage('sandbox'), 'behind');

    sim = await peers.startFluxSimulator({
      kube: kube.info(),
      namespace: NS,
      intervalMs: 300,
    });
    sim.failWith(
      'source',
      `failed to checkout and determine revision: unable to clone '${gitRepository.spec.url}': authentication required: invalid credentials`,
    );
    await shoot(args.out, 'card-failing', clusterPage('sandbox'), 'Failing');
    sim.clear();
    await shoot(
      args.out,
      'card-ready-again',
      clusterPage('sandbox'),
      'in sync',
    );
    fs.rmSync(path.join(args.out, 'card-ready-again.png'), { force: true });

    await apply(http, kustomization(true));
    await shoot(
      args.out,
      'card-suspended',
      clusterPage('sandbox'),
      'Suspended',
    );
    await apply(http, kustomization(false));

    await shoot(
      args.out,
      'card-forbidden',
      clusterPage('partner'),
      'Forbidden',
    );
    await shoot(
      args.out,
      'card-fleet-component',
      `${base}/catalog/default/component/fleet-infra`,
      'Forbidden',
    );

    await kube.stopApiserver();
    await shoot(
      args.out,
      'card-unreachable',
      clusterPage('sandbox'),
      'Unreachable',
    );
    await kube.startApiserver();
    say(`screenshots written to ${args.out}`);
  } catch (e) {
    if (sandbox) {
      say('backend log (flux-bootstrap lines):');
      console.log(
        sandbox
          .backendLogs()
          .filter(l => /flux-bootstrap|Flux bootstrap/i.test(l))
          .slice(-30)
          .join('\n'),
      );
    }
    if (sim) say(`simulator:\n${sim.events().slice(-15).join('\n')}`);
    throw e;
  } finally {
    http?.close();
    await sim?.stop().catch(() => {});
    await sandbox?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch(e => {
  console.error(`[screenshots] failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
