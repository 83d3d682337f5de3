import type { ServiceFactory } from '@backstage/backend-plugin-api';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import type { JsonObject } from '@backstage/config';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  createKubeClient,
  KubeClient,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { fluxBootstrapPlugin } from '../plugin';

/*
 * The Backstage side of the backend's real-peer tests: app-config for clusters and the Bitbucket
 * double, a test backend with the status plugin and the standard service doubles, and the poll
 * "GET /clusters/:name?refresh=true until …". The peers come from @flux-bootstrap/test-peers
 * (startBootstrappedCluster).
 */

/** A kube-apiserver as the test ground hands it out (url + CA). */
interface ApiserverLike {
  url: string;
  caPem: string;
}

/** One `kubernetes.clusterLocatorMethods[].clusters[]` entry (config locator, ServiceAccount token). */
export interface TestClusterConfig {
  name: string;
  title?: string;
  url: string;
  serviceAccountToken: string;
  /** PEM; written as base64 `caData` as app-config has it. */
  caPem?: string;
  skipTLSVerify?: boolean;
}

/** `prod` ("Production") on `kube`, read with `serviceAccountToken`. */
export function prodCluster(
  kube: ApiserverLike,
  serviceAccountToken: string,
): TestClusterConfig {
  return {
    name: 'prod',
    title: 'Production',
    url: kube.url,
    serviceAccountToken,
    caPem: kube.caPem,
  };
}

/** The config data of a status backend: clusters, the Bitbucket integration, fluxBootstrap settings. */
export function statusBackendConfig(opts: {
  clusters: TestClusterConfig[];
  /** `integrations.bitbucketServer[0]`. */
  bitbucket?: { host: string; apiBaseUrl: string; token: string };
  /** `fluxBootstrap` (e.g. `{ status: { cacheTtlSeconds: 300 } }`). */
  fluxBootstrap?: JsonObject;
  /** More top-level keys (e.g. `backend.actions`). */
  extra?: JsonObject;
}): JsonObject {
  return {
    ...opts.extra,
    kubernetes: {
      serviceLocatorMethod: { type: 'multiTenant' },
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: opts.clusters.map(c => ({
            name: c.name,
            ...(c.title ? { title: c.title } : {}),
            url: c.url,
            authProvider: 'serviceAccount',
            serviceAccountToken: c.serviceAccountToken,
            ...(c.caPem
              ? { caData: Buffer.from(c.caPem).toString('base64') }
              : {}),
            ...(c.skipTLSVerify ? { skipTLSVerify: true } : {}),
          })),
        },
      ],
    },
    ...(opts.bitbucket
      ? {
          integrations: {
            bitbucketServer: [
              {
                host: opts.bitbucket.host,
                apiBaseUrl: opts.bitbucket.apiBaseUrl,
                token: opts.bitbucket.token,
              },
            ],
          },
        }
      : {}),
    ...(opts.fluxBootstrap ? { fluxBootstrap: opts.fluxBootstrap } : {}),
  };
}

/**
 * startTestBackend with the flux-bootstrap plugin, `config` as root config, httpAuth without
 * default credentials (a request without a token has none), permissions (default: ALLOW all) and
 * the catalog mock with `entities`. `features` are added (e.g. an auditor mock's factory).
 */
export async function startStatusBackend(opts: {
  config: JsonObject;
  permissions?: ServiceFactory;
  entities?: Entity[];
  features?: ServiceFactory[];
}) {
  const { server } = await startTestBackend({
    features: [
      fluxBootstrapPlugin,
      mockServices.rootConfig.factory({ data: opts.config }),
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      opts.permissions ??
        mockServices.permissions.factory({ result: 'ALLOW' as any }),
      catalogServiceMock.factory({ entities: opts.entities ?? [] }),
      ...(opts.features ?? []),
    ],
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, baseUrl };
}

/**
 * Polls `GET /api/flux-bootstrap/clusters/<cluster>?refresh=true` (expecting 200) until `until`
 * holds; `inspect` sees every answer (e.g. to assert no secret in it). The deadline only bounds
 * a broken test; its error carries the last answer and `describe()` (e.g. simulator events).
 */
export async function pollClusterStatus(
  server: Parameters<typeof request>[0],
  opts: {
    authorization: string;
    until: (s: ClusterBootstrapStatus) => boolean;
    cluster?: string;
    timeoutMs?: number;
    intervalMs?: number;
    inspect?: (res: request.Response) => void;
    describe?: () => string;
  },
): Promise<ClusterBootstrapStatus> {
  const deadline = Date.now() + (opts.timeoutMs ?? 90_000);
  let last: ClusterBootstrapStatus | undefined;
  while (Date.now() < deadline) {
    const res = await request(server)
      .get(
        `/api/flux-bootstrap/clusters/${opts.cluster ?? 'prod'}?refresh=true`,
      )
      .set('Authorization', opts.authorization);
    expect(res.status).toBe(200);
    opts.inspect?.(res);
    last = res.body;
    if (opts.until(res.body)) return res.body;
    await new Promise(r => setTimeout(r, opts.intervalMs ?? 250));
  }
  const more = opts.describe ? `\n${opts.describe()}` : '';
  throw new Error(
    `status of cluster ${
      opts.cluster ?? 'prod'
    } never matched: ${JSON.stringify(last)}${more}`,
  );
}

/** An admin client of the engine on `kube` (the tests' hand on the cluster). */
export function adminKubeClient(
  kube: ApiserverLike & { adminToken: string },
): Promise<KubeClient> {
  return createKubeClient({
    name: 'admin',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });
}
