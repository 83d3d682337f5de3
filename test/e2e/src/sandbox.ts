/* eslint-disable no-console */
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BitbucketDouble,
  buildFluxUpgradeBundles,
  FluxBundleServer,
  FluxSimulator,
  freePort,
  KubeApiserver,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  buildFluxOperatorRelease,
  serveFluxOperatorReleases,
} from '@flux-bootstrap/test-peers';
import { BackstageApi } from './scaffolder';

// Plain CommonJS helpers shared with `npm start` (frontend build, backend process).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runner = require('backend/scripts/app-runner') as {
  repoRoot: string;
  ensureFrontendBuild(opts?: { log?: (line: string) => void }): {
    built: boolean;
    reason?: string;
    ms: number;
  };
  startBackend(opts: {
    configPaths?: string[];
    includeLocalConfig?: boolean;
    env?: NodeJS.ProcessEnv;
    onLine?: (line: string) => void;
  }): ChildProcess;
  waitForBackend(
    baseUrl: string,
    opts?: {
      child?: ChildProcess;
      signal?: AbortSignal;
      log?: (line: string) => void;
    },
  ): Promise<number>;
  stopProcess(child: ChildProcess | undefined, graceMs?: number): Promise<void>;
};

/** The repository root (where app-config.yaml is). */
export const repoRoot: string = runner.repoRoot;

/** The software templates the app registers (templates/<name>/template.yaml). */
export const TEMPLATE_NAMES = [
  'flux-bootstrap-bitbucket-server',
  'flux-bootstrap-git',
  'flux-decommission',
  'flux-bootstrap-fleet',
] as const;

/** The fixed names of the sandbox's demo world. */
export const SANDBOX = {
  cluster: 'sandbox',
  clusterTitle: 'Sandbox cluster',
  user: 'demo',
  userDisplayName: 'Demo User',
  project: 'FLEET',
  projectName: 'Fleet',
  group: 'platform',
  fluxVersion: 'v2.9.4',
  title: 'Flux Bootstrap Sandbox',
} as const;

export interface SandboxOptions {
  /** Log sink; every line is prefixed with `[sandbox]`. Default: console.log. */
  log?: (line: string) => void;
  /** Backend (and app) port; default a free one (7007 suits a human: `npm run sandbox`). */
  port?: number;
  /** Build the frontend when stale (default true). Without a build only the APIs are served. */
  buildFrontend?: boolean;
  /** Use PostgreSQL instead of in-memory SQLite (sets the documented POSTGRES_* variables). */
  postgres?: { host: string; port: number; user: string; password: string };
  /** Extra app-config (YAML-serialisable object) layered last, e.g. `{ scaffolder: { taskRecovery: … } }`. */
  extraConfig?: Record<string, unknown>;
  /** Bitbucket double options. */
  bitbucket?: { tls?: boolean; contextPath?: string };
  /**
   * Bitbucket sign-in for the templates (docs/how-to/act-as-user.md): the double serves HTTPS
   * (Backstage's Bitbucket Server auth provider only speaks https://), an OAuth client is
   * registered for the app, the demo user gets a password for the double's login page, and the
   * backend gets the documented AUTH_BITBUCKET_SERVER_* variables plus NODE_EXTRA_CA_CERTS (the
   * double's CA, for the provider's token and profile calls). Default false.
   */
  bitbucketSignIn?: boolean;
  /** Poll interval of the Flux controller simulator (default 500 ms). */
  simulatorIntervalMs?: number;
  /**
   * More clusters besides "sandbox", each its own kube-apiserver + etcd and simulator (the
   * end-to-end tests bootstrap several without one run touching another's).
   */
  extraClusters?: string[];
  /**
   * Extra clusters whose simulator also runs the Flux Operator loop and applies Git (each has its
   * own apiserver, the operator's CRDs are cluster-wide); the operator's install.yaml fixture is
   * served and configured as `fluxBootstrap.operator.manifests`.
   */
  operatorClusters?: string[];
  /** Forward backend log lines to `log` (default false: kept in memory, see `backendLogs()`). */
  showBackendLogs?: boolean;
}

