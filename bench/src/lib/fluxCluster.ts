import {
  buildFluxBundle,
  startFluxSimulator,
  startGitHttpServer,
} from '@flux-bootstrap/test-peers';
import type { KubeApiserverInfo } from '@flux-bootstrap/test-peers';
import { createKubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { renderFluxManifests } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/git/pushFluxManifests';
import { generateComponentObjects } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/components';
import { resolveFluxManifestOptions } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/options';
// A plain git server has no Bitbucket REST API for the use cases to look the repository up:
// the steps after that lookup, from the engine's internals.
/* eslint-disable @backstage/no-forbidden-package-imports */
import { gitHttpAuthHeaders } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/bitbucket/client';
import { commitFluxManifests } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/git/pushFluxManifests';
import { HttpsGitTransport } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/git/transport';
import { installFlux } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/install/installFlux';
import {
  buildFluxInstallPlan,
  tokenAuthSecret,
} from '@flux-bootstrap/plugin-flux-bootstrap-node/src/install/plan';
/* eslint-enable @backstage/no-forbidden-package-imports */
import { defer } from './cleanup';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/**
 * Bootstraps Flux onto `kube` with the engine (token auth over smart HTTP), with the Flux
 * controller simulator keeping the objects Ready, so status readers find a healthy installation.
 * Everything started here is released by the benchmark's cleanup.
 */
export async function bootstrapHealthyFlux(
  kube: KubeApiserverInfo,
  namespace = 'flux-system',
) {
  const token = 'bench-status-token-0123456789';
  const git = await startGitHttpServer();
  defer('git HTTP server', () => git.stop());
  git.addToken({ token, user: 'flux', access: 'write' });
  const repo = git.createRepo('fleet', {
    defaultBranch: 'main',
    initialCommit: true,
  });
  const bundle = await buildFluxBundle({ version: 'v2.9.4' });
  const options = resolveFluxManifestOptions(
    { path: 'clusters/bench', syncUrl: repo.url, namespace },
    { fluxVersion: 'v2.9.4' },
  );
  const pushed = await commitFluxManifests(
    {
      transport: new HttpsGitTransport({
        url: repo.url,
        headers: gitHttpAuthHeaders({ token }),
      }),
      files: renderFluxManifests(bundle.files, options),
      version: options.components.version,
      branch: options.branch,
      author: { name: 'Flux', email: '' },
    },
    { logger: quiet },
  );
  const plan = buildFluxInstallPlan({
    options,
    componentObjects: generateComponentObjects(
      bundle.files,
      options.components,
    ),
    secret: tokenAuthSecret({
      namespace,
      name: options.sync.secretName,
      username: 'flux',
      password: token,
    }),
    expectedRevision: pushed.revision,
  });
  const sim = await startFluxSimulator({ kube, namespace, intervalMs: 200 });
  defer('Flux simulator', () => sim.stop());
  const client = await createKubeClient({
    name: 'setup',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
  try {
    const result = await installFlux(client, plan, {
      wait: true,
      timeoutMs: 180_000,
      pollIntervalMs: 250,
    });
    if (!result.ready)
      throw new Error('Flux did not become ready on the benchmark cluster');
    return { revision: result.revision, repoUrl: repo.url };
  } finally {
    client.close();
  }
}
