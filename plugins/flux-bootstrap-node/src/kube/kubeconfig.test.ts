import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  getSharedKubeApiserver,
  KubeCleanup,
  mintClientCertificate,
  uniqueName,
} from '@flux-bootstrap/test-peers';
import { installFlux } from '../install/installFlux';
import {
  adminConnection,
  planFor,
  trackClusterObjects,
} from '../install/__testUtils__/fixtures';
import { createKubeClient } from './client';
import { resolveCluster } from './cluster';
import type { KubeClient } from './types';

// Kubeconfig contexts authenticate through @kubernetes/client-node's KubeConfig: a client
// certificate minted by the test apiserver's own CA, and an exec plugin, work like a token.

jest.setTimeout(120_000);
const kube = getSharedKubeApiserver();
const b64 = (s: string) => Buffer.from(s).toString('base64');

let dir: string;
const savedKubeconfig = process.env.KUBECONFIG;
const clients: KubeClient[] = [];
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kubeconfig-test-'));
});
afterAll(() => {
  clients.forEach(c => c.close());
  fs.rmSync(dir, { recursive: true, force: true });
  if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = savedKubeconfig;
});

/** Writes a kubeconfig with one context per user and makes it the backend's ($KUBECONFIG). */
function useKubeconfig(users: Record<string, Record<string, unknown>>) {
  const file = path.join(dir, `${uniqueName('kubeconfig')}.json`);
  const names = Object.keys(users);
  fs.writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'test',
          cluster: {
            server: kube.url,
            'certificate-authority-data': b64(kube.caPem),
          },
        },
      ],
      users: names.map(name => ({ name, user: users[name] })),
      contexts: names.map(name => ({
        name,
        context: { cluster: 'test', user: name },
      })),
      'current-context': names[0],
    }),
    { mode: 0o600 },
  );
  process.env.KUBECONFIG = file;
}

async function clientOf(context: string) {
  const settings = { clusters: [], allowKubeconfigContexts: true };
  const client = await createKubeClient(resolveCluster(settings, context));
  clients.push(client);
  return client;
}

const createCrds = {
  verb: 'create',
  group: 'apiextensions.k8s.io',
  resource: 'customresourcedefinitions',
};

describe('kubeconfig contexts', () => {
  it('installs Flux through a context with a client certificate (system:masters), like a token does', async () => {
    const admin = await mintClientCertificate(kube, {
      user: 'flux-cert-admin',
      groups: ['system:masters'],
    });
    const nobody = await mintClientCertificate(kube, { user: 'flux-nobody' });
    const cert = (c: { certPem: string; keyPem: string }) => ({
      'client-certificate-data': b64(c.certPem),
      'client-key-data': b64(c.keyPem),
    });
    useKubeconfig({ 'cert-admin': cert(admin), 'cert-nobody': cert(nobody) });

    // The certificate is the identity: a user outside system:masters may not create CRDs.
    expect(
      (await (await clientOf('cert-nobody')).canI([createCrds]))[0],
    ).toEqual(expect.objectContaining({ allowed: false }));
    const client = await clientOf('cert-admin');
    expect((await client.canI([createCrds]))[0].allowed).toBe(true);

    const ns = uniqueName('kc-cert');
    const plan = await planFor(ns);
    const cleanup = trackClusterObjects(new KubeCleanup(kube), plan);
    try {
      const result = await installFlux(client, plan, { wait: false });
      expect(result.componentsApplied).toBe(true);
      const expected = [...plan.componentObjects, ...plan.syncObjects];
      expect(result.applied).toHaveLength(expected.length);
      // Read back with the token: the same objects a token-based install leaves.
      const byToken = await createKubeClient(adminConnection(kube));
      clients.push(byToken);
      for (const o of expected) {
        const live = await byToken.get({
          apiVersion: o.apiVersion,
          kind: o.kind,
          name: o.metadata.name,
          namespace: o.metadata.namespace,
        });
        expect(live?.metadata.name).toBe(o.metadata.name);
      }
    } finally {
      await cleanup.run();
    }
  });

  it('authenticates through an exec plugin, run by client-node', async () => {
    const counter = path.join(dir, 'exec-calls');
    const credential = JSON.stringify({
      apiVersion: 'client.authentication.k8s.io/v1beta1',
      kind: 'ExecCredential',
      status: { token: kube.adminToken },
    });
    useKubeconfig({
      'exec-admin': {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: '/bin/sh',
          args: ['-c', `echo x >> '${counter}'; echo '${credential}'`],
          interactiveMode: 'Never',
        },
      },
    });
    const client = await clientOf('exec-admin');
    expect((await client.version()).major).toBe('1');
    expect(
      await client.get({
        apiVersion: 'v1',
        kind: 'Namespace',
        name: 'default',
      }),
    ).toEqual(expect.objectContaining({ kind: 'Namespace' }));
    expect(
      fs.readFileSync(counter, 'utf8').trim().split('\n').length,
    ).toBeGreaterThanOrEqual(1);
  });
});
