import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import type { Entity } from '@backstage/catalog-model';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { CLUSTER_BOOTSTRAP_STATES } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import request from 'supertest';
import { fluxBootstrapPlugin } from '../plugin';

/*
 * The plugin's actions through Backstage's real actions registry (startTestBackend installs
 * the registry of @backstage/backend-defaults): what it lists at
 * /.backstage/actions/v1/actions and what invoking each action answers, for a permitted user,
 * a service, a user without flux.bootstrap.cluster.read and nobody. The cluster is unreachable
 * (port 1), so every read gives a real "unreachable" status with its reason; canaries in the
 * cluster token and the Bitbucket token must never appear in an answer.
 */

const CLUSTER_TOKEN = 'canary-cluster-token-7c41d09b';
const BB_TOKEN = 'canary-bitbucket-token-e58a21f3';

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
  backend: { actions: { pluginSources: ['flux-bootstrap'] } },
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
            serviceAccountToken: CLUSTER_TOKEN,
          },
        ],
      },
    ],
  },
  integrations: {
    bitbucketServer: [{ host: 'bitbucket.example.com', token: BB_TOKEN }],
  },
};

const ACTIONS = '/api/flux-bootstrap/.backstage/actions/v1/actions';
const ALICE = mockCredentials.user.header('user:default/alice');
const MALLORY = mockCredentials.user.header('user:default/mallory');
const SERVICE = mockCredentials.service.header({
  onBehalfOf: mockCredentials.service('plugin:mcp-actions'),
  targetPluginId: 'flux-bootstrap',
});

let server: any;
/** `principal:permission` of every permission question, in order. */
const asked: string[] = [];

beforeAll(async () => {
  // As Backstage's ServerPermissionClient decides: a service is allowed outright; a user as
  // the policy says (here: alice may read cluster status, mallory may not).
  const permissions = mockServices.permissions.mock({
    authorize: async (requests, opts) => {
      const principal = opts?.credentials?.principal as any;
      const who =
        principal?.type === 'service'
          ? principal.subject
          : principal?.userEntityRef;
      return requests.map(r => {
        asked.push(`${who}:${(r as any).permission.name}`);
        const allowed =
          principal?.type === 'service' || who === 'user:default/alice';
        return {
          result: allowed ? AuthorizeResult.ALLOW : AuthorizeResult.DENY,
        };
      }) as any;
    },
  });
  ({ server } = await startTestBackend({
    features: [
      fluxBootstrapPlugin,
      mockServices.rootConfig.factory({ data: config }),
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      permissions.factory,
      catalogServiceMock.factory({ entities: [fleet] }),
    ],
  }));
});

beforeEach(() => {
  asked.length = 0;
});

function invoke(id: string, input: object, auth?: string) {
  const req = request(server)
    .post(`${ACTIONS}/${encodeURIComponent(id)}/invoke`)
    .send(input);
  return auth ? req.set('Authorization', auth) : req;
}

function expectNoSecrets(text: string) {
  for (const secret of [
    CLUSTER_TOKEN,
    Buffer.from(CLUSTER_TOKEN).toString('base64'),
    BB_TOKEN,
    Buffer.from(BB_TOKEN).toString('base64'),
  ]) {
    expect(text).not.toContain(secret);
  }
}

