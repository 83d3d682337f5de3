import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import type { Entity } from '@backstage/catalog-model';
import request from 'supertest';
import { fluxBootstrapPlugin } from './plugin';

const fleet: Entity = {
  apiVersion: 'backstage.io/v1alpha1',
  kind: 'Component',
  metadata: {
    name: 'fleet',
    namespace: 'default',
    annotations: { 'flux-bootstrap.io/clusters': 'ghost, not-configured' },
  },
  spec: { type: 'service', owner: 'team-a', lifecycle: 'production' },
};

const config = {
  kubernetes: {
    serviceLocatorMethod: { type: 'multiTenant' },
    clusterLocatorMethods: [
      {
        type: 'config',
        clusters: [
          {
            name: 'ghost',
            title: 'Ghost cluster',
            // nothing listens on port 1: every read is unreachable, quickly
            url: 'https://127.0.0.1:1',
            authProvider: 'serviceAccount',
            serviceAccountToken: 'canary-token-0f3c9a',
          },
        ],
      },
    ],
  },
};

const alice = mockCredentials.user('user:default/alice');
const mallory = mockCredentials.user('user:default/mallory');

/** Allows flux.bootstrap.cluster.read for alice only, and records what was asked. */
function permissionsFor() {
  const asked: string[] = [];
  const service = mockServices.permissions.mock({
    authorize: async (requests, opts) => {
      const principal = opts?.credentials?.principal as
        | { userEntityRef?: string }
        | undefined;
      return requests.map(r => {
        asked.push(`${principal?.userEntityRef}:${(r as any).permission.name}`);
        return {
          result:
            principal?.userEntityRef === 'user:default/alice'
              ? AuthorizeResult.ALLOW
              : AuthorizeResult.DENY,
        };
      }) as any;
    },
  });
  return { asked, factory: service.factory };
}

async function startBackend() {
  const perms = permissionsFor();
  const { server } = await startTestBackend({
    features: [
      fluxBootstrapPlugin,
      mockServices.rootConfig.factory({ data: config }),
      // requests without an Authorization header carry no credentials
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      perms.factory,
      catalogServiceMock.factory({ entities: [fleet] }),
    ],
  });
  return { server, asked: perms.asked };
}

const routes = [
  '/api/flux-bootstrap/clusters',
  '/api/flux-bootstrap/clusters?state=true',
  '/api/flux-bootstrap/clusters/ghost',
  '/api/flux-bootstrap/clusters/stream',
  '/api/flux-bootstrap/entity/component/default/fleet/clusters',
];