export interface Sandbox {
  /** Where the app and its APIs are served, e.g. `http://127.0.0.1:7007`. */
  baseUrl: string;
  /** The demo user's Bitbucket HTTP access token (also the integration's token). */
  token: string;
  /**
   * With `bitbucketSignIn`: the OAuth client registered for the app on the double, and the demo
   * user's password for the double's login page.
   */
  signIn?: { clientId: string; user: string; password: string };
  bitbucket: BitbucketDouble;
  kube: KubeApiserver;
  simulator: FluxSimulator;
  /** Every cluster by name ("sandbox" first), with its apiserver and simulator. */
  clusters: Record<string, { kube: KubeApiserver; simulator: FluxSimulator }>;
  bundles: FluxBundleServer;
  /** The generated app-config file (ports, versions) layered on app-config.yaml + app-config.sandbox.yaml. */
  configPath: string;
  /** Environment the backend was started with (the documented BITBUCKET_*, K8S_CLUSTER_* … variables). */
  env: Record<string, string>;
  /** Backend log lines so far (for test failure diagnostics and secret scans). */
  backendLogs(): string[];
  /** How long the frontend build took (0 when it was current). */
  frontendBuildMs: number;
  /** The backend process (for crash tests). */
  backendProcess(): ChildProcess;
  /** Stops the backend and starts it again with the same configuration. */
  restartBackend(opts?: { signal?: NodeJS.Signals }): Promise<void>;
  /** Stops everything this sandbox started, in reverse order. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Waits until the catalog holds every template of {@link TEMPLATE_NAMES}; fails when the backend
 * exits, or after two minutes naming the missing ones (a template the catalog refused).
 */
async function waitForTemplates(
  baseUrl: string,
  backend: () => ChildProcess | undefined,
  log: (line: string) => void,
): Promise<void> {
  const api = await BackstageApi.asGuest(baseUrl);
  const deadline = Date.now() + 120_000;
  let missing: string[] = [...TEMPLATE_NAMES];
  for (;;) {
    const found = await Promise.all(
      missing.map(async name => {
        const res = await api.request(
          'GET',
          `/api/catalog/entities/by-name/template/default/${name}`,
        );
        if (res.status !== 200 && res.status !== 404) {
          throw new Error(
            `GET template ${name} from the catalog: ${res.status} ${res.text}`,
          );
        }
        return res.status === 200;
      }),
    );
    missing = missing.filter((_, i) => !found[i]);
    if (missing.length === 0) break;
    const child = backend();
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error('the backend exited while the catalog was loading');
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the catalog has not loaded the templates ${missing.join(
          ', ',
        )} within 2 minutes (see the catalog lines of the backend log)`,
      );
    }
    await new Promise(r => setTimeout(r, 500));
  }
  log(`the catalog holds the templates ${TEMPLATE_NAMES.join(', ')}`);
}

function prefixLog(log: (line: string) => void) {
  return (line: string) => log(`[sandbox] ${line}`);
}

function toYaml(value: unknown, indent = 0): string {
  // JSON is valid YAML; keep it readable with one key per line.
  return JSON.stringify(value, null, 2)
    .split('\n')
    .map(l => ' '.repeat(indent) + l)
    .join('\n');
}

/**
 * Starts the sandbox: the test-ground peers (Bitbucket Server double with git over HTTP and a real
 * sshd, a real kube-apiserver + etcd, the Flux controller simulator, a fixture Flux release
 * bundle server), seeds a demo user, project and token, then runs the app against them (frontend
 * built when stale). Everything binds 127.0.0.1; `stop()` ends it all.
 */
export async function startSandbox(
  opts: SandboxOptions = {},
): Promise<Sandbox> {
  const log = prefixLog(opts.log ?? (line => console.log(line)));
  const started: { name: string; stop: () => Promise<void> }[] = [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-bootstrap-sandbox-'));
  let backend: ChildProcess | undefined;
  const backendLogs: string[] = [];
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    log('stopping…');
    await runner.stopProcess(backend);
    for (const s of started.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log(`stopping ${s.name} failed: ${e instanceof Error ? e.message : e}`);
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
    log('stopped');
  };

  try {
    log('starting the Bitbucket Server double (REST, git over HTTP, sshd)…');
    const bitbucket = await startBitbucketDouble({
      ssh: true,
      tls: opts.bitbucket?.tls ?? opts.bitbucketSignIn,
      contextPath: opts.bitbucket?.contextPath,
      defaultBranchName: 'main',
    });
    started.push({ name: 'Bitbucket double', stop: () => bitbucket.stop() });
    const token = `sandbox-${crypto.randomBytes(18).toString('base64url')}`;
    const demoPassword = opts.bitbucketSignIn
      ? `demo-${crypto.randomBytes(6).toString('hex')}`
      : undefined;
    bitbucket.addUser({
      name: SANDBOX.user,
      displayName: SANDBOX.userDisplayName,
      email: 'demo@example.com',
      password: demoPassword,
    });
    bitbucket.grantGlobal(SANDBOX.user, 'PROJECT_CREATE');
    bitbucket.addGroup(SANDBOX.group, [SANDBOX.user]);
    bitbucket.addProject({
      key: SANDBOX.project,
      name: SANDBOX.projectName,
      description: 'Fleet repositories of the sandbox',
    });
    bitbucket.grantProject(
      SANDBOX.project,
      { user: SANDBOX.user },
      'PROJECT_ADMIN',
    );
    bitbucket.addToken({ token, user: SANDBOX.user, name: 'sandbox' });
    log(
      `Bitbucket at ${bitbucket.baseUrl} (ssh ${bitbucket.ssh?.host}): user "${SANDBOX.user}", project ${SANDBOX.project}, group "${SANDBOX.group}"`,
    );

    const clusters: Sandbox['clusters'] = {};
    const clusterNames = [
      SANDBOX.cluster as string,
      ...(opts.extraClusters ?? []),
    ];
    for (const name of clusterNames) {
      log(`starting kube-apiserver + etcd for cluster "${name}"…`);
      const k = await startKubeApiserver();
      started.push({ name: `kube-apiserver ${name}`, stop: () => k.stop() });
      log(`Kubernetes ${k.version} at ${k.url} (cluster "${name}")`);
      clusters[name] = {
        kube: k,
        simulator: undefined as unknown as FluxSimulator,
      };
    }
    const kube = clusters[SANDBOX.cluster].kube;

    // SANDBOX.fluxVersion and the version an upgrade goes to (v2.9.4 → v2.10.0).
    const { from: bundle, to: upgrade } = await buildFluxUpgradeBundles();
    const bundles = await serveFluxBundles([bundle, upgrade]);
    started.push({ name: 'Flux bundle server', stop: () => bundles.stop() });
    log(
      `Flux ${bundle.version} and ${
        upgrade.version
      } release bundles (fixtures) at ${bundles.urlFor(bundle.version)}`,
    );

    const operatorRelease = buildFluxOperatorRelease();
    const operatorReleases = opts.operatorClusters?.length
      ? await serveFluxOperatorReleases([operatorRelease])
      : undefined;
    if (operatorReleases)
      started.push({
        name: 'Flux Operator release server',
        stop: () => operatorReleases.stop(),
      });
    for (const [name, c] of Object.entries(clusters)) {
      const operator = opts.operatorClusters?.includes(name);
      const sim = await startFluxSimulator({
        kube: c.kube,
        namespace: 'flux-system',
        intervalMs: opts.simulatorIntervalMs ?? 500,
        ...(operator
          ? { apply: true, operator: { bundles: [bundle, upgrade] } }
          : {}),
      });
      started.push({
        name: `Flux controller simulator ${name}`,
        stop: () => sim.stop(),
      });
      c.simulator = sim;
    }
    const simulator = clusters[SANDBOX.cluster].simulator;
    log(
      'Flux controller simulator watching flux-system (test-only stand-in for the controllers)',
    );

    const port = opts.port ?? (await freePort());
    const baseUrl = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      BITBUCKET_HOST: bitbucket.host,
      BITBUCKET_API_BASE_URL: bitbucket.apiBaseUrl,
      BITBUCKET_TOKEN: token,
      BITBUCKET_SSH_HOST: bitbucket.ssh!.host,
      K8S_CLUSTER_NAME: SANDBOX.cluster,
      K8S_CLUSTER_TITLE: SANDBOX.clusterTitle,
      K8S_CLUSTER_URL: kube.url,
      K8S_CLUSTER_TOKEN: kube.adminToken,
      K8S_CLUSTER_CA_DATA: Buffer.from(kube.caPem).toString('base64'),
      FLUX_MANIFESTS_BASE_URL: bundles.baseUrl,
    };
    if (bitbucket.caFile) env.BITBUCKET_CA_FILE = bitbucket.caFile;
    let signIn: Sandbox['signIn'];
    if (opts.bitbucketSignIn) {
      // An incoming application link for the app, as a Bitbucket admin creates it.
      const client = bitbucket.registerOAuthClient({
        name: SANDBOX.title,
        redirectUri: `${baseUrl}/api/auth/bitbucketServer/handler/frame`,
      });
      env.AUTH_BITBUCKET_SERVER_CLIENT_ID = client.clientId;
      env.AUTH_BITBUCKET_SERVER_CLIENT_SECRET = client.clientSecret;
      // host[:port][/context-path]: Backstage calls https://<this>/rest/oauth2/latest/…
      env.AUTH_BITBUCKET_SERVER_HOST = new URL(bitbucket.baseUrl)
        .toString()
        .replace(/^https:\/\//, '')
        .replace(/\/+$/, '');
      // The provider's token and profile calls use Node's own HTTPS client.
      env.NODE_EXTRA_CA_CERTS = bitbucket.caFile!;
      signIn = {
        clientId: client.clientId,
        user: SANDBOX.user,
        password: demoPassword!,
      };
      log(
        `Bitbucket sign-in: OAuth client "${client.clientId}" (redirect ${baseUrl}/api/auth/bitbucketServer/handler/frame); user "${SANDBOX.user}" signs in on the double's login page`,
      );
    }
    if (opts.postgres) {
      env.POSTGRES_HOST = opts.postgres.host;
      env.POSTGRES_PORT = String(opts.postgres.port);
      env.POSTGRES_USER = opts.postgres.user;
      env.POSTGRES_PASSWORD = opts.postgres.password;
    }

