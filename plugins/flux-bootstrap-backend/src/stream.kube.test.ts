import { mockCredentials, mockServices } from '@backstage/backend-test-utils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import type { ClusterStreamLine } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { KubeApiserver, startKubeApiserver } from '@flux-bootstrap/test-peers';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import {
  startStatusBackend,
  statusBackendConfig,
} from './__testUtils__/statusBackend';

/*
 * GET /clusters/stream against a real kube-apiserver (the live cluster) and a black hole that
 * accepts connections and never answers (the dead one): the live cluster's line is written as
 * soon as its read finishes, long before the dead cluster's per-cluster timeout ends; the dead
 * one follows as `unreachable` when its deadline passes. A second stream within the cache TTL
 * answers every line from the cache.
 */

jest.setTimeout(180_000);

const TIMEOUT_SECONDS = 4;
const TOKEN_CANARY = 'dead-cluster-token-canary-7f2e';

let kube: KubeApiserver;
let blackHole: net.Server;
const held: net.Socket[] = [];
let baseUrl: string;

const auth = (user = 'user:default/alice') => mockCredentials.user.header(user);

/** Reads the stream line by line, recording when each line arrived (ms after the request). */
async function readStream(
  path: string,
  init: { signal?: AbortSignal; user?: string } = {},
): Promise<{
  status: number;
  lines: { at: number; line: ClusterStreamLine }[];
}> {
  const started = Date.now();
  const res = await fetch(`${baseUrl}${path}`, {
    headers: { Authorization: auth(init.user), 'Accept-Encoding': 'gzip' },
    signal: init.signal,
  });
  const lines: { at: number; line: ClusterStreamLine }[] = [];
  if (!res.ok) return { status: res.status, lines };
  expect(res.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += decoder.decode(value, { stream: true });
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      lines.push({
        at: Date.now() - started,
        line: JSON.parse(buffered.slice(0, nl)),
      });
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
    }
  }
  return { status: res.status, lines };
}

beforeAll(async () => {
  kube = await startKubeApiserver();
  blackHole = net.createServer(socket => {
    held.push(socket);
  });
  await new Promise<void>(resolve => blackHole.listen(0, '127.0.0.1', resolve));
  const deadPort = (blackHole.address() as AddressInfo).port;
  ({ baseUrl } = await startStatusBackend({
    config: statusBackendConfig({
      clusters: [
        {
          name: 'dead',
          title: 'Dead cluster',
          url: `https://127.0.0.1:${deadPort}`,
          serviceAccountToken: TOKEN_CANARY,
          skipTLSVerify: true,
        },
        {
          name: 'live',
          title: 'Live cluster',
          url: kube.url,
          serviceAccountToken: kube.adminToken,
          caPem: kube.caPem,
        },
      ],
      fluxBootstrap: {
        status: {
          clusterTimeoutSeconds: TIMEOUT_SECONDS,
          cacheTtlSeconds: 120,
          transitionalCacheTtlSeconds: 120,
        },
      },
    }),
    permissions: mockServices.permissions.mock({
      authorize: async (requests, opts) =>
        requests.map(() => ({
          result:
            (opts?.credentials?.principal as { userEntityRef?: string })
              ?.userEntityRef === 'user:default/alice'
              ? AuthorizeResult.ALLOW
              : AuthorizeResult.DENY,
        })) as any,
    }).factory,
  }));
});

afterAll(async () => {
  for (const s of held) s.destroy();
  await new Promise(resolve => blackHole?.close(resolve));
  await kube?.stop();
});

describe('GET /api/flux-bootstrap/clusters/stream', () => {
  it('writes the cluster list, then the live cluster at once, the dead one when its timeout ends', async () => {
    const { status, lines } = await readStream(
      '/api/flux-bootstrap/clusters/stream',
    );
    expect(status).toBe(200);
    expect(lines.map(l => l.line.type)).toEqual([
      'clusters',
      'status',
      'status',
      'done',
    ]);
    expect(lines[0].line).toEqual({
      type: 'clusters',
      items: [
        { name: 'dead', title: 'Dead cluster' },
        { name: 'live', title: 'Live cluster' },
      ],
    });
    const [first, second] = lines.slice(1, 3).map(l => ({
      at: l.at,
      status: (l.line as Extract<ClusterStreamLine, { type: 'status' }>).status,
    }));
    // The live cluster (configured second) arrives first, before the dead one's deadline.
    expect(first.status.cluster).toBe('live');
    expect(first.status.state).toBe('not-installed');
    expect(first.at).toBeLessThan(TIMEOUT_SECONDS * 1000);
    expect(second.status.cluster).toBe('dead');
    expect(second.status.state).toBe('unreachable');
    expect(second.status.reason).toContain(
      `did not answer within ${TIMEOUT_SECONDS} s`,
    );
    expect(second.at).toBeGreaterThanOrEqual(TIMEOUT_SECONDS * 1000 - 50);
    expect(second.at - first.at).toBeGreaterThan(1000);
    expect(lines[3].line).toEqual({ type: 'done', count: 2 });
    expect(JSON.stringify(lines)).not.toContain(TOKEN_CANARY);
    expect(JSON.stringify(lines)).not.toContain(kube.adminToken);
  });

  it('answers from the reader cache on the next stream, dead cluster included', async () => {
    const { lines } = await readStream('/api/flux-bootstrap/clusters/stream');
    const statuses = lines.filter(l => l.line.type === 'status');
    expect(statuses).toHaveLength(2);
    // Both cached: nothing waits for the dead cluster's deadline again.
    for (const l of statuses) expect(l.at).toBeLessThan(1000);
  });

  it('reads again with ?refresh=true, and stops when the client goes away', async () => {
    const controller = new AbortController();
    const got: ClusterStreamLine[] = [];
    const reading = (async () => {
      const res = await fetch(
        `${baseUrl}/api/flux-bootstrap/clusters/stream?refresh=true`,
        { headers: { Authorization: auth() }, signal: controller.signal },
      );
      const reader = res.body!.getReader();
      const decoder = new TextDecoder();
      let text = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += decoder.decode(value, { stream: true });
        const parts = text.split('\n');
        text = parts.pop()!;
        for (const p of parts) {
          const line = JSON.parse(p) as ClusterStreamLine;
          got.push(line);
          // The live cluster is there: go away while the dead one is still being read.
          if (line.type === 'status') controller.abort();
        }
      }
    })();
    await expect(reading).rejects.toThrow();
    expect(got.map(l => l.type)).toEqual(['clusters', 'status']);
    expect(
      (got[1] as Extract<ClusterStreamLine, { type: 'status' }>).status.cluster,
    ).toBe('live');
  });

  it('refuses a user without flux.bootstrap.cluster.read with 403 and writes no line', async () => {
    const { status, lines } = await readStream(
      '/api/flux-bootstrap/clusters/stream',
      { user: 'user:default/mallory' },
    );
    expect(status).toBe(403);
    expect(lines).toEqual([]);
  });
});