describe('actions registry: the listing', () => {
  it('lists the three read-only actions, then the three operate actions, with titles, descriptions and flags', async () => {
    const res = await request(server).get(ACTIONS).set('Authorization', ALICE);
    expect(res.status).toBe(200);
    const all = res.body.actions as any[];
    expect(all.map(a => a.id)).toEqual([
      'flux-bootstrap:list-clusters',
      'flux-bootstrap:get-cluster-status',
      'flux-bootstrap:get-entity-clusters',
      'flux-bootstrap:reconcile-cluster',
      'flux-bootstrap:suspend-cluster',
      'flux-bootstrap:resume-cluster',
    ]);
    for (const action of all.slice(3)) {
      expect(action.description.length).toBeGreaterThan(80);
      expect(action.attributes.readOnly).toBe(false);
    }
    const actions = all.slice(0, 3);
    for (const action of actions) {
      expect(action.pluginId).toBe('flux-bootstrap');
      expect(action.title).toMatch(/\S/);
      expect(action.description.length).toBeGreaterThan(80);
      expect(action.attributes).toEqual({
        readOnly: true,
        idempotent: true,
        destructive: false,
      });
    }
  });

  it('publishes JSON schemas of the inputs: required fields, types and descriptions', async () => {
    const res = await request(server).get(ACTIONS).set('Authorization', ALICE);
    const byName = Object.fromEntries(
      (res.body.actions as any[]).map(a => [a.name, a.schema]),
    );
    expect(byName['list-clusters'].input).toMatchObject({
      type: 'object',
      properties: {
        includeStatus: { type: 'boolean' },
        refresh: { type: 'boolean' },
      },
    });
    expect(byName['list-clusters'].input.required).toBeUndefined();
    expect(byName['get-cluster-status'].input).toMatchObject({
      type: 'object',
      properties: {
        cluster: { type: 'string', minLength: 1 },
        refresh: { type: 'boolean' },
      },
      required: ['cluster'],
    });
    expect(byName['get-entity-clusters'].input).toMatchObject({
      type: 'object',
      properties: { entityRef: { type: 'string', minLength: 1 } },
      required: ['entityRef'],
    });
    for (const schema of Object.values(byName) as any[]) {
      for (const prop of Object.values(schema.input.properties) as any[]) {
        expect(prop.description).toMatch(/\S/);
      }
    }
  });

  it('publishes the output schema of a status: every field of ClusterBootstrapStatus, the states, the reason', async () => {
    const res = await request(server).get(ACTIONS).set('Authorization', ALICE);
    const status = (res.body.actions as any[]).find(
      a => a.name === 'get-cluster-status',
    ).schema.output;
    expect(Object.keys(status.properties).sort()).toEqual(
      [
        'cluster',
        'title',
        'state',
        'reason',
        'checkedAt',
        'flux',
        'components',
        'source',
        'sync',
        'inSync',
        'repository',
        'pullRequest',
        'kubernetesVersion',
      ].sort(),
    );
    expect(status.required).toEqual(
      expect.arrayContaining([
        'cluster',
        'state',
        'checkedAt',
        'components',
        'inSync',
      ]),
    );
    expect(status.properties.state.enum).toEqual(CLUSTER_BOOTSTRAP_STATES);
    expect(status.properties.reason.description).toMatch(/why/i);
  });

  it('lists the actions to any authenticated caller (the permission is checked when one is invoked)', async () => {
    const res = await request(server)
      .get(ACTIONS)
      .set('Authorization', MALLORY);
    expect(res.status).toBe(200);
    expect(res.body.actions).toHaveLength(6);
  });
});

