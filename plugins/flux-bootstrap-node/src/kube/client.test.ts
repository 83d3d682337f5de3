import net from 'node:net';
import {
  createTestNamespace,
  getSharedKubeApiserver,
  KubeCleanup,
  mintToken,
  uniqueName,
} from '@flux-bootstrap/test-peers';
import type { ClusterConnection } from '../config';
import { OperationAbortedError, type EngineLogger } from '../util';
import { createKubeClient } from './client';
import { KubeApiError } from './errors';
import type { KubeClient, KubeObject } from './types';
import { startFaultProxy, type FaultProxy } from './__testUtils__/faultProxy';

const kube = getSharedKubeApiserver();

function connection(over: Partial<ClusterConnection> = {}): ClusterConnection {
  return {
    name: 'test',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
    ...over,
  };
}

function recordingLogger() {
  const lines: string[] = [];
  const add = (level: string) => (m: string, meta?: unknown) =>
    lines.push(`${level} ${m}${meta ? ` ${JSON.stringify(meta)}` : ''}`);
  const logger: EngineLogger = {
    error: add('error'),
    warn: add('warn'),
    info: add('info'),
    debug: add('debug'),
  };
  return { logger, lines };
}

const clients: KubeClient[] = [];
async function client(over: Partial<ClusterConnection> = {}, opts = {}) {
  const c = await createKubeClient(connection(over), opts);
  clients.push(c);
  return c;
}
const proxies: FaultProxy[] = [];
afterEach(async () => {
  clients.splice(0).forEach(c => c.close());
  await Promise.all(proxies.splice(0).map(p => p.stop()));
});

function configMap(
  ns: string,
  name: string,
  data: Record<string, string>,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: ns },
    data,
  };
}

