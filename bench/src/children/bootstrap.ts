/* eslint-disable no-console */
/**
 * A full Flux bootstrap with the engine, in its own process so that its peak RSS can be read:
 * create the repository on Bitbucket → push the manifests → deploy key (Secret + access key) →
 * install Flux and wait until it synced. Run by bench/src/benchmarks/memory.ts with the peers'
 * addresses in a JSON file (argv[2]); reports JSON lines on stdout. Steps mirror the four
 * scaffolder actions (bitbucket:create-repo, flux:push-manifests, flux:generate-key, flux:install).
 */
import fs from 'node:fs';
import { ConfigReader } from '@backstage/config';
import type { JsonObject } from '@backstage/types';
import {
  type ClusterConnection,
  ensureFleetRepository,
  fluxBootstrapSettings,
  installFluxOnCluster,
  parseBitbucketRepoUrl,
  provisionDeployKey,
  pushFluxManifests,
  Redactor,
  FLUX_EXTRA_COMPONENTS,
  SSH_KEY_DEFAULTS,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';

export interface BootstrapChildInput {
  config: JsonObject;
  repoUrl: string;
  token: string;
  kube: { url: string; token: string; caPem: string };
  path: string;
}

function memory() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) =>
    Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

const started = process.hrtime.bigint();
function report(phase: string, extra: Record<string, unknown> = {}) {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({ phase, ms, ...memory(), ...extra }));
}

async function main() {
  report('loaded');
  const input = JSON.parse(
    fs.readFileSync(process.argv[2], 'utf8'),
  ) as BootstrapChildInput;
  const config = new ConfigReader(input.config);
  const redactor = new Redactor([input.token, input.kube.token]);
  const logger = redactor.wrapLogger({
    info() {},
    warn() {},
    error() {},
    debug() {},
  });
  const settings = await fluxBootstrapSettings(config).get();
  const hosts = settings.bitbucketServer;
  const ref = parseBitbucketRepoUrl(input.repoUrl, hosts);
  const host = hosts.find(h => h.host === ref.host)!;
  const bitbucket = {
    ref,
    host,
    auth: { token: input.token },
    credentials: 'the bench token',
  };
  const cluster: ClusterConnection = {
    name: 'bench',
    url: input.kube.url,
    token: input.kube.token,
    caPem: input.kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  };
  // bitbucket:create-repo
  const repo = await ensureFleetRepository(
    { bitbucket, private: true, defaultBranch: 'main', groups: [] },
    { logger, redactor },
  );
  report('repository', { created: repo.created });

  // flux:push-manifests (token over HTTPS), all components, the cached bundle
  const manifests = {
    path: input.path,
    syncUrl: repo.sshUrl,
    componentsExtra: [...FLUX_EXTRA_COMPONENTS],
  };
  const pushed = await pushFluxManifests(
    {
      repository: { bitbucket },
      manifests,
      author: { name: 'Flux', email: '' },
    },
    { settings, logger, redactor },
  );
  report('push', { revision: pushed.revision });

  // flux:generate-key: ECDSA P-384 (flux's default), Secret + read-only access key
  const key = await provisionDeployKey(
    {
      bitbucket,
      cluster: cluster.name,
      namespace: 'flux-system',
      secretName: 'flux-system',
      key: SSH_KEY_DEFAULTS,
      readWrite: false,
      branch: 'main',
      path: input.path,
      rotate: false,
    },
    {
      settings: { clusters: [cluster], allowKubeconfigContexts: false },
      logger,
      redactor,
    },
  );
  report('key', { accessKeyId: key.accessKeyId });

  // flux:install: components + sync, wait until the (simulated) controllers synced the
  // revision; like the action, it loads the bundle and builds the plan from the generator's
  // objects.
  const result = await installFluxOnCluster(
    {
      cluster: cluster.name,
      manifests,
      revision: pushed.revision,
      timeoutMs: 240_000,
    },
    {
      settings: { ...settings, clusters: [cluster] },
      logger,
      redactor,
      pollIntervalMs: 500,
    },
  );
  if (!result.ready) throw new Error('Flux did not become ready');
  report('install', { revision: result.revision });
  report('done');
}

main().then(
  () => process.exit(0),
  e => {
    console.log(
      JSON.stringify({
        phase: 'error',
        message: String((e as Error)?.stack ?? e),
      }),
    );
    process.exit(1);
  },
);
