/* eslint-disable no-console */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'yaml';
import {
  BitbucketDouble,
  buildFluxOperatorRelease,
  buildFluxUpgradeBundles,
  FaultProxy,
  FluxBundle,
  FluxSimulator,
  serveFluxOperatorReleases,
  KubeApiserver,
  KubeHttp,
  run,
  startBitbucketDouble,
  startFaultProxy,
  startFluxSimulator,
  startKubeApiserver,
} from '@flux-bootstrap/test-peers';
import { Sandbox, SANDBOX, startSandbox } from '../sandbox';
import { BackstageApi } from '../scaffolder';
import { startTestPostgres, TestPostgres } from './postgres';
import { SecretScanner } from './scanner';

// Test code runs from source: __dirname is this folder.
// eslint-disable-next-line no-restricted-syntax
const repoRoot = path.resolve(__dirname, '../../../..');

/** A cluster of the suite: a real apiserver behind a fault proxy, with a Flux simulator. */
export interface WorldCluster {
  name: string;
  kube: KubeApiserver;
  /** What the backend talks to (`kubernetes.clusterLocatorMethods[].clusters[].url`). */
  proxy: FaultProxy;
  simulator: FluxSimulator;
  /** Direct admin access for assertions (not through the proxy). */
  http: KubeHttp;
}

/** Canary credentials planted in every scenario; none may ever show up anywhere. */
export interface Canaries {
  /** A Bitbucket HTTP access token of the demo user, passed as the templates' `token` secret. */
  bitbucketToken: string;
  /** An encrypted OpenSSH private key (the bootstrap-git template's `privateKey` secret). */
  privateKey: string;
  publicKey: string;
  passphrase: string;
}

/** Who may do what (`permission.fluxBootstrap`, read at backend start). */
export interface PolicyConfig {
  bootstrappers?: string[];
  statusReaders?: string[];
}

export interface World {
  sandbox: Sandbox;
  pg: TestPostgres;
  api: BackstageApi;
  bitbucket: BitbucketDouble;
  /** A second Bitbucket (TLS, self-signed CA) configured WITHOUT its CA: must fail closed. */
  untrusted: BitbucketDouble;
  untrustedToken: string;
  /** `sandbox`: the main scenarios; `faults`: apiserver faults; `crash`: crash and resume. */
  clusters: {
    sandbox: WorldCluster;
    faults: WorldCluster;
    crash: WorldCluster;
    /** Its simulator runs the Flux Operator loop and applies Git (distribution: operator). */
    operator: WorldCluster;
    /** Pull-request mode (a protected main). */
    prmode: WorldCluster;
  };
  canaries: Canaries;
  scanner: SecretScanner;
  /** Bitbucket request timeout configured for the suite (fluxBootstrap.bitbucketServer[].requestTimeoutMs). */
  bitbucketRequestTimeoutMs: number;
  /** Writes the permission policy the backend reads at its next start. */
  setPolicy(policy: PolicyConfig): void;
  /** Restarts the backend (SIGTERM, or `kill: true` for SIGKILL) and signs in again. */
  restartBackend(opts?: { kill?: boolean }): Promise<void>;
  /** Every backend log line since the start (stdout + stderr, across restarts). */
  backendLog(): string[];
  /** What the suite did so far (world start, every task log line, outcomes). */
  worldLog(): string[];
  log(line: string): void;
  stop(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

async function makeCanaryKey(dir: string, passphrase: string) {
  const file = path.join(dir, 'canary_ed25519');
  await run('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    passphrase,
    '-C',
    'reliability-canary',
    '-f',
    file,
  ]);
  const privateKey = fs.readFileSync(file, 'utf8');
  const publicKey = fs
    .readFileSync(`${file}.pub`, 'utf8')
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
  fs.rmSync(file);
  fs.rmSync(`${file}.pub`);
  return { privateKey, publicKey };
}

/** The catalog locations of app-config.yaml (arrays in later config files replace, not merge). */
function baseCatalogLocations(): unknown[] {
  const base = yaml.parse(
    fs.readFileSync(path.join(repoRoot, 'app-config.yaml'), 'utf8'),
  );
  return (base?.catalog?.locations ?? []) as unknown[];
}

/**
 * A fresh cluster of the suite: a kube-apiserver + etcd behind a fault proxy, with a Flux
 * controller simulator on `flux-system`. Registers how to stop each part in `stops`.
 */
export async function startWorldCluster(
  name: string,
  opts: {
    log: (line: string) => void;
    stops: { name: string; stop: () => Promise<void> }[];
    simulatorIntervalMs?: number;
    /** Flux versions of the simulator's operator loop (it then also applies Git). */
    operatorBundles?: FluxBundle[];
  },
): Promise<WorldCluster> {
  const { log, stops } = opts;
  const kube = await startKubeApiserver();
  stops.push({ name: `${name} apiserver`, stop: () => kube.stop() });
  const proxy = await startFaultProxy({
    upstream: { url: kube.url, caPem: kube.caPem },
  });
  stops.push({ name: `${name} proxy`, stop: () => proxy.stop() });
  const simulator = await startFluxSimulator({
    kube,
    namespace: 'flux-system',
    intervalMs: opts.simulatorIntervalMs ?? 500,
    ...(opts.operatorBundles
      ? { apply: true, operator: { bundles: opts.operatorBundles } }
      : {}),
  });
  stops.push({ name: `${name} simulator`, stop: () => simulator.stop() });
  const http = new KubeHttp(kube);
  stops.push({
    name: `${name} kube client`,
    stop: async () => http.close(),
  });
  log(
    `cluster "${name}": Kubernetes ${kube.version} at ${kube.url} behind ${proxy.url}`,
  );
  return { name, kube, proxy, simulator, http };
}

/**
 * Starts the suite's world once: PostgreSQL (throw-away cluster), the sandbox (Bitbucket double
 * over TLS with its CA configured, sshd, kube-apiserver, Flux simulator, bundle server, the real
 * backend on PostgreSQL with scaffolder task recovery), a second cluster, both clusters behind
 * fault proxies, a second Bitbucket whose CA is deliberately not configured, the suite's own
 * templates, and the canaries.
 */
export async function startWorld(
  opts: {
    log?: (line: string) => void;
    extraTemplates?: string[];
    templateNames?: string[];
  } = {},
): Promise<World> {
  const lines: string[] = [];
  const started = Date.now();
  const log = (line: string) => {
    lines.push(
      `${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s ${line}`,
    );
    if (opts.log) opts.log(line);
    else if (process.env.RELIABILITY_VERBOSE) console.log(line);
  };
  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-reliability-'));
  stops.push({
    name: 'temp dir',
    stop: async () => fs.rmSync(tmp, { recursive: true, force: true }),
  });
  const stopAll = async () => {
    for (const s of stops.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log(`stopping ${s.name} failed: ${e instanceof Error ? e.message : e}`);
      }
    }
    stops.length = 0;
  };

