/* eslint-disable no-console */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KubeHttp, kubePath } from '@flux-bootstrap/test-peers';
import type { Browser, Page } from 'playwright-core';
import {
  ARTIFACTS_DIR,
  launchChromium,
  recordProblems,
  screenshot,
} from './browser';
import yaml from 'yaml';
import { repoRoot, SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi, TaskResult } from './scaffolder';

// Day 2 in the sandbox app, through its REST APIs as the signed-in guest (the app's policy allows
// everything by default): two clusters bootstrapped from one fleet repository by the Bitbucket
// Server template, then the operate routes on one of them, then the decommission template on
// the other — a dry run that changes nothing, the run, and a second run that changes nothing.
// Each cluster is its own kube-apiserver + etcd with the Flux controller simulator.
jest.setTimeout(10 * 60_000);

const BITBUCKET_TEMPLATE = 'template:default/flux-bootstrap-bitbucket-server';
const DECOMMISSION_TEMPLATE = 'template:default/flux-decommission';
const RETIRED = 'retired';
const SLUG = 'fleet-dayops';

let sandbox: Sandbox;
let api: BackstageApi;

function git(args: string[]): string {
  return execFileSync(
    'git',
    ['--git-dir', sandbox.bitbucket.repoPath(SANDBOX.project, SLUG), ...args],
    { encoding: 'utf8' },
  ).trim();
}
const filesOnMain = () =>
  git(['ls-tree', '-r', '--name-only', 'main']).split('\n').filter(Boolean);

function expectCompleted(result: TaskResult, skipped: string[] = []) {
  const failed = Object.entries(result.steps).filter(
    ([id, s]) =>
      s !== 'completed' &&
      // The Flux Operator migration steps run only when flux:push-manifests asks for them.
      !(
        [...skipped, 'migrate', 'installMigrated'].includes(id) &&
        s === 'skipped'
      ),
  );
  if (result.status !== 'completed' || failed.length) {
    throw new Error(
      `task ${result.id} ended ${result.status}; steps ${JSON.stringify(
        result.steps,
      )}\n${result.log.slice(-40).join('\n')}`,
    );
  }
}

/** The keys of the fleet repository labelled as a cluster's deploy key. */
function keysOf(cluster: string): number[] {
  const label = `flux-system-main-flux-system-./clusters/${cluster}`;
  return sandbox.bitbucket
    .state()
    .accessKeys.filter(k => k.slug === SLUG && k.label === label)
    .map(k => k.id);
}

async function onCluster<T>(
  cluster: string,
  fn: (http: KubeHttp) => Promise<T>,
): Promise<T> {
  const http = new KubeHttp(sandbox.clusters[cluster].kube);
  try {
    return await fn(http);
  } finally {
    http.close();
  }
}
const fluxCrds = (cluster: string) =>
  onCluster(cluster, async http => {
    const res = await http.expect(
      'GET',
      kubePath({
        apiVersion: 'apiextensions.k8s.io/v1',
        resource: 'customresourcedefinitions',
      }),
      { query: { labelSelector: 'app.kubernetes.io/part-of=flux' } },
    );
    return (res.body.items as any[]).map(i => i.metadata.name);
  });
const kustomization = (cluster: string) =>
  onCluster(
    cluster,
    async http =>
      (
        await http.expect(
          'GET',
          kubePath({
            apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
            resource: 'kustomizations',
            namespace: 'flux-system',
            name: 'flux-system',
          }),
        )
      ).body,
  );

function bootstrapValues(cluster: string) {
  return {
    cluster,
    owner: 'group:default/platform-team',
    repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${SLUG}`,
    private: true,
    branch: 'main',
    authentication: 'ssh',
    networkPolicy: true,
    token: '*'.repeat(sandbox.token.length),
  };
}
function decommissionValues() {
  return {
    cluster: RETIRED,
    confirm: RETIRED,
    keepNamespace: false,
    prune: false,
    cleanRepository: true,
    repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${SLUG}`,
    branch: 'main',
    token: '*'.repeat(sandbox.token.length),
  };
}

beforeAll(async () => {
  sandbox = await startSandbox({
    extraClusters: [RETIRED],
    log: line => console.log(line),
  });
  api = await BackstageApi.asGuest(sandbox.baseUrl);
  for (const cluster of [SANDBOX.cluster, RETIRED]) {
    const result = await api.runTemplate(
      BITBUCKET_TEMPLATE,
      bootstrapValues(cluster),
      { token: sandbox.token },
    );
    expectCompleted(result);
  }
}, 8 * 60_000);

afterAll(async () => {
  if (sandbox) {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'dayops-backend.log'),
      sandbox.backendLogs().join('\n'),
    );
    await sandbox.stop();
  }
}, 2 * 60_000);