    const clusterConfig = (name: string, k: KubeApiserver) => ({
      name,
      title: name === SANDBOX.cluster ? SANDBOX.clusterTitle : undefined,
      url: k.url,
      authProvider: 'serviceAccount',
      serviceAccountToken: k.adminToken,
      caData: Buffer.from(k.caPem).toString('base64'),
    });
    const generated = {
      // With extra clusters the list replaces app-config.yaml's single env-configured cluster.
      ...(clusterNames.length > 1
        ? {
            kubernetes: {
              clusterLocatorMethods: [
                {
                  type: 'config',
                  clusters: Object.entries(clusters).map(([n, c]) =>
                    clusterConfig(n, c.kube),
                  ),
                },
              ],
            },
          }
        : {}),
      app: { baseUrl },
      backend: {
        baseUrl,
        listen: { host: '127.0.0.1', port },
        cors: { origin: baseUrl },
      },
      fluxBootstrap: {
        manifests: {
          defaultVersion: SANDBOX.fluxVersion,
          sha256: {
            [bundle.version]: bundle.sha256,
            [upgrade.version]: upgrade.sha256,
          },
        },
        ...(operatorReleases
          ? {
              operator: {
                manifests: {
                  baseUrl: operatorReleases.baseUrl,
                  sha256: {
                    [operatorRelease.version]: operatorRelease.sha256,
                  },
                },
              },
            }
          : {}),
      },
    };
    const configPath = path.join(tmp, 'app-config.sandbox.generated.yaml');
    fs.writeFileSync(
      configPath,
      `# Generated by the sandbox for this run; removed when it stops.\n${toYaml(
        generated,
      )}\n`,
    );
    const configPaths = [
      path.join(runner.repoRoot, 'app-config.sandbox.yaml'),
      configPath,
    ];
    if (opts.extraConfig) {
      const extra = path.join(tmp, 'app-config.extra.yaml');
      fs.writeFileSync(extra, `${toYaml(opts.extraConfig)}\n`);
      configPaths.push(extra);
    }

