/* eslint-disable no-console */
/**
 * The fleet template through the real app (issue 17): the sandbox backend (scaffolder, catalog,
 * status backend) with three clusters, each a real kube-apiserver + etcd with the Flux
 * simulator, and the Bitbucket double (git http-backend, sshd). One run bootstraps all three;
 * with one apiserver down a re-run fails naming it, and after its restart a re-run completes.
 * The template editor's dry run writes nothing; HTTPS (token) moves the fleet to token Secrets.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KubeHttp, kubePath } from '@flux-bootstrap/test-peers';
import yaml from 'yaml';
import { SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi, TaskResult } from './scaffolder';

jest.setTimeout(10 * 60_000);

const FLEET_TEMPLATE = 'template:default/flux-bootstrap-fleet';
const SLUG = 'fleet-e2e';
const CLUSTERS = [SANDBOX.cluster, 'east', 'west'];

let sandbox: Sandbox;
let api: BackstageApi;

const git = (args: string[]) =>
  execFileSync(
    'git',
    ['--git-dir', sandbox.bitbucket.repoPath(SANDBOX.project, SLUG), ...args],
    { encoding: 'utf8' },
  ).trim();

function values() {
  return {
    clusters: CLUSTERS,
    pathPattern: 'clusters/<cluster>',
    owner: 'group:default/platform-team',
    repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${SLUG}`,
    private: true,
    branch: 'main',
    token: '*'.repeat(sandbox.token.length),
  };
}

const describeTask = (r: TaskResult) =>
  `task ${r.id} ended ${r.status}; steps ${JSON.stringify(r.steps)}\n${r.log
    .slice(-40)
    .join('\n')}`;

async function onCluster<T>(name: string, fn: (http: KubeHttp) => Promise<T>) {
  const http = new KubeHttp(sandbox.clusters[name].kube);
  try {
    return await fn(http);
  } finally {
    http.close();
  }
}

beforeAll(async () => {
  sandbox = await startSandbox({
    extraClusters: CLUSTERS.slice(1),
    buildFrontend: false,
    log: line => console.log(line),
  });
  api = await BackstageApi.asGuest(sandbox.baseUrl);
}, 8 * 60_000);

afterAll(async () => {
  await sandbox?.stop();
}, 2 * 60_000);

describe('template Bootstrap Flux on a fleet', () => {
  it('bootstraps three clusters from one run: one repository, one commit pair, three keys, Secrets, entities, each ready', async () => {
    const result = await api.runTemplate(FLEET_TEMPLATE, values(), {
      token: sandbox.token,
    });
    if (result.status !== 'completed') throw new Error(describeTask(result));

    const repos = sandbox.bitbucket.state().repos.filter(r => r.slug === SLUG);
    expect(repos).toHaveLength(1);
    const subjects = git(['log', '--format=%s', 'main']).split('\n');
    expect(subjects.slice(0, 2)).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
    ]);
    const body = git(['log', '-1', '--format=%b', 'main']);
    for (const c of CLUSTERS)
      expect(body).toContain(`- ${c} (clusters/${c}/flux-system)`);
    const head = git(['rev-parse', 'main']);
    const keys = sandbox.bitbucket
      .state()
      .accessKeys.filter(k => k.slug === SLUG)
      .map(k => k.label)
      .sort();
    expect(keys).toEqual(
      CLUSTERS.map(c => `flux-system-main-flux-system-./clusters/${c}`).sort(),
    );
    for (const c of CLUSTERS) {
      const ks = await onCluster(c, async http => {
        await http.expect(
          'GET',
          kubePath({
            apiVersion: 'v1',
            resource: 'secrets',
            namespace: 'flux-system',
            name: 'flux-system',
          }),
        );
        return (
          await http.expect(
            'GET',
            kubePath({
              apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
              resource: 'kustomizations',
              namespace: 'flux-system',
              name: 'flux-system',
            }),
          )
        ).body;
      });
      expect(ks.status.lastAppliedRevision).toBe(`main@sha1:${head}`);
      // catalog:register adds the location; the catalog reads it moments later.
      const deadline = Date.now() + 60_000;
      let entity = { status: 0 };
      while (entity.status !== 200 && Date.now() < deadline) {
        entity = await api.request(
          'GET',
          `/api/catalog/entities/by-name/resource/default/${c}`,
        );
        if (entity.status !== 200) await new Promise(r => setTimeout(r, 500));
      }
      expect(entity.status).toBe(200);
      const status = await api.get<any>(
        `/api/flux-bootstrap/clusters/${c}?refresh=true`,
      );
      expect(status.state).toBe('ready');
    }
    expect(result.log.some(l => l.includes('[east] '))).toBe(true);
    expect(result.log.join('\n')).not.toContain(sandbox.token);
  });

  it('with one apiserver down the run fails naming it; after its restart a re-run completes without a commit', async () => {
    const head = git(['rev-parse', 'main']);
    await sandbox.clusters.west.kube.stopApiserver();
    let failed: TaskResult;
    try {
      failed = await api.runTemplate(FLEET_TEMPLATE, values(), {
        token: sandbox.token,
      });
    } finally {
      await sandbox.clusters.west.kube.startApiserver();
    }
    expect(failed.status).toBe('failed');
    const errors = failed.events
      .map(e => JSON.stringify(e.body))
      .filter(b => b.includes('clusters failed'));
    expect(errors.join('\n')).toMatch(/1 of 3 clusters failed — west: /);
    expect(failed.log.some(l => /\| sandbox \| unchanged \|/.test(l))).toBe(
      true,
    );

    const rerun = await api.runTemplate(FLEET_TEMPLATE, values(), {
      token: sandbox.token,
    });
    if (rerun.status !== 'completed') throw new Error(describeTask(rerun));
    expect(git(['rev-parse', 'main'])).toBe(head);
    expect(rerun.log.some(l => /\| east \| unchanged \|/.test(l))).toBe(true);
  });

  it('dry-runs in the template editor: planned rows, no write on Bitbucket', async () => {
    const head = git(['rev-parse', 'main']);
    const keys = sandbox.bitbucket.state().accessKeys.length;
    sandbox.bitbucket.clearRequests();
    const res = await api.request<any>('POST', '/api/scaffolder/v2/dry-run', {
      template: yaml.parse(
        fs.readFileSync(
          path.resolve(
            __dirname,
            '../../../templates/flux-bootstrap-fleet/template.yaml',
          ),
          'utf8',
        ),
      ),
      values: {
        ...values(),
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=fleet-e2e-dry`,
      },
      secrets: { token: sandbox.token },
      directoryContents: [],
    });
    expect(res.status).toBe(200);
    const log = (res.body.log as any[])
      .map(l => l.body.message ?? '')
      .join('\n');
    const steps: Record<string, string> = {};
    for (const { body } of res.body.log)
      if (body.stepId && body.status) steps[body.stepId] = body.status;
    expect(steps.fleet).toBe('completed');
    expect(log).toContain(
      `Would create private repository ${SANDBOX.project}/fleet-e2e-dry`,
    );
    for (const c of CLUSTERS) {
      expect(log).toContain(`| ${c} | planned |`);
      expect(log).toContain(`[${c}] Would install Flux v2.9.4`);
    }
    // Reads only (SSH: the simulators keep fetching the fleet repository, as Flux does).
    const written = sandbox.bitbucket
      .requests()
      .filter(r => r.method !== 'GET' && r.method !== 'SSH');
    expect(written.map(r => `${r.method} ${r.path}`)).toEqual([]);
    expect(sandbox.bitbucket.state().repos.map(r => r.slug)).not.toContain(
      'fleet-e2e-dry',
    );
    expect(sandbox.bitbucket.state().accessKeys).toHaveLength(keys);
    expect(git(['rev-parse', 'main'])).toBe(head);
    expect(res.text).not.toContain(sandbox.token);
  });

  it('moves the fleet to HTTPS with the token: token Secrets, https sync URL, no new access key', async () => {
    const keys = sandbox.bitbucket.state().accessKeys.length;
    const result = await api.runTemplate(
      FLEET_TEMPLATE,
      { ...values(), authentication: 'token' },
      { token: sandbox.token },
    );
    if (result.status !== 'completed') throw new Error(describeTask(result));

    const head = git(['rev-parse', 'main']);
    const url = `${
      sandbox.bitbucket.baseUrl
    }/scm/${SANDBOX.project.toLowerCase()}/${SLUG}.git`;
    for (const c of CLUSTERS) {
      const [secret, source, ks] = await onCluster(c, http =>
        Promise.all(
          [
            { apiVersion: 'v1', resource: 'secrets' },
            {
              apiVersion: 'source.toolkit.fluxcd.io/v1',
              resource: 'gitrepositories',
            },
            {
              apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
              resource: 'kustomizations',
            },
          ].map(
            async r =>
              (
                await http.expect(
                  'GET',
                  kubePath({
                    ...r,
                    namespace: 'flux-system',
                    name: 'flux-system',
                  }),
                )
              ).body,
          ),
        ),
      );
      const text = (k: string) =>
        Buffer.from(secret.data[k], 'base64').toString('utf8');
      expect(text('username')).toBe(SANDBOX.user);
      expect(text('password')).toBe(sandbox.token);
      expect(source.spec.url).toBe(url);
      // The simulator cloned over HTTP(S) with the Secret's username and token.
      expect(ks.status.lastAppliedRevision).toBe(`main@sha1:${head}`);
    }
    expect(sandbox.bitbucket.state().accessKeys).toHaveLength(keys);
    expect(result.log.join('\n')).toContain('no deploy keys');
    expect(JSON.stringify(result.events)).not.toContain(sandbox.token);
  });
});
