import { mockCredentials, mockServices } from '@backstage/backend-test-utils';
import type { AuditorServiceCreateEventOptions } from '@backstage/backend-plugin-api';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  FLUX_SUSPENDED_BY_ANNOTATION,
  FLUX_SUSPENDED_REASON_ANNOTATION,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import type {
  KubeClient,
  KubeObject,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  BitbucketDouble,
  BootstrappedCluster,
  KubeApiserver,
  OPERATE_FLUX_RULES,
  startBootstrappedCluster,
} from '@flux-bootstrap/test-peers';
import request from 'supertest';
import {
  adminKubeClient,
  pollClusterStatus,
  prodCluster,
  startStatusBackend,
  statusBackendConfig,
} from './__testUtils__/statusBackend';

/*
 * The operate routes and actions end to end: a real backend (startTestBackend) operating a real
 * kube-apiserver whose Flux the controller simulator reconciles from the Bitbucket double's git.
 * The cluster credentials may read everything and patch only Flux's GitRepositories and
 * Kustomizations (what the operate routes need). Alice holds flux.bootstrap.cluster.operate,
 * Mallory only .read. Every call's audit event is captured from the auditor service.
 */

jest.setTimeout(240_000);

const NS = 'flux-system';
const CANARY = 'canary-in-secret-operate-0b8e44';
const BB_TOKEN = 'bb-token-operate-test-9c2d71';
const FM = 'operate-test';
const ALICE = mockCredentials.user.header('user:default/alice');
const MALLORY = mockCredentials.user.header('user:default/mallory');
const ACTIONS = '/api/flux-bootstrap/.backstage/actions/v1/actions';

let cluster: BootstrappedCluster;
let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let operatorToken: string;
let server: any;

interface AuditRecord {
  options: AuditorServiceCreateEventOptions;
  outcome?: 'succeeded' | 'failed';
  error?: Error;
}
const audits: AuditRecord[] = [];
const auditor = mockServices.auditor.mock({
  createEvent: async options => {
    const record: AuditRecord = { options };
    audits.push(record);
    return {
      success: async () => {
        record.outcome = 'succeeded';
      },
      fail: async ({ error }) => {
        record.outcome = 'failed';
        record.error = error;
      },
    };
  },
});

const ref = (kind: 'GitRepository' | 'Kustomization') => ({
  apiVersion:
    kind === 'GitRepository'
      ? 'source.toolkit.fluxcd.io/v1'
      : 'kustomize.toolkit.fluxcd.io/v1',
  kind,
  name: NS,
  namespace: NS,
});
const get = async (kind: 'GitRepository' | 'Kustomization') =>
  (await admin.get(ref(kind))) as KubeObject & {
    spec: { suspend?: boolean };
    status: { lastHandledReconcileAt?: string };
  };

function post(path: string, body: object | undefined, auth?: string) {
  const req = request(server).post(`/api/flux-bootstrap${path}`);
  if (auth) req.set('Authorization', auth);
  return body === undefined ? req : req.send(body);
}
function expectNoSecrets(text: string) {
  for (const secret of [
    CANARY,
    Buffer.from(CANARY).toString('base64'),
    BB_TOKEN,
    operatorToken,
    kube.adminToken,
  ])
    expect(text).not.toContain(secret);
}

beforeAll(async () => {
  cluster = await startBootstrappedCluster({
    token: BB_TOKEN,
    canary: CANARY,
    fieldManager: FM,
    // What operating needs on the cluster: read, and patch Flux's sources and Kustomizations.
    tokenRules: OPERATE_FLUX_RULES,
    tokenName: 'operator',
  });
  ({ kube, bb } = cluster);
  operatorToken = cluster.serviceAccountToken!;
  admin = await adminKubeClient(kube);
  const permissions = mockServices.permissions.mock({
    authorize: async (requests, opts) => {
      const who = (opts?.credentials?.principal as any)?.userEntityRef;
      return requests.map(r => {
        const name = (r as any).permission.name as string;
        const allowed =
          who === 'user:default/alice' ||
          (who === 'user:default/mallory' &&
            name === 'flux.bootstrap.cluster.read');
        return {
          result: allowed ? AuthorizeResult.ALLOW : AuthorizeResult.DENY,
        };
      }) as any;
    },
  });

  ({ server } = await startStatusBackend({
    config: statusBackendConfig({
      clusters: [prodCluster(kube, operatorToken)],
      bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
      fluxBootstrap: { status: { clusterTimeoutSeconds: 20 } },
      extra: { backend: { actions: { pluginSources: ['flux-bootstrap'] } } },
    }),
    permissions: permissions.factory,
    features: [auditor.factory],
  }));
  // Flux synced once before anything is operated
  await pollClusterStatus(server, {
    authorization: ALICE,
    until: s => s.state === 'ready',
    intervalMs: 200,
  });
});

