import type { KubeClient, KubeObject, KubeObjectRef } from '../kube/types';
import { KubeApiError } from '../kube/errors';
import { readClusterStatus } from './readClusterStatus';

/*
 * How one cluster's reads are issued (the states themselves are tested against a real
 * kube-apiserver in readClusterStatus.test.ts): a scripted client whose every call waits until
 * the test releases it, so what is in flight at once is visible.
 */

const ready = [{ type: 'Ready', status: 'True', reason: 'Succeeded' }];

function fluxObjects(ns: string): Record<string, KubeObject> {
  const labels = { 'app.kubernetes.io/part-of': 'flux' };
  return {
    'CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io': {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: {
        name: 'gitrepositories.source.toolkit.fluxcd.io',
        labels: {
          'app.kubernetes.io/instance': ns,
          'app.kubernetes.io/version': 'v2.9.4',
          'app.kubernetes.io/part-of': 'flux',
        },
      },
    },
    [`Kustomization/${ns}/${ns}`]: {
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      metadata: { name: ns, namespace: ns, generation: 1 },
      spec: {
        path: './clusters/x',
        sourceRef: { kind: 'GitRepository', name: ns },
      },
      status: {
        observedGeneration: 1,
        conditions: ready,
        lastAppliedRevision:
          'main@sha1:1111111111111111111111111111111111111111',
      },
    },
    [`GitRepository/${ns}/${ns}`]: {
      apiVersion: 'source.toolkit.fluxcd.io/v1',
      kind: 'GitRepository',
      metadata: { name: ns, namespace: ns, generation: 1 },
      spec: { url: 'ssh://git@example.com/x.git', ref: { branch: 'main' } },
      status: {
        observedGeneration: 1,
        conditions: ready,
        artifact: {
          revision: 'main@sha1:1111111111111111111111111111111111111111',
        },
      },
    },
    [`Deployment/${ns}/source-controller`]: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'source-controller',
        namespace: ns,
        generation: 1,
        labels,
      },
      spec: { replicas: 1 },
      status: {
        observedGeneration: 1,
        replicas: 1,
        updatedReplicas: 1,
        readyReplicas: 1,
        availableReplicas: 1,
      },
    },
  };
}