describe('operate routes in the app', () => {
  it('reconcile now, suspend with a reason, resume: each answers the fresh status', async () => {
    const reconciled = await api.request<any>(
      'POST',
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}/reconcile`,
      {},
    );
    expect(reconciled.status).toBe(200);
    expect(reconciled.body).toMatchObject({
      cluster: SANDBOX.cluster,
      action: 'reconcile',
      status: { state: 'ready' },
    });
    const requestedAt = (await kustomization(SANDBOX.cluster)).metadata
      .annotations['reconcile.fluxcd.io/requestedAt'];
    expect(
      (await kustomization(SANDBOX.cluster)).status.lastHandledReconcileAt,
    ).toBe(requestedAt);

    const refused = await api.request<any>(
      'POST',
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}/suspend`,
      {},
    );
    expect(refused.status).toBe(400);

    const suspended = await api.request<any>(
      'POST',
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}/suspend`,
      { reason: 'e2e: maintenance window' },
    );
    expect(suspended.status).toBe(200);
    expect(suspended.body.status.state).toBe('suspended');
    const ks = await kustomization(SANDBOX.cluster);
    expect(ks.spec.suspend).toBe(true);
    expect(ks.metadata.annotations).toMatchObject({
      'flux-bootstrap.io/suspended-reason': 'e2e: maintenance window',
      'flux-bootstrap.io/suspended-by': expect.stringMatching(/^user:/),
    });
    // the card reads the cache, which the operation refreshed
    const cached = await api.get<any>(
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}`,
    );
    expect(cached.state).toBe('suspended');

    const resumed = await api.request<any>(
      'POST',
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}/resume`,
      {},
    );
    expect(resumed.status).toBe(200);
    expect(resumed.body.status.state).toBe('ready');
    expect((await kustomization(SANDBOX.cluster)).spec.suspend).toBe(false);
    expect(
      sandbox
        .backendLogs()
        .some(l => l.includes('ran suspend on cluster sandbox')),
    ).toBe(true);
  });
});

describe('browser: the card operates the cluster', () => {
  let browser: Browser;
  let page: Page;
  let problems: string[];
  beforeAll(async () => {
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    problems = recordProblems(page);
  });
  afterAll(async () => browser?.close());

  async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const shot = await screenshot(page, `dayops-failed-${name}`).catch(
        () => 'none',
      );
      throw new Error(
        `${name}: ${(e as Error).message}\nscreenshot: ${shot}\n${problems.join(
          '\n',
        )}`,
      );
    }
  }

  it('reconciles, suspends with a reason and resumes from the cluster page, against the real cluster', async () => {
    const title = SANDBOX.clusterTitle;
    const row = page.getByTestId(`flux-cluster-${SANDBOX.cluster}`);
    await step('open', async () => {
      await page.goto(sandbox.baseUrl);
      await page.getByRole('button', { name: 'Enter' }).click();
      // signed in once the sign-in page is gone (its header shows the app title too)
      await page.getByText('Select a sign-in method').waitFor({
        state: 'detached',
      });
      await page.goto(
        `${sandbox.baseUrl}/catalog/default/resource/${SANDBOX.cluster}`,
      );
      await row.getByRole('img', { name: 'State: Ready' }).waitFor();
    });
    await step('reconcile', async () => {
      await row.getByRole('button', { name: `Reconcile now ${title}` }).click();
      await page.getByText(/^Reconciled: GitRepository flux-system/).waitFor();
    });
    const requestedAt = (await kustomization(SANDBOX.cluster)).metadata
      .annotations['reconcile.fluxcd.io/requestedAt'];
    expect(
      (await kustomization(SANDBOX.cluster)).status.lastHandledReconcileAt,
    ).toBe(requestedAt);
    await step('suspend', async () => {
      await row.getByRole('button', { name: `Suspend ${title}` }).click();
      const dialog = page.getByRole('dialog', {
        name: `Suspend the Flux sync of ${title}`,
      });
      await dialog
        .getByRole('textbox', { name: /Reason/ })
        .fill('INC-4711: freeze deployments during the failover');
      await screenshot(page, 'dayops-suspend-dialog');
      await dialog.getByRole('button', { name: 'Suspend sync' }).click();
      await row.getByRole('img', { name: 'State: Suspended' }).waitFor();
      await screenshot(page, 'dayops-card-suspended');
    });
    const ks = await kustomization(SANDBOX.cluster);
    expect(ks.spec.suspend).toBe(true);
    expect(ks.metadata.annotations['flux-bootstrap.io/suspended-reason']).toBe(
      'INC-4711: freeze deployments during the failover',
    );
    await step('resume', async () => {
      await row.getByRole('button', { name: `Resume ${title}` }).click();
      await row.getByRole('img', { name: 'State: Ready' }).waitFor();
    });
    expect((await kustomization(SANDBOX.cluster)).spec.suspend).toBe(false);
    await screenshot(page, 'dayops-card-operate');
    if (process.env.UPDATE_DOCS_IMAGES === '1') {
      for (const [from, to] of [
        ['dayops-card-operate.png', 'card-operate.png'],
        ['dayops-suspend-dialog.png', 'card-suspend-dialog.png'],
        ['dayops-card-suspended.png', 'card-operate-suspended.png'],
      ]) {
        fs.copyFileSync(
          path.join(ARTIFACTS_DIR, from),
          path.join(repoRoot, 'docs', 'images', to),
        );
      }
    }
  });
});

describe('Remove Flux from a cluster (the decommission template)', () => {
  it('dry-runs with every step succeeding, listing what would go, and changes nothing', async () => {
    const head = git(['rev-parse', 'main']);
    const crds = await fluxCrds(RETIRED);
    const res = await api.request<any>('POST', '/api/scaffolder/v2/dry-run', {
      template: yaml.parse(
        fs.readFileSync(
          path.join(repoRoot, 'templates/flux-decommission/template.yaml'),
          'utf8',
        ),
      ),
      values: decommissionValues(),
      secrets: { token: sandbox.token },
      directoryContents: [],
    });
    expect(res.status).toBe(200);
    const steps: Record<string, string> = {};
    for (const { body } of res.body.log)
      if (body.stepId && body.status) steps[body.stepId] = body.status;
    expect(steps).toEqual({
      uninstall: 'completed',
      deleteKeys: 'completed',
      removePath: 'completed',
      unregister: 'completed',
    });
    const log = (res.body.log as any[])
      .map(l => l.body.message ?? '')
      .join('\n');
    expect(log).toContain('Dry run: would delete namespace flux-system');
    expect(log).toContain(
      `would delete access key(s) ${keysOf(RETIRED)[0]} (REPO_READ`,
    );
    expect(log).toContain(
      `Dry run: would remove 3 file(s) of clusters/${RETIRED}/`,
    );
    expect(log).toContain(`would unregister resource:default/${RETIRED}`);
    expect(git(['rev-parse', 'main'])).toBe(head);
    expect(await fluxCrds(RETIRED)).toEqual(crds);
    expect(keysOf(RETIRED)).toHaveLength(1);
    expect(res.text).not.toContain(sandbox.token);
  });

  it('removes Flux, the deploy key, the folder and the entity of the retired cluster, and nothing of the other', async () => {
    const sandboxKeys = keysOf(SANDBOX.cluster);
    expect(sandboxKeys).toHaveLength(1);
    await api.waitForEntity({ kind: 'Resource', name: RETIRED });

    const result = await api.runTemplate(
      DECOMMISSION_TEMPLATE,
      decommissionValues(),
      { token: sandbox.token },
    );
    expectCompleted(result);
    expect(JSON.stringify(result.events)).not.toContain(sandbox.token);

    // the cluster: no Flux CRD, no Flux object, the namespace deleted (Terminating here: this
    // apiserver runs no namespace controller)
    expect(await fluxCrds(RETIRED)).toEqual([]);
    const ns = await onCluster(RETIRED, http =>
      http.request('GET', '/api/v1/namespaces/flux-system'),
    );
    expect(ns.status === 404 || ns.body.status.phase === 'Terminating').toBe(
      true,
    );
    const deployments = await onCluster(RETIRED, http =>
      http.expect('GET', '/apis/apps/v1/namespaces/flux-system/deployments'),
    );
    expect(deployments.body.items).toEqual([]);
    // Bitbucket: the retired cluster's key is gone, the other cluster's stays
    expect(keysOf(RETIRED)).toEqual([]);
    expect(keysOf(SANDBOX.cluster)).toEqual(sandboxKeys);
    // git: one commit removed the folder, the other cluster's folder stays
    expect(git(['log', '-1', '--format=%s', 'main'])).toBe(
      `Remove Flux from ${RETIRED}`,
    );
    expect(
      filesOnMain().filter(f => f.startsWith(`clusters/${RETIRED}/`)),
    ).toEqual([]);
    expect(filesOnMain()).toContain(
      `clusters/${SANDBOX.cluster}/flux-system/gotk-sync.yaml`,
    );
    // the catalog no longer has the entity
    const entity = await api.request(
      'GET',
      `/api/catalog/entities/by-name/resource/default/${RETIRED}`,
    );
    expect(entity.status).toBe(404);
    // the other cluster still runs
    const other = await api.get<any>(
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}?refresh=true`,
    );
    expect(other.state).toBe('ready');
  });

  it('runs again as a no-op: every step completes and nothing changes', async () => {
    const head = git(['rev-parse', 'main']);
    const result = await api.runTemplate(
      DECOMMISSION_TEMPLATE,
      decommissionValues(),
      { token: sandbox.token },
    );
    expectCompleted(result);
    expect(result.log.join('\n')).toContain(
      'Flux is not installed on cluster retired',
    );
    expect(result.log.join('\n')).toContain(
      `has no access key labelled "flux-system-main-flux-system-./clusters/${RETIRED}"`,
    );
    expect(result.log.join('\n')).toContain(
      `The catalog has no resource:default/${RETIRED}`,
    );
    expect(git(['rev-parse', 'main'])).toBe(head);
  });
});