afterAll(async () => {
  admin?.close();
  await cluster?.stop();
});

beforeEach(() => {
  audits.length = 0;
});

describe('operate routes on a real cluster', () => {
  it('reconcile: both objects handled exactly the request, 200 with the fresh status, one audit event naming alice', async () => {
    const res = await post('/clusters/prod/reconcile', {}, ALICE);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      cluster: 'prod',
      action: 'reconcile',
      status: { cluster: 'prod', state: 'ready' },
      message: expect.stringMatching(
        /^Reconciled: GitRepository flux-system\/flux-system and Kustomization/,
      ),
    });
    const requestedAt = (await get('GitRepository')).metadata.annotations?.[
      'reconcile.fluxcd.io/requestedAt'
    ];
    expect(requestedAt).toBeDefined();
    for (const kind of ['GitRepository', 'Kustomization'] as const) {
      const obj = await get(kind);
      expect(
        obj.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'],
      ).toBe(requestedAt);
      expect(obj.status.lastHandledReconcileAt).toBe(requestedAt);
    }
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      options: {
        eventId: 'cluster-operate',
        meta: {
          actor: 'user:default/alice',
          cluster: 'prod',
          action: 'reconcile',
        },
      },
      outcome: 'succeeded',
    });
    // the route hands the request to the auditor, which reads the actor and IP from it
    expect(audits[0].options.request?.originalUrl).toBe(
      '/api/flux-bootstrap/clusters/prod/reconcile',
    );
    expectNoSecrets(res.text);
  });

  it('suspend needs a reason: 400 naming it, nothing changed, the failure audited', async () => {
    for (const body of [undefined, {}, { reason: '   ' }]) {
      const res = await post('/clusters/prod/suspend', body, ALICE);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({
        name: 'InputError',
        message: expect.stringContaining('"reason": is required'),
      });
    }
    expect((await get('Kustomization')).spec.suspend).not.toBe(true);
    expect(audits.map(a => a.outcome)).toEqual(['failed', 'failed', 'failed']);
  });

  it('suspend flips spec.suspend with the reason and the user on the object, the status reads suspended; resume flips it back', async () => {
    const suspended = await post(
      '/clusters/prod/suspend',
      { reason: 'INC-7: hold deploys' },
      ALICE,
    );
    expect(suspended.status).toBe(200);
    expect(suspended.body).toMatchObject({
      action: 'suspend',
      status: { state: 'suspended', sync: { suspended: true } },
    });
    const ks = await get('Kustomization');
    expect(ks.spec.suspend).toBe(true);
    expect(ks.metadata.annotations).toMatchObject({
      [FLUX_SUSPENDED_REASON_ANNOTATION]: 'INC-7: hold deploys',
      [FLUX_SUSPENDED_BY_ANNOTATION]: 'user:default/alice',
    });
    // a reconcile of a suspended sync is refused, and audited as such
    const refused = await post('/clusters/prod/reconcile', {}, ALICE);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain('is suspended');

    const resumed = await post(
      '/clusters/prod/resume',
      { reason: 'INC-7 closed' },
      ALICE,
    );
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({
      action: 'resume',
      status: { state: 'ready' },
      message: expect.stringContaining(
        'Resumed Kustomization flux-system/flux-system; Flux reconciled it',
      ),
    });
    expect((await get('Kustomization')).spec.suspend).toBe(false);
    expect(
      audits.map(a => [
        a.options.meta?.action,
        a.options.meta?.reason,
        a.outcome,
        a.options.severityLevel,
      ]),
    ).toEqual([
      ['suspend', 'INC-7: hold deploys', 'succeeded', 'high'],
      ['reconcile', undefined, 'failed', 'medium'],
      ['resume', 'INC-7 closed', 'succeeded', 'medium'],
    ]);
    expectNoSecrets(suspended.text + resumed.text);
  });

  it.each(['reconcile', 'suspend', 'resume'])(
    '%s answers 403 naming flux.bootstrap.cluster.operate to a user without it, changes nothing, and audits the denial',
    async action => {
      const before = await get('Kustomization');
      const res = await post(
        `/clusters/prod/${action}`,
        { reason: 'because' },
        MALLORY,
      );
      expect(res.status).toBe(403);
      expect(res.body.error).toMatchObject({
        name: 'NotAllowedError',
        message: expect.stringContaining('"flux.bootstrap.cluster.operate"'),
      });
      expect(res.text).not.toContain('Production');
      const after = await get('Kustomization');
      expect(after.metadata.annotations).toEqual(before.metadata.annotations);
      expect(after.spec).toEqual(before.spec);
      expect(audits).toHaveLength(1);
      expect(audits[0]).toMatchObject({
        options: {
          meta: { actor: 'user:default/mallory', cluster: 'prod', action },
        },
        outcome: 'failed',
      });
    },
  );

  it('refuses a service (an agent with a static token, another plugin): operating takes a signed-in user', async () => {
    const before = await get('Kustomization');
    const res = await post(
      '/clusters/prod/suspend',
      { reason: 'automation' },
      mockCredentials.service.header({
        onBehalfOf: mockCredentials.service('plugin:mcp-actions'),
        targetPluginId: 'flux-bootstrap',
      }),
    );
    // the route itself only serves users (Backstage's httpAuth refuses a service: 403) …
    expect(res.status).toBe(403);
    expect(audits).toEqual([]);
    // … the actions registry lets services in …
    const invoked = await request(server)
      .post(
        `${ACTIONS}/${encodeURIComponent(
          'flux-bootstrap:suspend-cluster',
        )}/invoke`,
      )
      .set(
        'Authorization',
        mockCredentials.service.header({
          onBehalfOf: mockCredentials.service('plugin:mcp-actions'),
          targetPluginId: 'flux-bootstrap',
        }),
      )
      .send({ cluster: 'prod', reason: 'automation' });
    // … and the service refuses them, naming why
    expect(invoked.status).toBe(403);
    expect(invoked.body.error.message).toMatch(
      /requires a signed-in user with the permission "flux\.bootstrap\.cluster\.operate"; plugin:mcp-actions is a service/,
    );
    expect((await get('Kustomization')).spec).toEqual(before.spec);
    expect(audits.map(a => [a.options.meta?.actor, a.outcome])).toEqual([
      ['plugin:mcp-actions', 'failed'],
    ]);
  });

  it('answers 401 without credentials, 404 for a cluster that is not configured, 404 for another action', async () => {
    expect((await post('/clusters/prod/reconcile', {})).status).toBe(401);
    const unknown = await post('/clusters/nope/reconcile', {}, ALICE);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.name).toBe('NotFoundError');
    expect((await post('/clusters/prod/delete', {}, ALICE)).status).toBe(404);
  });
});