describe('actions registry: invoking', () => {
  it('get-cluster-status answers a permitted user with the status and its reason, the same JSON as the REST route', async () => {
    const res = await invoke(
      'flux-bootstrap:get-cluster-status',
      { cluster: 'ghost', refresh: true },
      ALICE,
    );
    expect(res.status).toBe(200);
    const status = res.body.output;
    expect(status).toMatchObject({
      cluster: 'ghost',
      title: 'Ghost cluster',
      state: 'unreachable',
      components: [],
      inSync: null,
    });
    expect(status.reason).toMatch(/127\.0\.0\.1:1|ECONNREFUSED|connect/i);
    expect(asked).toEqual(['user:default/alice:flux.bootstrap.cluster.read']);

    // The REST route answers from the same cache with the same code: the same JSON.
    const rest = await request(server)
      .get('/api/flux-bootstrap/clusters/ghost')
      .set('Authorization', ALICE);
    expect(rest.status).toBe(200);
    expect(rest.body).toEqual(status);
    expectNoSecrets(res.text);
  });

  it('list-clusters gives names and titles, and statuses when asked', async () => {
    const plain = await invoke('flux-bootstrap:list-clusters', {}, ALICE);
    expect(plain.status).toBe(200);
    expect(plain.body.output).toEqual({
      items: [{ name: 'ghost', title: 'Ghost cluster' }],
    });
    const withStatus = await invoke(
      'flux-bootstrap:list-clusters',
      { includeStatus: true },
      ALICE,
    );
    expect(withStatus.status).toBe(200);
    expect(withStatus.body.output.items).toEqual([
      {
        name: 'ghost',
        title: 'Ghost cluster',
        status: expect.objectContaining({
          cluster: 'ghost',
          state: 'unreachable',
        }),
        // Judged as the REST route judges it (its version could not be read).
        kubernetesSupport: expect.objectContaining({ level: 'unknown' }),
      },
    ]);
    const rest = await request(server)
      .get('/api/flux-bootstrap/clusters?state=true')
      .set('Authorization', ALICE);
    expect(rest.body).toEqual(withStatus.body.output);
    expectNoSecrets(plain.text + withStatus.text);
  });

  it("get-entity-clusters reads the entity with the caller's credentials and answers as the REST route", async () => {
    const res = await invoke(
      'flux-bootstrap:get-entity-clusters',
      { entityRef: 'Component:default/fleet' },
      ALICE,
    );
    expect(res.status).toBe(200);
    expect(res.body.output).toMatchObject({
      entityRef: 'component:default/fleet',
      clusters: ['ghost', 'not-configured'],
      unknownClusters: ['not-configured'],
      items: [{ cluster: 'ghost', state: 'unreachable' }],
    });
    const rest = await request(server)
      .get('/api/flux-bootstrap/entity/component/default/fleet/clusters')
      .set('Authorization', ALICE);
    expect(rest.body).toEqual(res.body.output);
    // the namespace defaults to "default"
    const short = await invoke(
      'flux-bootstrap:get-entity-clusters',
      { entityRef: 'component:fleet' },
      ALICE,
    );
    expect(short.body.output).toEqual(res.body.output);
    expectNoSecrets(res.text);
  });

  it('answers a service caller (an agent through the MCP backend): services hold every permission unless their token restricts it', async () => {
    const res = await invoke(
      'flux-bootstrap:get-cluster-status',
      { cluster: 'ghost' },
      SERVICE,
    );
    expect(res.status).toBe(200);
    expect(res.body.output.cluster).toBe('ghost');
    expect(asked).toEqual(['plugin:mcp-actions:flux.bootstrap.cluster.read']);
  });

  it.each([
    ['flux-bootstrap:list-clusters', { includeStatus: true }],
    ['flux-bootstrap:get-cluster-status', { cluster: 'ghost' }],
    ['flux-bootstrap:get-entity-clusters', { entityRef: 'component:fleet' }],
  ])(
    '%s refuses a user without flux.bootstrap.cluster.read: NotAllowedError naming it, no data',
    async (id, input) => {
      const res = await invoke(id, input, MALLORY);
      expect(res.status).toBe(403);
      expect(res.body.error).toMatchObject({
        name: 'NotAllowedError',
        message: expect.stringContaining('"flux.bootstrap.cluster.read"'),
      });
      expect(res.body.output).toBeUndefined();
      expect(res.text).not.toContain('Ghost cluster');
      expect(res.text).not.toContain('unreachable');
      expect(asked).toEqual([
        'user:default/mallory:flux.bootstrap.cluster.read',
      ]);
    },
  );

  it('refuses an anonymous caller before any permission question', async () => {
    const res = await invoke('flux-bootstrap:get-cluster-status', {
      cluster: 'ghost',
    });
    expect([401, 403]).toContain(res.status);
    expect(res.body.output).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it('rejects bad input with an error naming the field, before any permission question or read', async () => {
    const missing = await invoke(
      'flux-bootstrap:get-cluster-status',
      {},
      ALICE,
    );
    expect(missing.status).toBe(400);
    expect(missing.body.error.name).toBe('InputError');
    // zod's issue names the missing field
    expect(JSON.stringify(missing.body.error.cause)).toMatch(
      /"path":\["cluster"\]/,
    );
    expect(asked).toEqual([]);

    const badRef = await invoke(
      'flux-bootstrap:get-entity-clusters',
      { entityRef: 'fleet' },
      ALICE,
    );
    expect(badRef.status).toBe(400);
    expect(badRef.body.error).toMatchObject({
      name: 'InputError',
      message: expect.stringMatching(
        /^entityRef: "fleet" is not an entity ref/,
      ),
    });
    expect(asked).toEqual([]);
  });

  it('answers NotFoundError for a cluster that is not configured and an entity that is not in the catalog', async () => {
    const cluster = await invoke(
      'flux-bootstrap:get-cluster-status',
      { cluster: 'nope' },
      ALICE,
    );
    expect(cluster.status).toBe(404);
    expect(cluster.body.error).toMatchObject({
      name: 'NotFoundError',
      message: expect.stringContaining('No cluster named "nope"'),
    });
    const entity = await invoke(
      'flux-bootstrap:get-entity-clusters',
      { entityRef: 'component:default/nope' },
      ALICE,
    );
    expect(entity.status).toBe(404);
    expect(entity.body.error.name).toBe('NotFoundError');
  });
});