  try {
    const pg = await startTestPostgres({ log });
    stops.push({ name: 'PostgreSQL', stop: () => pg.stop() });

    const untrusted = await startBitbucketDouble({
      tls: true,
      defaultBranchName: 'main',
    });
    stops.push({ name: 'untrusted Bitbucket', stop: () => untrusted.stop() });
    const untrustedToken = `CANARY-untrusted-${crypto
      .randomBytes(16)
      .toString('hex')}`;
    untrusted.addUser({ name: SANDBOX.user });
    untrusted.grantGlobal(SANDBOX.user, 'PROJECT_CREATE');
    untrusted.addToken({ token: untrustedToken, user: SANDBOX.user });

    // Four more clusters, each a fresh apiserver (a first install applies every object for real).
    const extraCluster = (name: string) =>
      startWorldCluster(name, { log, stops });
    const { from, to } = await buildFluxUpgradeBundles();
    const operatorRelease = buildFluxOperatorRelease();
    const [faults, crash, prmode, operator, operatorReleases] =
      await Promise.all([
        extraCluster('faults'),
        extraCluster('crash'),
        extraCluster('prmode'),
        startWorldCluster('operator', {
          log,
          stops,
          operatorBundles: [from, to],
        }),
        serveFluxOperatorReleases([operatorRelease]),
      ]);
    stops.push({
      name: 'Flux Operator release server',
      stop: () => operatorReleases.stop(),
    });
    // The sandbox's own apiserver is started by startSandbox; its proxy gets the upstream then.
    const sandboxProxy = await startFaultProxy();
    stops.push({ name: 'sandbox proxy', stop: () => sandboxProxy.stop() });

    const passphrase = `CANARY-pass-${crypto.randomBytes(12).toString('hex')}`;
    const key = await makeCanaryKey(tmp, passphrase);
    const canaries: Canaries = {
      bitbucketToken: `CANARY-bb-${crypto.randomBytes(20).toString('hex')}`,
      privateKey: key.privateKey,
      publicKey: key.publicKey,
      passphrase,
    };

    const policyFile = path.join(tmp, 'permission-policy.yaml');
    const setPolicy = (p: PolicyConfig) => {
      const body: Record<string, string[]> = {};
      if (p.bootstrappers) body.bootstrappers = p.bootstrappers;
      if (p.statusReaders) body.statusReaders = p.statusReaders;
      fs.writeFileSync(policyFile, `${JSON.stringify(body)}\n`);
    };
    setPolicy({});

    const bitbucketRequestTimeoutMs = 4000;
    const templates = [...(opts.extraTemplates ?? [])].map(target => ({
      type: 'file',
      target,
      rules: [{ allow: ['Template'] }],
    }));
    const extraConfig = {
      scaffolder: {
        // Production-like: tasks survive a backend crash (PostgreSQL) and resume from their
        // checkpoints. A task is taken over once its heartbeat (every second) is this old.
        taskRecovery: { enabled: true, staleTimeout: { seconds: 8 } },
      },
      integrations: {
        bitbucketServer: [
          {
            host: '${BITBUCKET_HOST}',
            apiBaseUrl: '${BITBUCKET_API_BASE_URL}',
            token: '${BITBUCKET_TOKEN}',
          },
          {
            host: untrusted.host,
            apiBaseUrl: untrusted.apiBaseUrl,
            token: untrustedToken,
          },
        ],
      },
      fluxBootstrap: {
        bitbucketServer: [
          {
            host: '${BITBUCKET_HOST}',
            sshHost: '${BITBUCKET_SSH_HOST}',
            caFile: '${BITBUCKET_CA_FILE}',
            requestTimeoutMs: bitbucketRequestTimeoutMs,
            retries: 4,
          },
          // Its CA is deliberately not configured: every connection must be refused.
          { host: untrusted.host, requestTimeoutMs: bitbucketRequestTimeoutMs },
        ],
        operator: {
          manifests: {
            baseUrl: operatorReleases.baseUrl,
            sha256: { [operatorRelease.version]: operatorRelease.sha256 },
          },
        },
      },
      kubernetes: {
        serviceLocatorMethod: { type: 'multiTenant' },
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [
              {
                name: SANDBOX.cluster,
                title: SANDBOX.clusterTitle,
                url: sandboxProxy.url,
                authProvider: 'serviceAccount',
                serviceAccountToken: '${K8S_CLUSTER_TOKEN}',
                caData: b64(sandboxProxy.caPem),
              },
              ...[faults, crash, operator, prmode].map(c => ({
                name: c.name,
                title: `${c.name} cluster (reliability suite)`,
                url: c.proxy.url,
                authProvider: 'serviceAccount',
                serviceAccountToken: c.kube.adminToken,
                caData: b64(c.proxy.caPem),
              })),
              // The faults cluster's URL with another CA: TLS must fail closed.
              {
                name: 'wrong-ca',
                title: 'faults cluster with a wrong CA (reliability suite)',
                url: faults.proxy.url,
                authProvider: 'serviceAccount',
                serviceAccountToken: faults.kube.adminToken,
                caData: b64(crash.proxy.caPem),
              },
            ],
          },
        ],
      },
      catalog: { locations: [...baseCatalogLocations(), ...templates] },
      permission: { fluxBootstrap: { $include: policyFile } },
    };

    const sandbox = await startSandbox({
      log,
      buildFrontend: false,
      postgres: {
        host: pg.host,
        port: pg.port,
        user: pg.user,
        password: pg.password,
      },
      bitbucket: { tls: true },
      extraConfig,
    });
    stops.push({ name: 'sandbox', stop: () => sandbox.stop() });
    sandboxProxy.setUpstream({
      url: sandbox.kube.url,
      caPem: sandbox.kube.caPem,
    });
    sandbox.bitbucket.addToken({
      token: canaries.bitbucketToken,
      user: SANDBOX.user,
      name: 'canary',
    });

    const sandboxHttp = new KubeHttp(sandbox.kube);
    stops.push({
      name: 'sandbox kube client',
      stop: async () => sandboxHttp.close(),
    });

    const scanner = new SecretScanner();
    scanner.add('canary Bitbucket token', canaries.bitbucketToken, {
      usernames: [SANDBOX.user],
    });
    scanner.addPrivateKey(
      'canary SSH private key',
      canaries.privateKey,
      canaries.publicKey,
    );
    scanner.add('canary key passphrase', canaries.passphrase);
    scanner.add('integration Bitbucket token', sandbox.token, {
      usernames: [SANDBOX.user],
    });
    scanner.add('untrusted Bitbucket token', untrustedToken, {
      usernames: [SANDBOX.user],
    });
    scanner.add('sandbox cluster token', sandbox.kube.adminToken);
    scanner.add('faults cluster token', faults.kube.adminToken);
    scanner.add('crash cluster token', crash.kube.adminToken);
    scanner.add('operator cluster token', operator.kube.adminToken);
    scanner.add('PostgreSQL password', pg.password);

    let api = await BackstageApi.asGuest(sandbox.baseUrl);
    // The catalog ingests the templates shortly after start.
    for (const name of [
      'flux-bootstrap-bitbucket-server',
      'flux-bootstrap-git',
      ...(opts.templateNames ?? []),
    ]) {
      await api.waitForEntity({ kind: 'Template', name });
    }
    log('templates are in the catalog');
    const world: World = {
      sandbox,
      pg,
      get api() {
        return api;
      },
      bitbucket: sandbox.bitbucket,
      untrusted,
      untrustedToken,
      clusters: {
        sandbox: {
          name: SANDBOX.cluster,
          kube: sandbox.kube,
          proxy: sandboxProxy,
          simulator: sandbox.simulator,
          http: sandboxHttp,
        },
        faults,
        crash,
        operator,
        prmode,
      },
      canaries,
      scanner,
      bitbucketRequestTimeoutMs,
      setPolicy,
      async restartBackend(o = {}) {
        await sandbox.restartBackend({
          signal: o.kill ? 'SIGKILL' : 'SIGTERM',
        });
        api = await BackstageApi.asGuest(sandbox.baseUrl);
      },
      backendLog: () => sandbox.backendLogs(),
      worldLog: () => [...lines],
      log,
      stop: stopAll,
    };
    return world;
  } catch (e) {
    console.error(lines.slice(-60).join('\n'));
    await stopAll();
    throw e;
  }
}