describe('operate actions in the actions registry', () => {
  function invoke(id: string, input: object, auth: string) {
    return request(server)
      .post(`${ACTIONS}/${encodeURIComponent(id)}/invoke`)
      .set('Authorization', auth)
      .send(input);
  }

  it('lists the three operate actions as not read-only, suspend flagged destructive, reason required to suspend', async () => {
    const res = await request(server).get(ACTIONS).set('Authorization', ALICE);
    const byName = Object.fromEntries(
      (res.body.actions as any[]).map(a => [a.name, a]),
    );
    expect(byName['reconcile-cluster'].attributes).toEqual({
      readOnly: false,
      idempotent: false,
      destructive: false,
    });
    expect(byName['suspend-cluster'].attributes).toEqual({
      readOnly: false,
      idempotent: true,
      destructive: true,
    });
    expect(byName['resume-cluster'].attributes).toEqual({
      readOnly: false,
      idempotent: true,
      destructive: false,
    });
    expect(byName['suspend-cluster'].schema.input.required).toEqual([
      'cluster',
      'reason',
    ]);
    expect(byName['resume-cluster'].schema.input.required).toEqual(['cluster']);
  });

  it('suspend and resume through the actions: the same answers as the routes, audited with the user, 403 without the permission', async () => {
    const suspended = await invoke(
      'flux-bootstrap:suspend-cluster',
      { cluster: 'prod', reason: 'agent: INC-9' },
      ALICE,
    );
    expect(suspended.status).toBe(200);
    expect(suspended.body.output).toMatchObject({
      cluster: 'prod',
      action: 'suspend',
      status: { state: 'suspended' },
    });
    expect((await get('Kustomization')).spec.suspend).toBe(true);
    const denied = await invoke(
      'flux-bootstrap:resume-cluster',
      { cluster: 'prod' },
      MALLORY,
    );
    expect(denied.status).toBe(403);
    expect(denied.body.error.message).toContain(
      '"flux.bootstrap.cluster.operate"',
    );
    expect((await get('Kustomization')).spec.suspend).toBe(true);
    const resumed = await invoke(
      'flux-bootstrap:resume-cluster',
      { cluster: 'prod' },
      ALICE,
    );
    expect(resumed.status).toBe(200);
    expect(resumed.body.output.status.state).toBe('ready');
    expect(
      audits.map(a => [
        a.options.meta?.actor,
        a.options.meta?.action,
        a.outcome,
      ]),
    ).toEqual([
      ['user:default/alice', 'suspend', 'succeeded'],
      ['user:default/mallory', 'resume', 'failed'],
      ['user:default/alice', 'resume', 'succeeded'],
    ]);
    const reconciled = await invoke(
      'flux-bootstrap:reconcile-cluster',
      { cluster: 'prod' },
      ALICE,
    );
    expect(reconciled.status).toBe(200);
    expect(reconciled.body.output.message).toMatch(/^Reconciled/);
    expectNoSecrets(suspended.text + resumed.text + reconciled.text);
  });
});