    let frontendBuildMs = 0;
    if (opts.buildFrontend !== false) {
      const build = runner.ensureFrontendBuild({ log });
      frontendBuildMs = build.built ? build.ms : 0;
    }

    const startBackendProcess = async () => {
      log(`starting the Backstage backend at ${baseUrl}…`);
      backend = runner.startBackend({
        configPaths,
        includeLocalConfig: false,
        env,
        onLine: line => {
          backendLogs.push(line);
          if (opts.showBackendLogs) log(`backend: ${line}`);
        },
      });
      const ms = await runner.waitForBackend(baseUrl, { child: backend, log });
      log(`backend ready in ${Math.round(ms / 1000)} s`);
    };
    await startBackendProcess();
    // "Running" means a newcomer can open the templates: the catalog reads its locations in the
    // background after startup, so wait until it holds both (a Template missing here is a 404 on
    // the template page and on POST /api/scaffolder/v2/tasks).
    await waitForTemplates(baseUrl, () => backend, log);

    return {
      baseUrl,
      token,
      signIn,
      bitbucket,
      kube,
      simulator,
      clusters,
      bundles,
      configPath,
      env,
      frontendBuildMs,
      backendLogs: () => [...backendLogs],
      backendProcess: () => backend!,
      async restartBackend(o = {}) {
        const old = backend;
        if (old && old.exitCode === null && old.signalCode === null) {
          await new Promise<void>(resolve => {
            old.once('exit', () => resolve());
            old.kill(o.signal ?? 'SIGTERM');
          });
        }
        await startBackendProcess();
      },
      stop,
    };
  } catch (e) {
    if (backendLogs.length) {
      log(`backend log (last lines):\n${backendLogs.slice(-40).join('\n')}`);
    }
    await stop();
    throw e;
  }
}
