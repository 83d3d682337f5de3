/**
 * installFluxOperator on a private real kube-apiserver (the operator's CRDs are cluster-wide) with
 * the Flux simulator's operator loop (FluxInstance → Flux objects of the requested version, sync
 * from Git with a real git over HTTPS, FluxReport) and kustomize-controller applying Git (apply:
 * true), the operator's install.yaml fixture served like a GitHub release.
 */
import {
  buildFluxOperatorRelease,
  buildFluxUpgradeBundles,
  serveFluxOperatorReleases,
  startFluxSimulator,
  startKubeApiserver,
  type FluxBundle,
  type FluxOperatorReleaseServer,
  type FluxSimulator,
  type KubeApiserver,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import type { KubeClient, KubeObject } from '../kube/types';
import { FluxInstallError } from '../install/errors';
import { installFlux } from '../install/installFlux';
import { tokenAuthSecret } from '../install/plan';
import {
  adminConnection,
  fluxBundleFiles,
  planFor,
  recordingLogger,
  startFleetRepo,
  type FleetRepo,
} from '../install/__testUtils__/fixtures';
import { renderFluxManifests } from '../git/pushFluxManifests';
import { resolveFluxManifestOptions } from '../manifests/options';
import { renderFluxInstanceFiles, type FluxOperatorOptions } from './instance';
import { installFluxOperator, type FluxOperatorInstallPlan } from './install';
import { loadFluxOperatorRelease } from './release';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

jest.setTimeout(240_000);

const NS = 'flux-system';
const PATH = 'clusters/test';
const TOKEN = 'canary-operator-token-1f9c2e';
const COMPONENTS = [
  'helm-controller',
  'kustomize-controller',
  'notification-controller',
  'source-controller',
];
const FAST = {
  pollIntervalMs: 200,
  progressIntervalMs: 1_000,
  timeoutMs: 120_000,
};

let bundles: { from: FluxBundle; to: FluxBundle };
let releases: FluxOperatorReleaseServer;
let cacheDir: string;
beforeAll(async () => {
  bundles = await buildFluxUpgradeBundles();
  releases = await serveFluxOperatorReleases([buildFluxOperatorRelease()]);
  cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-release-'));
});
afterAll(async () => {
  await releases?.stop();
  fs.rmSync(cacheDir, { recursive: true, force: true });
});

const stops: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

interface World {
  kube: KubeApiserver;
  repo: FleetRepo;
  sim: FluxSimulator;
  admin: KubeClient;
}

async function world(): Promise<World> {
  const [kube, repo] = await Promise.all([
    startKubeApiserver(),
    startFleetRepo({ user: 'alice', token: TOKEN }),
  ]);
  stops.push(
    () => kube.stop(),
    () => repo.stop(),
  );
  const sim = await startFluxSimulator({
    kube: kube.info(),
    namespace: NS,
    intervalMs: 150,
    apply: true,
    operator: { bundles: [bundles.from, bundles.to] },
  });
  stops.push(() => sim.stop());
  const admin = await createKubeClient(adminConnection(kube.info()));
  stops.push(() => admin.close());
  return { kube, repo, sim, admin };
}

const resolved = (repo: FleetRepo) =>
  resolveFluxManifestOptions(
    { path: PATH, syncUrl: repo.url, namespace: NS },
    { fluxVersion: 'v2.9.4' },
  );
const operatorOptions = (version: string): FluxOperatorOptions => ({
  version,
  clusterType: 'kubernetes',
  multitenant: false,
});

async function planOf(
  repo: FleetRepo,
  version: string,
  expectedRevision: string,
): Promise<FluxOperatorInstallPlan> {
  const options = resolved(repo);
  const release = await loadFluxOperatorRelease('v0.58.1', {
    baseUrl: releases.baseUrl,
    cacheDir,
    sha256: { 'v0.58.1': buildFluxOperatorRelease().sha256 },
    defaultVersion: 'v0.58.1',
    downloadTimeoutMs: 10_000,
  });
  return {
    namespace: NS,
    release,
    instance: renderFluxInstanceFiles(options, operatorOptions(version))
      .instance,
    secret: tokenAuthSecret({
      namespace: NS,
      name: 'flux-system',
      username: 'alice',
      password: TOKEN,
      caPem: repo.caPem,
    }),
    components: options.components.components,
    path: `./${PATH}`,
    expectedRevision,
  };
}

const get = (
  admin: KubeClient,
  apiVersion: string,
  kind: string,
  name: string,
) => admin.get({ apiVersion, kind, name, namespace: NS });
const uids = async (admin: KubeClient) =>
  Object.fromEntries(
    await Promise.all(
      COMPONENTS.map(async n => [
        n,
        (await get(admin, 'apps/v1', 'Deployment', n))?.metadata.uid,
      ]),
    ),
  );

describe('installFluxOperator', () => {
  it('installs the operator and a FluxInstance that syncs the pushed revision; a re-run writes nothing; a version bump in Git upgrades Flux', async () => {
    const { repo, admin, sim } = await world();
    const files = renderFluxInstanceFiles(
      resolved(repo),
      operatorOptions('2.9.x'),
    ).files;
    const sha = repo.commit(files, { message: 'Add Flux Operator instance' });
    const plan = await planOf(repo, '2.9.x', `main@sha1:${sha}`);
    const { logger, lines } = recordingLogger();

    const result = await installFluxOperator(admin, plan, {
      ...FAST,
      logger,
    }).catch(e => {
      throw new Error(`${e}\n${sim.events().slice(-30).join('\n')}`);
    });

    expect(result).toMatchObject({
      fluxVersion: 'v2.9.4',
      ready: true,
      revision: `refs/heads/main@sha1:${sha}`,
      componentsApplied: true,
    });
    expect(result.components.map(c => c.name).sort()).toEqual(COMPONENTS);
    const operator = await get(admin, 'apps/v1', 'Deployment', 'flux-operator');
    expect(operator?.status).toMatchObject({ availableReplicas: 1 });
    const instance = (await get(
      admin,
      'fluxcd.controlplane.io/v1',
      'FluxInstance',
      'flux',
    )) as KubeObject & { status: any };
    expect(instance.status.conditions).toContainEqual(
      expect.objectContaining({ type: 'Ready', status: 'True' }),
    );
    expect(instance.status.lastAppliedRevision).toMatch(/^v2\.9\.4@sha256:/);
    const report = (await get(
      admin,
      'fluxcd.controlplane.io/v1',
      'FluxReport',
      'flux',
    )) as any;
    expect(report.spec.sync).toMatchObject({
      id: `kustomization/${NS}`,
      ready: true,
      path: PATH,
    });
    expect(report.spec.sync.status).toContain(sha);
    const ks = (await get(
      admin,
      'kustomize.toolkit.fluxcd.io/v1',
      'Kustomization',
      NS,
    )) as any;
    expect(ks.status.lastAppliedRevision).toBe(`refs/heads/main@sha1:${sha}`);
    // It said what it waited for.
    expect(lines.join('\n')).toMatch(
      /✔ flux-operator: deployment ready \(ghcr.io\/controlplaneio-fluxcd\/flux-operator:v0.58.1\)/,
    );
    expect(lines.join('\n')).toMatch(
      /Waiting for the FluxInstance on cluster "test-cluster": /,
    );
    expect(lines.join('\n')).not.toContain(TOKEN);

    // Re-run: every object is unchanged; the instance, synced from Git now, is not applied.
    const again = await installFluxOperator(admin, plan, FAST);
    expect(again.ready).toBe(true);
    expect(again.componentsApplied).toBe(false);
    expect(again.applied.filter(a => a.result !== 'unchanged')).toEqual([]);
    expect(again.applied.map(a => a.object)).not.toContain(
      `FluxInstance ${NS}/flux`,
    );

    // A version bump is an edit of flux-instance.yaml in Git; the operator upgrades Flux.
    const before = await uids(admin);
    const bumped = renderFluxInstanceFiles(
      resolved(repo),
      operatorOptions('v2.10.0'),
    ).files;
    const sha2 = repo.commit(bumped, { message: 'Add Flux Operator instance' });
    const upgraded = await installFluxOperator(
      admin,
      await planOf(repo, 'v2.10.0', `main@sha1:${sha2}`),
      FAST,
    );
    expect(upgraded).toMatchObject({
      fluxVersion: 'v2.10.0',
      ready: true,
      revision: `refs/heads/main@sha1:${sha2}`,
    });
    expect(
      upgraded.components.find(c => c.name === 'source-controller')?.image,
    ).toMatch(/source-controller:v2\.10\.0/);
    expect(await uids(admin)).toEqual(before);
  });

  it('adopts a Flux installed by flux bootstrap in place: the Deployments keep their UIDs', async () => {
    const { repo, admin } = await world();
    // flux bootstrap, as the product does it (gotk files in Git, installFlux).
    const options = resolved(repo);
    const boot = renderFluxManifests(await fluxBundleFiles(), options);
    const sha = repo.commit({
      [boot.components.path]: boot.components.content,
      [boot.sync.path]: boot.sync.content,
      [boot.kustomization.path]: boot.kustomization.content,
    });
    const bootstrapPlan = await planFor(NS, {
      path: PATH,
      syncUrl: repo.url,
      secret: tokenAuthSecret({
        namespace: NS,
        name: 'flux-system',
        username: 'alice',
        password: TOKEN,
        caPem: repo.caPem,
      }),
      expectedRevision: `main@sha1:${sha}`,
    });
    await installFlux(admin, bootstrapPlan, FAST);
    const before = await uids(admin);

    const result = await installFluxOperator(
      admin,
      await planOf(repo, '2.9.x', `main@sha1:${sha}`),
      FAST,
    );

    expect(result).toMatchObject({
      ready: true,
      componentsApplied: true,
      fluxVersion: 'v2.9.4',
    });
    expect(await uids(admin)).toEqual(before);
    const sc = await get(admin, 'apps/v1', 'Deployment', 'source-controller');
    expect(sc?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe(
      'flux-operator',
    );
    expect(
      sc?.metadata.labels?.['kustomize.toolkit.fluxcd.io/name'],
    ).toBeUndefined();
  });

  it('fails fast with the operator message when the instance cannot be built', async () => {
    const { repo, admin } = await world();
    const sha = repo.commit(
      renderFluxInstanceFiles(resolved(repo), operatorOptions('3.x')).files,
    );
    const error = await installFluxOperator(
      admin,
      await planOf(repo, '3.x', `main@sha1:${sha}`),
      FAST,
    ).catch(e => e);
    expect(error).toBeInstanceOf(FluxInstallError);
    expect(error.reason).toBe('sync-failed');
    expect(error.message).toMatch(
      /FluxInstance flux-system\/flux on cluster "test-cluster" is not ready: Ready=False \(BuildFailed\): build failed: no match found for semver: 3\.x/,
    );
  });
});