describe('createKubeClient against a real kube-apiserver', () => {
  it('server-side applies with the field manager, and an identical re-apply changes nothing', async () => {
    const ns = await createTestNamespace(kube, 'kc-apply');
    const c = await client();
    const first = await c.apply(configMap(ns, 'a', { k: 'v' }), {
      fieldManager: 'flux',
    });
    expect(first.metadata.managedFields).toEqual([
      expect.objectContaining({ manager: 'flux', operation: 'Apply' }),
    ]);
    const again = await c.apply(configMap(ns, 'a', { k: 'v' }), {
      fieldManager: 'flux',
    });
    expect(again.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const changed = await c.apply(configMap(ns, 'a', { k: 'w' }), {
      fieldManager: 'flux',
    });
    expect(changed.metadata.resourceVersion).not.toBe(
      first.metadata.resourceVersion,
    );
    expect(changed.data).toEqual({ k: 'w' });
  });

  it('reports a field conflict with another manager, and takes over with force', async () => {
    const ns = await createTestNamespace(kube, 'kc-conflict');
    const c = await client();
    await c.apply(configMap(ns, 'a', { k: 'v' }), {
      fieldManager: 'other-tool',
    });
    const err = await c
      .apply(configMap(ns, 'a', { k: 'mine' }), { fieldManager: 'flux' })
      .catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('conflict');
    expect(err.status).toBe(409);
    expect(err.message).toContain(`apply ConfigMap ${ns}/a`);
    expect(err.message).toContain('other-tool');
    const forced = await c.apply(configMap(ns, 'a', { k: 'mine' }), {
      fieldManager: 'flux',
      force: true,
    });
    expect(forced.data).toEqual({ k: 'mine' });
  });

  it('gets (undefined on 404 and for unknown kinds), lists with a label selector, deletes', async () => {
    const ns = await createTestNamespace(kube, 'kc-crud');
    const c = await client();
    await c.apply(
      {
        ...configMap(ns, 'x', {}),
        metadata: { name: 'x', namespace: ns, labels: { app: 'x' } },
      },
      { fieldManager: 'flux' },
    );
    await c.apply(configMap(ns, 'y', {}), { fieldManager: 'flux' });
    const got = await c.get({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'x',
      namespace: ns,
    });
    expect(got?.metadata.labels).toEqual({ app: 'x' });
    expect(
      await c.get({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'missing',
        namespace: ns,
      }),
    ).toBeUndefined();
    expect(
      await c.get({
        apiVersion: 'nothing.example.com/v1',
        kind: 'Thing',
        name: 'x',
        namespace: ns,
      }),
    ).toBeUndefined();
    const listed = await c.list('v1', 'ConfigMap', {
      namespace: ns,
      labelSelector: 'app=x',
    });
    expect(listed.map(o => [o.apiVersion, o.kind, o.metadata.name])).toEqual([
      ['v1', 'ConfigMap', 'x'],
    ]);
    expect(await c.list('nothing.example.com/v1', 'Thing')).toEqual([]);
    expect(
      await c.delete({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'x',
        namespace: ns,
      }),
    ).toBe(true);
    expect(
      await c.delete({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: 'x',
        namespace: ns,
      }),
    ).toBe(false);
  });

  it('reads well-known kinds without a discovery request, metadata only on request; an unserved Flux kind reads as absent', async () => {
    const ns = await createTestNamespace(kube, 'kc-read');
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    const c = await client({ url: proxy.url, caPem: proxy.caPem });
    await c.apply(configMap(ns, 'a', { k: 'v' }), { fieldManager: 'flux' });
    proxy.clearRequests();
    const full = await c.get({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      name: 'a',
      namespace: ns,
    });
    expect(full?.data).toEqual({ k: 'v' });
    const meta = await c.get(
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'a', namespace: ns },
      { metadataOnly: true },
    );
    expect(meta).toEqual(
      expect.objectContaining({ apiVersion: 'v1', kind: 'ConfigMap' }),
    );
    expect(meta?.metadata.name).toBe('a');
    expect(meta?.data).toBeUndefined();
    const listed = await c.list('v1', 'ConfigMap', {
      namespace: ns,
      metadataOnly: true,
    });
    expect(listed.map(o => [o.kind, o.metadata.name, o.data])).toEqual([
      ['ConfigMap', 'a', undefined],
    ]);
    // A Flux kind the shared apiserver may not serve in this version: 404, read as absent.
    expect(
      await c.get({
        apiVersion: 'fluxcd.controlplane.io/v1',
        kind: 'FluxReport',
        name: 'flux',
        namespace: ns,
      }),
    ).toBeUndefined();
    expect(
      await c.list('fluxcd.controlplane.io/v1', 'FluxReport', {
        namespace: ns,
      }),
    ).toEqual([]);
    expect(
      proxy
        .requests()
        .map(r => `${r.method} ${r.path}`)
        .filter(r => !r.includes('/namespaces/')),
    ).toEqual([]);
  });

  it('sends parallel requests over one HTTP/2 connection, and over HTTP/1.1 through a proxy that only speaks it', async () => {
    // A TCP relay in front of the apiserver that counts connections (TLS passes through).
    const target = new URL(kube.url);
    let connections = 0;
    const sockets = new Set<net.Socket>();
    const relay = net.createServer(inbound => {
      connections++;
      sockets.add(inbound);
      const outbound = net.connect(Number(target.port), target.hostname);
      inbound.pipe(outbound).pipe(inbound);
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>(r => relay.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${
        (relay.address() as net.AddressInfo).port
      }`;
      const refs = Array.from({ length: 8 }, (_, i) => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        name: `absent-${i}`,
        namespace: 'default',
      }));
      const h2 = await client({ url });
      expect(await Promise.all(refs.map(r => h2.get(r)))).toEqual(
        Array(8).fill(undefined),
      );
      expect(connections).toBe(1);

      connections = 0;
      const h1 = await client({ url }, { http2: false });
      await Promise.all(refs.map(r => h1.get(r)));
      expect(connections).toBeGreaterThan(1);

      // The fault proxy is an HTTP/1.1 server: the client notices and stays on HTTP/1.1.
      const proxy = await startFaultProxy(kube);
      proxies.push(proxy);
      const viaProxy = await client({ url: proxy.url, caPem: proxy.caPem });
      await Promise.all(refs.map(r => viaProxy.get(r)));
      expect(
        proxy.requests().filter(r => r.path.includes('absent-')),
      ).toHaveLength(8);
    } finally {
      sockets.forEach(socket => socket.destroy());
      await new Promise<void>(r => relay.close(() => r()));
    }
  });

  it('finds the resource of a CRD applied after discovery was cached', async () => {
    const group = `${uniqueName('g')}.kube-client.test`;
    const cleanup = new KubeCleanup(kube).track({
      apiVersion: 'apiextensions.k8s.io/v1',
      resource: 'customresourcedefinitions',
      name: `widgets.${group}`,
    });
    const ns = await createTestNamespace(kube, 'kc-crd');
    const c = await client();
    try {
      expect(
        await c.get({
          apiVersion: `${group}/v1`,
          kind: 'Widget',
          name: 'w',
          namespace: ns,
        }),
      ).toBeUndefined();
      await c.apply(
        {
          apiVersion: 'apiextensions.k8s.io/v1',
          kind: 'CustomResourceDefinition',
          metadata: { name: `widgets.${group}` },
          spec: {
            group,
            names: {
              kind: 'Widget',
              plural: 'widgets',
              singular: 'widget',
              listKind: 'WidgetList',
            },
            scope: 'Namespaced',
            versions: [
              {
                name: 'v1',
                served: true,
                storage: true,
                schema: {
                  openAPIV3Schema: {
                    type: 'object',
                    properties: {
                      spec: {
                        type: 'object',
                        properties: { size: { type: 'integer' } },
                      },
                    },
                  },
                },
              },
            ],
          },
        },
        { fieldManager: 'flux' },
      );
      let info;
      for (let i = 0; i < 100 && !info; i++) {
        info = await c.resourceFor(`${group}/v1`, 'Widget', { refresh: true });
        if (!info) await new Promise(r => setTimeout(r, 100));
      }
      expect(info).toEqual(
        expect.objectContaining({ name: 'widgets', namespaced: true }),
      );
      const w = await c.apply(
        {
          apiVersion: `${group}/v1`,
          kind: 'Widget',
          metadata: { name: 'w', namespace: ns },
          spec: { size: 3 },
        },
        { fieldManager: 'flux' },
      );
      expect(w.spec).toEqual({ size: 3 });
    } finally {
      await cleanup.run();
    }
  });

  it('refuses to apply a namespaced kind without a namespace', async () => {
    const c = await client();
    const err = await c
      .apply(
        { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' } },
        { fieldManager: 'flux' },
      )
      .catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('invalid');
  });

  it('names a kind the server does not serve when applying or patching it; deleting it finds nothing', async () => {
    const c = await client();
    const ref = {
      apiVersion: 'nothing.example.com/v1',
      kind: 'Nothing',
      name: 'x',
      namespace: 'default',
    };
    const obj = {
      apiVersion: ref.apiVersion,
      kind: ref.kind,
      metadata: { name: 'x', namespace: 'default' },
    };
    for (const write of [
      () => c.apply(obj, { fieldManager: 'flux' }),
      () => c.patch(ref, { spec: {} }, { fieldManager: 'flux' }),
    ]) {
      const err = await write().catch(e => e);
      expect(err).toBeInstanceOf(KubeApiError);
      expect([err.kind, err.reason]).toEqual(['not-found', 'NoKindMatch']);
      expect(err.message).toContain(
        'does not serve kind Nothing in nothing.example.com/v1',
      );
    }
    await expect(c.delete(ref)).resolves.toBe(false);
  });

  it('ensureNamespace creates a missing namespace and leaves an existing one untouched', async () => {
    const c = await client();
    const name = uniqueName('kc-ns');
    await c.ensureNamespace(name, { fieldManager: 'flux' });
    const created = await c.get({ apiVersion: 'v1', kind: 'Namespace', name });
    expect(created?.metadata.name).toBe(name);
    await c.apply(
      {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name, labels: { keep: 'me' } },
      },
      { fieldManager: 'flux' },
    );
    const before = await c.get({ apiVersion: 'v1', kind: 'Namespace', name });
    await c.ensureNamespace(name, { fieldManager: 'flux' });
    const after = await c.get({ apiVersion: 'v1', kind: 'Namespace', name });
    expect(after?.metadata.labels).toEqual(
      expect.objectContaining({ keep: 'me' }),
    );
    expect(after?.metadata.resourceVersion).toBe(
      before?.metadata.resourceVersion,
    );
  });

  it('answers SelfSubjectAccessReviews for the client’s own credentials', async () => {
    const ns = await createTestNamespace(kube, 'kc-cani');
    const token = await mintToken(kube, {
      name: uniqueName('kc-reader'),
      namespaceRules: [
        {
          namespace: ns,
          rules: [
            { apiGroups: [''], resources: ['configmaps'], verbs: ['get'] },
          ],
        },
      ],
    });
    const checks = [
      {
        verb: 'create',
        group: 'apiextensions.k8s.io',
        resource: 'customresourcedefinitions',
      },
      { verb: 'get', group: '', resource: 'configmaps', namespace: ns },
    ];
    expect((await (await client()).canI(checks)).map(r => r.allowed)).toEqual([
      true,
      true,
    ]);
    const restricted = await client({ token });
    expect((await restricted.canI(checks)).map(r => r.allowed)).toEqual([
      false,
      true,
    ]);
  });
});

describe('KubeApiError mapping', () => {
  const canary = 'canary-kube-token-8c1e55aa9f';

  it('403 → forbidden with the API’s message, never the token', async () => {
    const ns = await createTestNamespace(kube, 'kc-403');
    const token = await mintToken(kube, { name: uniqueName('kc-nothing') });
    const { logger, lines } = recordingLogger();
    const c = await client({ token }, { logger });
    const err = await c
      .get({ apiVersion: 'v1', kind: 'Secret', name: 's', namespace: ns })
      .catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('forbidden');
    expect(err.status).toBe(403);
    expect(err.message).toMatch(/cannot get resource "secrets"/);
    expect(err.message).toContain('(HTTP 403 Forbidden)');
    expect(err.message).not.toContain(token);
    expect(lines.join('\n')).not.toContain(token);
  });

  it('401 → unauthorized; the rejected token appears nowhere', async () => {
    const { logger, lines } = recordingLogger();
    const c = await client({ token: canary }, { logger });
    const err = await c
      .get({ apiVersion: 'v1', kind: 'Namespace', name: 'default' })
      .catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('unauthorized');
    expect(err.status).toBe(401);
    expect(err.message).toContain('rejected the credentials');
    expect(`${err.message}\n${err.stack}\n${lines.join('\n')}`).not.toContain(
      canary,
    );
  });

  it('an untrusted certificate → unreachable with the TLS reason; skipTLSVerify connects', async () => {
    const c = await client({ caPem: undefined }, { retries: 0 });
    const err = await c.version().catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('unreachable');
    expect(err.message).toContain('TLS error');
    expect(err.message).toContain('caData');
    const insecure = await client({ caPem: undefined, skipTLSVerify: true });
    expect((await insecure.version()).major).toBe('1');
  });

  it('connection refused and unknown host → unreachable with the reason', async () => {
    const refused = await client(
      { url: 'https://127.0.0.1:1' },
      { retries: 1, retryBaseDelayMs: 5 },
    );
    const e1 = await refused.version().catch(e => e);
    expect(e1.kind).toBe('unreachable');
    expect(e1.reason).toBe('ECONNREFUSED');
    expect(e1.message).toContain('connection refused');
    const unknown = await client(
      { url: 'https://no-such-host.invalid:6443' },
      { retries: 0 },
    );
    const e2 = await unknown.version().catch(e => e);
    expect(e2.kind).toBe('unreachable');
    expect(e2.reason).toBe('ENOTFOUND');
    expect(e2.message).toContain('host name not found');
  });
});

describe('retries, timeouts and aborts (through a fault-injecting proxy)', () => {
  it('retries an apply that got a 500, and logs the retry', async () => {
    const ns = await createTestNamespace(kube, 'kc-500');
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    proxy.inject({
      method: 'PATCH',
      path: new RegExp(`/namespaces/${ns}/configmaps/a$`),
      status: 500,
    });
    const { logger, lines } = recordingLogger();
    const c = await client(
      { url: proxy.url, caPem: proxy.caPem },
      { logger, retryBaseDelayMs: 5 },
    );
    const applied = await c.apply(configMap(ns, 'a', { k: 'v' }), {
      fieldManager: 'flux',
    });
    expect(applied.data).toEqual({ k: 'v' });
    const patches = proxy.requests().filter(r => r.method === 'PATCH');
    expect(patches.map(r => [r.status, r.faulted])).toEqual([
      [500, true],
      [201, false],
    ]);
    expect(
      lines.some(
        l =>
          l.startsWith('warn') &&
          l.includes('HTTP 500') &&
          l.includes('retrying'),
      ),
    ).toBe(true);
    expect(lines.join('\n')).not.toContain(kube.adminToken);
  });

  it('gives up after the retry bound with the last error', async () => {
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    proxy.inject({ path: /^\/version$/, status: 503, times: 10 });
    const c = await client(
      { url: proxy.url, caPem: proxy.caPem },
      { retries: 2, retryBaseDelayMs: 1 },
    );
    const err = await c.version().catch(e => e);
    expect(err.kind).toBe('server');
    expect(err.status).toBe(503);
    expect(proxy.requests().filter(r => r.path === '/version')).toHaveLength(3);
  });

  it('does not retry a 4xx', async () => {
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    proxy.inject({ path: /^\/version$/, status: 400, times: 10 });
    const c = await client(
      { url: proxy.url, caPem: proxy.caPem },
      { retryBaseDelayMs: 1 },
    );
    const err = await c.version().catch(e => e);
    expect(err.kind).toBe('invalid');
    expect(proxy.requests().filter(r => r.path === '/version')).toHaveLength(1);
  });

  it('a request that never gets an answer times out as unreachable', async () => {
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    proxy.inject({ path: /^\/version$/, hang: true });
    const c = await client(
      { url: proxy.url, caPem: proxy.caPem },
      { requestTimeoutMs: 200, retries: 0 },
    );
    const err = await c.version().catch(e => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect(err.kind).toBe('unreachable');
    expect(err.message).toContain('did not answer within');
  });

  it('an abort releases the caller while the server has not answered', async () => {
    const proxy = await startFaultProxy(kube);
    proxies.push(proxy);
    proxy.inject({ path: /^\/version$/, hang: true });
    const c = await client(
      { url: proxy.url, caPem: proxy.caPem },
      { requestTimeoutMs: 120_000 },
    );
    const controller = new AbortController();
    const pending = c.version({ signal: controller.signal }).catch(e => e);
    // Abort once the request is at the proxy.
    for (
      let i = 0;
      i < 200 && !proxy.requests().some(r => r.path === '/version');
      i++
    ) {
      await new Promise(r => setTimeout(r, 10));
    }
    controller.abort();
    const err = await pending;
    expect(err).toBeInstanceOf(OperationAbortedError);
  });
});
