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
  buildFluxInstallPlan,
  ClusterConnection,
  createKubeClient,
  ensureFleetRepository,
  generateComponentObjects,
  gitHttpAuthHeaders,
  HttpsGitTransport,
  installFlux,
  loadFluxBundle,
  parseBitbucketRepoUrl,
  provisionDeployKey,
  pushFluxManifests,
  readBitbucketServerHosts,
  readManifestsConfig,
  Redactor,
  resolveFluxManifestOptions,
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
  const hosts = await readBitbucketServerHosts(config);
  const ref = parseBitbucketRepoUrl(input.repoUrl, hosts);
  const host = hosts.find(h => h.host === ref.host)!;
  const auth = { token: input.token };
  const bitbucket = { ref, host, auth, credentials: 'the token' };
  const cluster: ClusterConnection = {
    name: 'bench',
    url: input.kube.url,
    token: input.kube.token,
    caPem: input.kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  };
  const kube = await createKubeClient(cluster, { logger, redactor });
  try {
    // bitbucket:create-repo
    const repo = await ensureFleetRepository(
      { bitbucket, private: true, defaultBranch: 'main', groups: [] },
      { logger, redactor },
    );
    report('repository', { created: repo.created });

    // flux:push-manifests (token over HTTPS), all components, the cached bundle
    const source = readManifestsConfig(config);
    const options = resolveFluxManifestOptions(
      {
        path: input.path,
        syncUrl: repo.sshUrl,
        componentsExtra: [...FLUX_EXTRA_COMPONENTS],
      },
      { fluxVersion: source.defaultVersion },
    );
    const bundle = await loadFluxBundle(options.components.version, source, {
      logger,
    });
    const pushed = await pushFluxManifests(
      {
        transport: new HttpsGitTransport({
          url: repo.remoteUrl,
          headers: gitHttpAuthHeaders(auth),
        }),
        bundle: bundle.files,
        options,
        author: { name: 'Flux', email: '' },
      },
      { logger, redactor },
    );
    report('push', { revision: pushed.revision });

    // flux:generate-key: ECDSA P-384 (flux's default), Secret + read-only access key
    const key = await provisionDeployKey(
      {
        bitbucket,
        cluster: cluster.name,
        namespace: options.namespace,
        secretName: options.sync.secretName,
        key: SSH_KEY_DEFAULTS,
        readWrite: false,
        branch: options.branch,
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

    // flux:install: components + sync, wait until the (simulated) controllers synced the revision;
    // like the action, it loads the bundle and builds the plan from the generator's objects.
    const files = pushed.files;
    const dir = pushed.manifestsPath;
    const installBundle = await loadFluxBundle(
      options.components.version,
      source,
      { logger },
    );
    const plan = buildFluxInstallPlan({
      namespace: options.namespace,
      fluxVersion: options.components.version,
      components: options.components.components,
      componentObjects: generateComponentObjects(
        installBundle.files,
        options.components,
      ),
      syncYaml: files[`${dir}/gotk-sync.yaml`],
      expectedRevision: pushed.revision,
    });
    const result = await installFlux(kube, plan, {
      wait: true,
      timeoutMs: 240_000,
      pollIntervalMs: 500,
      logger,
    });
    if (!result.ready) throw new Error('Flux did not become ready');
    report('install', { revision: result.revision });
  } finally {
    kube.close();
  }
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