describe('flux-bootstrap backend routes: auth', () => {
  let backend: Awaited<ReturnType<typeof startBackend>>;
  beforeAll(async () => {
    backend = await startBackend();
  });
  beforeEach(() => {
    backend.asked.length = 0;
  });
  const start = async () => backend;

  it('serves its health route without credentials', async () => {
    const { server } = await start();
    const res = await request(server).get('/api/flux-bootstrap/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('registers flux.bootstrap.cluster.read and .operate, so the permission backend and policies know them', async () => {
    const { server } = await start();
    const res = await request(server)
      .get('/api/flux-bootstrap/.well-known/backstage/permissions/metadata')
      .set(
        'Authorization',
        mockCredentials.service.header({
          onBehalfOf: mockCredentials.service('plugin:permission'),
          targetPluginId: 'flux-bootstrap',
        }),
      );
    expect(res.status).toBe(200);
    expect(res.body.permissions).toEqual([
      {
        type: 'basic',
        name: 'flux.bootstrap.cluster.read',
        attributes: { action: 'read' },
      },
      {
        type: 'basic',
        name: 'flux.bootstrap.cluster.operate',
        attributes: { action: 'update' },
      },
    ]);
  });

  it.each(routes)('answers 401 without credentials: %s', async route => {
    const { server, asked } = await start();
    const res = await request(server).get(route);
    expect(res.status).toBe(401);
    expect(asked).toEqual([]);
    expect(JSON.stringify(res.body)).not.toContain('canary-token-0f3c9a');
  });

  it.each(routes)(
    'refuses a service principal with 403 (users only): %s',
    async route => {
      const { server } = await start();
      const res = await request(server)
        .get(route)
        .set(
          'Authorization',
          mockCredentials.service.header({
            onBehalfOf: mockCredentials.service('plugin:catalog'),
            targetPluginId: 'flux-bootstrap',
          }),
        );
      expect(res.status).toBe(403);
      expect(res.body.error.message).toContain(
        "does not allow 'service' credentials",
      );
    },
  );

  it.each(routes)(
    'answers 403 naming the permission to a user without flux.bootstrap.cluster.read: %s',
    async route => {
      const { server, asked } = await start();
      const res = await request(server)
        .get(route)
        .set(
          'Authorization',
          mockCredentials.user.header(mallory.principal.userEntityRef),
        );
      expect(res.status).toBe(403);
      expect(res.body.error.message).toContain('flux.bootstrap.cluster.read');
      expect(asked).toEqual([
        'user:default/mallory:flux.bootstrap.cluster.read',
      ]);
      expect(res.body.items).toBeUndefined();
      expect(JSON.stringify(res.body)).not.toContain('Ghost cluster');
    },
  );

  it('lists configured clusters to a permitted user, without credentials', async () => {
    const { server } = await start();
    const res = await request(server)
      .get('/api/flux-bootstrap/clusters')
      .set(
        'Authorization',
        mockCredentials.user.header(alice.principal.userEntityRef),
      );
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      items: [{ name: 'ghost', title: 'Ghost cluster' }],
    });
  });

  it('404s for an unknown entity and an unknown cluster', async () => {
    const { server } = await start();
    const auth = mockCredentials.user.header(alice.principal.userEntityRef);
    const entity = await request(server)
      .get('/api/flux-bootstrap/entity/component/default/nope/clusters')
      .set('Authorization', auth);
    expect(entity.status).toBe(404);
    const cluster = await request(server)
      .get('/api/flux-bootstrap/clusters/nope')
      .set('Authorization', auth);
    expect(cluster.status).toBe(404);
    expect(cluster.body.error.message).toContain('nope');
  });

  it("reports an entity's unknown cluster names as such and an unreachable one with its reason", async () => {
    const { server } = await start();
    const res = await request(server)
      .get('/api/flux-bootstrap/entity/component/default/fleet/clusters')
      .set(
        'Authorization',
        mockCredentials.user.header(alice.principal.userEntityRef),
      );
    expect(res.status).toBe(200);
    expect(res.body.entityRef).toBe('component:default/fleet');
    expect(res.body.clusters).toEqual(['ghost', 'not-configured']);
    expect(res.body.unknownClusters).toEqual(['not-configured']);
    expect(res.body.items).toHaveLength(1);
    expect(res.body.items[0]).toMatchObject({
      cluster: 'ghost',
      title: 'Ghost cluster',
      state: 'unreachable',
    });
    expect(res.body.items[0].reason).toMatch(
      /connection refused|ECONNREFUSED/i,
    );
    expect(JSON.stringify(res.body)).not.toContain('canary-token-0f3c9a');
  });

  it("reads the entity from the catalog with the caller's own credentials", async () => {
    const perms = permissionsFor();
    const catalog = catalogServiceMock.mock({
      getEntityByRef: jest.fn(async () => fleet),
    });
    const { server } = await startTestBackend({
      features: [
        fluxBootstrapPlugin,
        mockServices.rootConfig.factory({ data: config }),
        mockServices.httpAuth.factory({
          defaultCredentials: mockCredentials.none(),
        }),
        perms.factory,
        catalog.factory,
      ],
    });
    const res = await request(server)
      .get('/api/flux-bootstrap/entity/component/default/fleet/clusters')
      .set(
        'Authorization',
        mockCredentials.user.header(alice.principal.userEntityRef),
      );
    expect(res.status).toBe(200);
    expect(catalog.getEntityByRef).toHaveBeenCalledTimes(1);
    const [ref, opts] = (catalog.getEntityByRef as jest.Mock).mock.calls[0];
    expect(ref).toEqual({
      kind: 'component',
      namespace: 'default',
      name: 'fleet',
    });
    expect(opts.credentials.principal).toMatchObject({
      type: 'user',
      userEntityRef: 'user:default/alice',
    });
  });
});
