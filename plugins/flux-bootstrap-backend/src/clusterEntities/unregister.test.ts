import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  coreServices,
  createBackendPlugin,
} from '@backstage/backend-plugin-api';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import catalogBackend from '@backstage/plugin-catalog-backend';
import {
  catalogServiceRef,
  type CatalogService,
} from '@backstage/plugin-catalog-node';
import { clusterEntityUrl } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { unregisterClusterEntity } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import request from 'supertest';
import fluxBootstrapBackend from '..';

jest.setTimeout(90_000);

/*
 * The engine's unregisterClusterEntity (behind fleet:unregister-cluster) against a real catalog
 * backend with the cluster entity locations of this plugin, as catalog:register leaves them:
 * the location goes and the catalog stops showing the entity; an entity another location
 * provides is refused and stays.
 */

const baseUrl = 'http://127.0.0.1:7999';
let server: any;
let backend: { stop(): Promise<void> };
let catalog: CatalogService;
let tmp: string;
let legacyFile: string;
const credentials = mockCredentials.user('user:default/alice');

const bound = () => ({
  getEntityByRef: (ref: string) => catalog.getEntityByRef(ref, { credentials }),
  getLocationByRef: (ref: string) =>
    catalog.getLocationByRef(ref, { credentials }),
  removeLocationById: (id: string) =>
    catalog.removeLocationById(id, { credentials }),
  removeEntityByUid: (uid: string) =>
    catalog.removeEntityByUid(uid, { credentials }),
});

async function waitForEntity(ref: string) {
  for (let i = 0; i < 300; i++) {
    const entity = await catalog.getEntityByRef(ref, { credentials });
    if (entity) return entity;
    await new Promise(r => setTimeout(r, 100));
  }
  throw new Error(`the catalog never showed ${ref}`);
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'unregister-test-'));
  // A cluster entity from a catalog-info.yaml the catalog reads (a config location).
  legacyFile = path.join(tmp, 'catalog-info.yaml');
  fs.writeFileSync(
    legacyFile,
    [
      'apiVersion: backstage.io/v1alpha1',
      'kind: Resource',
      'metadata:',
      '  name: legacy',
      '  annotations:',
      '    backstage.io/kubernetes-cluster: legacy',
      'spec:',
      '  type: kubernetes-cluster',
      '  owner: group:default/platform-team',
      '',
    ].join('\n'),
  );
  const captureCatalog = createBackendPlugin({
    pluginId: 'capture-catalog',
    register(env) {
      env.registerInit({
        deps: {
          catalogService: catalogServiceRef,
          http: coreServices.httpRouter,
        },
        async init({ catalogService }) {
          catalog = catalogService;
        },
      });
    },
  });
  backend = await startTestBackend({
    features: [
      catalogBackend,
      fluxBootstrapBackend,
      captureCatalog,
      mockServices.rootConfig.factory({
        data: {
          backend: { baseUrl },
          catalog: {
            rules: [{ allow: ['Resource', 'Location'] }],
            processingInterval: { seconds: 1 },
            locations: [{ type: 'file', target: legacyFile }],
          },
        },
      }),
    ],
  });
  server = (backend as any).server;
});

afterAll(async () => {
  await backend?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function register(target: string) {
  return request(server)
    .post('/api/catalog/locations')
    .send({ type: 'url', target });
}

describe('unregisterClusterEntity with a real catalog backend', () => {
  it('removes the location catalog:register added, the catalog stops showing the entity; the dry run and a second run change nothing', async () => {
    const target = clusterEntityUrl(baseUrl, {
      name: 'prod-eu',
      owner: 'group:default/platform-team',
      repository:
        'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
      branch: 'main',
      path: 'clusters/prod-eu',
    });
    expect((await register(target)).status).toBe(201);
    // another cluster of the same fleet stays registered
    const other = clusterEntityUrl(baseUrl, {
      name: 'staging',
      owner: 'group:default/platform-team',
      repository:
        'https://bitbucket.example.com/projects/PLAT/repos/fleet-infra/browse',
    });
    expect((await register(other)).status).toBe(201);
    await waitForEntity('resource:default/prod-eu');
    await waitForEntity('resource:default/staging');

    const dry = await unregisterClusterEntity(bound(), {
      cluster: 'prod-eu',
      backendBaseUrl: baseUrl,
      dryRun: true,
    });
    expect(dry).toEqual({
      entityRef: 'resource:default/prod-eu',
      found: true,
      location: `url:${target}`,
      changed: false,
    });
    expect(
      await catalog.getEntityByRef('resource:default/prod-eu', { credentials }),
    ).toBeDefined();

    const done = await unregisterClusterEntity(bound(), {
      cluster: 'prod-eu',
      backendBaseUrl: baseUrl,
      pollIntervalMs: 100,
    });
    expect(done).toMatchObject({ found: true, changed: true });
    expect(
      await catalog.getEntityByRef('resource:default/prod-eu', { credentials }),
    ).toBeUndefined();
    const locations = await request(server).get('/api/catalog/locations');
    const targets = (locations.body as any[]).map(l => l.data.target);
    expect(targets).not.toContain(target);
    expect(targets).toContain(other);
    expect(
      await catalog.getEntityByRef('resource:default/staging', { credentials }),
    ).toBeDefined();

    const again = await unregisterClusterEntity(bound(), {
      cluster: 'prod-eu',
      backendBaseUrl: baseUrl,
    });
    expect(again).toEqual({
      entityRef: 'resource:default/prod-eu',
      found: false,
      changed: false,
    });
  });

  it('refuses a cluster entity that another location provides, and leaves it', async () => {
    await waitForEntity('resource:default/legacy');
    await expect(
      unregisterClusterEntity(bound(), {
        cluster: 'legacy',
        backendBaseUrl: baseUrl,
      }),
    ).rejects.toMatchObject({
      name: 'ConflictError',
      message: expect.stringContaining(`file:${legacyFile}`),
    });
    // and an entity of another cluster is not this cluster's
    await expect(
      unregisterClusterEntity(bound(), {
        cluster: 'prod-us',
        entityRef: 'resource:default/legacy',
        backendBaseUrl: baseUrl,
      }),
    ).rejects.toThrow(
      /is not the kubernetes-cluster Resource of cluster "prod-us"/,
    );
    expect(
      await catalog.getEntityByRef('resource:default/legacy', { credentials }),
    ).toBeDefined();
  });
});