function scriptedCluster(
  objects: Record<string, KubeObject>,
  opts: { forbidden?: string[] } = {},
) {
  const inFlight: string[] = [];
  const issued: string[] = [];
  const aborted: string[] = [];
  const waiting: { what: string; answer: () => void }[] = [];
  const call = <T>(what: string, value: () => T, signal?: AbortSignal) => {
    issued.push(what);
    if (signal?.aborted) return Promise.reject(signal.reason); // as the real client
    inFlight.push(what);
    return new Promise<T>((resolve, reject) => {
      waiting.push({
        what,
        answer: () => {
          inFlight.splice(inFlight.indexOf(what), 1);
          if (opts.forbidden?.includes(what))
            reject(
              new KubeApiError(`${what} is forbidden`, { kind: 'forbidden' }),
            );
          else resolve(value());
        },
      });
      signal?.addEventListener(
        'abort',
        () => {
          aborted.push(what);
          inFlight.splice(inFlight.indexOf(what), 1);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  };
  const client = {
    clusterName: 'c',
    get: (ref: KubeObjectRef, o?: { signal?: AbortSignal }) => {
      const key = `${ref.kind}/${ref.namespace ? `${ref.namespace}/` : ''}${
        ref.name
      }`;
      return call(
        `get ${key} (${ref.apiVersion})`,
        () => objects[key],
        o?.signal,
      );
    },
    list: (
      _apiVersion: string,
      kind: string,
      o: { namespace?: string; signal?: AbortSignal } = {},
    ) =>
      call(
        `list ${kind}${o.namespace ? ` in ${o.namespace}` : ''}`,
        () =>
          Object.values(objects).filter(
            x =>
              x.kind === kind &&
              (!o.namespace || x.metadata.namespace === o.namespace),
          ),
        o.signal,
      ),
  } as unknown as KubeClient;
  return {
    client,
    inFlight,
    issued,
    aborted,
    /** Answers the waiting calls whose description starts with `prefix`. */
    answer(prefix: string) {
      for (const w of waiting.filter(x => x.what.startsWith(prefix))) {
        waiting.splice(waiting.indexOf(w), 1);
        w.answer();
      }
    },
    /** Answers everything asked so far, and then whatever gets asked, until the read ends. */
    async answerAll<T>(read: Promise<T>): Promise<T> {
      let done = false;
      read.finally(() => {
        done = true;
      });
      while (!done) {
        waiting.splice(0).forEach(w => w.answer());
        await new Promise(r => setImmediate(r));
      }
      return read;
    },
  };
}

const tick = () => new Promise(r => setImmediate(r));

describe('readClusterStatus: one cluster’s reads', () => {
  it('asks for the CRD, the FluxReports and FluxInstances, the Deployments, the Kustomization and its GitRepository at once', async () => {
    const cluster = scriptedCluster(fluxObjects('flux-system'));
    const read = readClusterStatus(cluster.client, { cluster: 'c' });
    await tick();
    expect([...cluster.inFlight].sort()).toEqual(
      [
        'get CustomResourceDefinition/gitrepositories.source.toolkit.fluxcd.io (apiextensions.k8s.io/v1)',
        'list FluxReport',
        'list FluxInstance',
        'list Deployment in flux-system',
        'get Kustomization/flux-system/flux-system (kustomize.toolkit.fluxcd.io/v1)',
        'get GitRepository/flux-system/flux-system (source.toolkit.fluxcd.io/v1)',
      ].sort(),
    );
    const status = await cluster.answerAll(read);
    expect(status.state).toBe('ready');
    expect(status.components.map(c => c.name)).toEqual(['source-controller']);
    expect(status.sync?.lastAppliedRevision).toMatch(/^main@sha1:1{40}$/);
    // Nothing was asked twice.
    expect(cluster.issued).toHaveLength(6);
  });

  it('reads again in the namespace the CRD names when Flux is not in flux-system', async () => {
    const cluster = scriptedCluster(fluxObjects('flux-prod'));
    const status = await cluster.answerAll(
      readClusterStatus(cluster.client, { cluster: 'c' }),
    );
    expect(status.state).toBe('ready');
    expect(status.flux?.namespace).toBe('flux-prod');
    expect(cluster.issued).toEqual(
      expect.arrayContaining([
        'list Deployment in flux-prod',
        'get Kustomization/flux-prod/flux-prod (kustomize.toolkit.fluxcd.io/v1)',
        'get GitRepository/flux-prod/flux-prod (source.toolkit.fluxcd.io/v1)',
      ]),
    );
  });

  it('drops and cancels the reads it started alongside when Flux is not installed', async () => {
    const cluster = scriptedCluster({});
    const read = readClusterStatus(cluster.client, { cluster: 'c' });
    await tick();
    // Only the CRD read is answered (absent): the others are still waiting, and get cancelled.
    cluster.answer('get CustomResourceDefinition');
    const status = await read;
    expect(status.state).toBe('not-installed');
    expect(cluster.inFlight).toEqual([]);
    expect(cluster.aborted.sort()).toEqual(
      [
        'list FluxReport',
        'list FluxInstance',
        'list Deployment in flux-system',
        'get Kustomization/flux-system/flux-system (kustomize.toolkit.fluxcd.io/v1)',
        'get GitRepository/flux-system/flux-system (source.toolkit.fluxcd.io/v1)',
      ].sort(),
    );
  });

  it('reports a forbidden Deployments list as before, whatever was started alongside', async () => {
    const cluster = scriptedCluster(fluxObjects('flux-system'), {
      forbidden: ['list Deployment in flux-system'],
    });
    const status = await cluster.answerAll(
      readClusterStatus(cluster.client, { cluster: 'c' }),
    );
    expect(status.state).toBe('forbidden');
    expect(status.reason).toContain(
      'list Deployment in flux-system is forbidden',
    );
  });
});
