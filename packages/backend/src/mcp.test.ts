import { permissionsServiceFactory } from '@backstage/backend-defaults/permissions';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import mcpActionsBackend from '@backstage/plugin-mcp-actions-backend';
import permissionBackend from '@backstage/plugin-permission-backend';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { fluxBootstrapPlugin } from '@flux-bootstrap/plugin-flux-bootstrap-backend';
import {
  createKubeClient,
  KubeClient,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  BitbucketDouble,
  BootstrappedCluster,
  KubeApiserver,
  OPERATE_FLUX_RULES,
  startBootstrappedCluster,
} from '@flux-bootstrap/test-peers';
import { Client } from '@modelcontextprotocol/sdk/client';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import request from 'supertest';
import { permissionModuleFluxBootstrapPolicy } from './permissions/module';

/*
 * An AI agent's view of the app: the MCP TypeScript SDK's client, over Streamable HTTP, against
 * a running backend with the app's MCP plugin (@backstage/plugin-mcp-actions-backend), the
 * Flux bootstrap plugin, the real permission backend with the app's policy
 * (permission.fluxBootstrap.statusReaders: alice only) and Backstage's real actions registry
 * and actions service, reading a real kube-apiserver whose Flux the controller simulator
 * reconciles from the Bitbucket double's git. Callers authenticate with Backstage's test
 * tokens (mockCredentials); the app's static token is exercised in test/e2e (npm start).
 */

jest.setTimeout(240_000);

const NS = 'flux-system';
const CANARY = 'canary-in-secret-mcp-8e2f61c0';
const BB_TOKEN = 'bb-token-mcp-test-41c7aa09';
const FM = 'mcp-test';

let cluster: BootstrappedCluster;
let kube: KubeApiserver;
let bb: BitbucketDouble;
let admin: KubeClient;
let readerToken: string;
let server: any;
let baseUrl: string;
const clients: Client[] = [];

const ALICE = mockCredentials.user.token('user:default/alice');
const MALLORY = mockCredentials.user.token('user:default/mallory');
/** An agent with a static external access token, as app-config.mcp.yaml declares it. */
const AGENT = mockCredentials.service.token({
  onBehalfOf: mockCredentials.service('external:mcp-clients'),
  targetPluginId: 'mcp-actions',
});

/** Connects as an agent does: initialize handshake over Streamable HTTP with a bearer token. */
async function connect(token: string): Promise<Client> {
  const client = new Client({
    name: 'flux-bootstrap-test-agent',
    version: '1.0.0',
  });
  await client.connect(
    new StreamableHTTPClientTransport(
      new URL(`${baseUrl}/api/mcp-actions/v1`),
      {
        requestInit: { headers: { Authorization: `Bearer ${token}` } },
      },
    ),
  );
  clients.push(client);
  return client;
}

/** The status answer of the REST API, as the card reads it (a signed-in user). */
async function restStatus(
  token: string,
  query = '?refresh=true',
): Promise<{ status: number; body: any; text: string }> {
  const res = await request(server)
    .get(`/api/flux-bootstrap/clusters/prod${query}`)
    .set('Authorization', `Bearer ${token}`);
  return { status: res.status, body: res.body, text: res.text };
}

const withoutCheckedAt = ({ checkedAt, ...rest }: ClusterBootstrapStatus) => {
  expect(Date.parse(checkedAt)).not.toBeNaN();
  return rest;
};

function expectNoSecrets(text: string) {
  for (const secret of [
    CANARY,
    Buffer.from(CANARY).toString('base64'),
    BB_TOKEN,
    Buffer.from(BB_TOKEN).toString('base64'),
    readerToken,
    kube.adminToken,
  ]) {
    expect(text).not.toContain(secret);
  }
}

beforeAll(async () => {
  cluster = await startBootstrappedCluster({
    token: BB_TOKEN,
    canary: CANARY,
    fieldManager: FM,
    // The backend reads with a token that could read Secrets; it must not pass their data on.
    // It may patch Flux's sources and Kustomizations too: what operating a cluster needs.
    tokenRules: OPERATE_FLUX_RULES,
    tokenName: 'mcp-reader',
  });
  ({ kube, bb } = cluster);
  readerToken = cluster.serviceAccountToken!;
  admin = await createKubeClient({
    name: 'admin',
    url: kube.url,
    token: kube.adminToken,
    caPem: kube.caPem,
    skipTLSVerify: false,
    source: 'config',
  });

  ({ server } = await startTestBackend({
    features: [
      mcpActionsBackend,
      fluxBootstrapPlugin,
      permissionBackend,
      permissionModuleFluxBootstrapPolicy,
      // Backstage's own permissions service (asks the permission backend), not the test mock.
      permissionsServiceFactory,
      // A request without a token has no credentials (the test default would be a user).
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      mockServices.rootConfig.factory({
        data: {
          backend: { actions: { pluginSources: ['flux-bootstrap'] } },
          mcpActions: { name: 'flux-bootstrap-backstage' },
          permission: {
            enabled: true,
            fluxBootstrap: { statusReaders: ['user:default/alice'] },
          },
          kubernetes: {
            serviceLocatorMethod: { type: 'multiTenant' },
            clusterLocatorMethods: [
              {
                type: 'config',
                clusters: [
                  {
                    name: 'prod',
                    title: 'Production',
                    url: kube.url,
                    authProvider: 'serviceAccount',
                    serviceAccountToken: readerToken,
                    caData: Buffer.from(kube.caPem).toString('base64'),
                  },
                ],
              },
            ],
          },
          integrations: {
            bitbucketServer: [
              { host: bb.host, apiBaseUrl: bb.apiBaseUrl, token: BB_TOKEN },
            ],
          },
        },
      }),
    ],
  }));
  baseUrl = `http://localhost:${server.address().port}`;

  // Flux reconciles what the GitRepository points at.
  const deadline = Date.now() + 90_000;
  for (;;) {
    const { body } = await restStatus(ALICE);
    if (body.state === 'ready' && body.inSync === true) break;
    if (Date.now() > deadline)
      throw new Error(`cluster never became ready: ${JSON.stringify(body)}`);
    await new Promise(r => setTimeout(r, 250));
  }
});

afterAll(async () => {
  await Promise.all(clients.map(c => c.close().catch(() => {})));
  admin?.close();
  await cluster?.stop();
});

describe('MCP: an agent with the MCP SDK client', () => {
  it("connects to the app's MCP server and lists our tools with their schemas and hints: three read-only, three that operate", async () => {
    const client = await connect(ALICE);
    expect(client.getServerVersion()?.name).toBe('flux-bootstrap-backstage');
    const { tools } = await client.listTools();
    const byName = Object.fromEntries(tools.map(t => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual([
      'flux-bootstrap.get-cluster-status',
      'flux-bootstrap.get-entity-clusters',
      'flux-bootstrap.list-clusters',
      'flux-bootstrap.reconcile-cluster',
      'flux-bootstrap.resume-cluster',
      'flux-bootstrap.suspend-cluster',
    ]);
    for (const tool of tools) expect(tool.description).toMatch(/Flux/);
    for (const name of [
      'flux-bootstrap.get-cluster-status',
      'flux-bootstrap.get-entity-clusters',
      'flux-bootstrap.list-clusters',
    ]) {
      expect(byName[name].annotations).toMatchObject({
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
      });
    }
    // Suspending stops delivery: MCP clients ask the user before calling it.
    expect(byName['flux-bootstrap.suspend-cluster'].annotations).toMatchObject({
      readOnlyHint: false,
      destructiveHint: true,
    });
    expect(
      byName['flux-bootstrap.reconcile-cluster'].annotations,
    ).toMatchObject({ readOnlyHint: false, destructiveHint: false });
    expect(
      byName['flux-bootstrap.get-cluster-status'].inputSchema,
    ).toMatchObject({
      type: 'object',
      properties: {
        cluster: { type: 'string', description: expect.any(String) },
        refresh: { type: 'boolean' },
      },
      required: ['cluster'],
    });
    expect(
      byName['flux-bootstrap.get-entity-clusters'].inputSchema,
    ).toMatchObject({
      type: 'object',
      properties: { entityRef: { type: 'string' } },
      required: ['entityRef'],
    });
    expect(byName['flux-bootstrap.list-clusters'].inputSchema).toMatchObject({
      type: 'object',
      properties: { includeStatus: { type: 'boolean' } },
    });
  });

  it('calls get-cluster-status on the real cluster and gets the answer the REST API gives (minus checkedAt), without a secret', async () => {
    const client = await connect(ALICE);
    const result = await client.callTool({
      name: 'flux-bootstrap.get-cluster-status',
      arguments: { cluster: 'prod', refresh: true },
    });
    expect(result.isError).toBeFalsy();
    const viaMcp =
      result.structuredContent as unknown as ClusterBootstrapStatus;
    // The text content an LLM reads is the same JSON.
    const [content] = result.content as { type: string; text: string }[];
    expect(content.type).toBe('text');
    expect(JSON.parse(content.text)).toEqual(viaMcp);

    const rest = await restStatus(ALICE);
    expect(rest.status).toBe(200);
    expect(withoutCheckedAt(viaMcp)).toEqual(withoutCheckedAt(rest.body));
    // A real answer: ready, in sync with the branch head on Bitbucket, with its controllers.
    expect(viaMcp).toMatchObject({
      cluster: 'prod',
      title: 'Production',
      state: 'ready',
      inSync: true,
      flux: { version: 'v2.9.4', namespace: NS },
      source: { branch: 'main', ready: true },
      repository: { project: 'FLUX', slug: 'fleet' },
    });
    expect(viaMcp.components.map(c => c.name).sort()).toEqual([
      'kustomize-controller',
      'source-controller',
    ]);
    expectNoSecrets(JSON.stringify(result));
  });

  it('sees a change on the cluster with the reason text, as the REST API does', async () => {
    await cluster.setSyncSuspended(true);
    try {
      const client = await connect(ALICE);
      const result = await client.callTool({
        name: 'flux-bootstrap.get-cluster-status',
        arguments: { cluster: 'prod', refresh: true },
      });
      const viaMcp =
        result.structuredContent as unknown as ClusterBootstrapStatus;
      expect(viaMcp.state).toBe('suspended');
      expect(viaMcp.reason).toMatch(/suspend/i);
      const rest = await restStatus(ALICE);
      expect(withoutCheckedAt(viaMcp)).toEqual(withoutCheckedAt(rest.body));
    } finally {
      await cluster.setSyncSuspended(false);
    }
  });

  it('suspends and resumes a cluster for a user the policy lets operate (flux.bootstrap.cluster.operate)', async () => {
    const client = await connect(ALICE);
    const suspended = await client.callTool({
      name: 'flux-bootstrap.suspend-cluster',
      arguments: { cluster: 'prod', reason: 'agent test: hold deploys' },
    });
    expect(suspended.isError).toBeFalsy();
    expect(suspended.structuredContent).toMatchObject({
      cluster: 'prod',
      action: 'suspend',
      status: { state: 'suspended' },
    });
    const ks = await admin.get({
      apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
      kind: 'Kustomization',
      name: NS,
      namespace: NS,
    });
    expect((ks?.spec as any).suspend).toBe(true);
    expect(ks?.metadata.annotations?.['flux-bootstrap.io/suspended-by']).toBe(
      'user:default/alice',
    );
    const resumed = await client.callTool({
      name: 'flux-bootstrap.resume-cluster',
      arguments: { cluster: 'prod' },
    });
    expect(resumed.isError).toBeFalsy();
    expect(resumed.structuredContent).toMatchObject({
      action: 'resume',
      status: { state: 'ready' },
    });
    expectNoSecrets(JSON.stringify(suspended) + JSON.stringify(resumed));
  });

  it('lists the clusters with their states, as GET /clusters?state=true does', async () => {
    const client = await connect(ALICE);
    const result = await client.callTool({
      name: 'flux-bootstrap.list-clusters',
      arguments: { includeStatus: true, refresh: true },
    });
    expect(result.isError).toBeFalsy();
    const { items } = result.structuredContent as any;
    expect(items).toHaveLength(1);
    expect(items[0]).toMatchObject({
      name: 'prod',
      title: 'Production',
      status: { cluster: 'prod' },
    });
    expectNoSecrets(JSON.stringify(result));
  });

  it('refuses a user the policy does not let read cluster status: a permission error naming it, and no data', async () => {
    const client = await connect(MALLORY);
    // The tools are listed (the permission is checked when one is called) …
    const { tools } = await client.listTools();
    expect(tools.map(t => t.name)).toContain(
      'flux-bootstrap.get-cluster-status',
    );
    // … and every call is refused with the permission named, and nothing about the cluster.
    for (const [name, args] of [
      ['flux-bootstrap.get-cluster-status', { cluster: 'prod' }],
      ['flux-bootstrap.list-clusters', { includeStatus: true }],
      [
        'flux-bootstrap.get-entity-clusters',
        { entityRef: 'resource:default/prod' },
      ],
    ] as const) {
      const result = await client.callTool({ name, arguments: args });
      expect(result.isError).toBe(true);
      expect(result.structuredContent).toBeUndefined();
      const text = (result.content as { text: string }[])
        .map(c => c.text)
        .join('\n');
      expect(text).toMatch(
        /^NotAllowedError: .*requires the permission "flux\.bootstrap\.cluster\.read"/,
      );
      expect(text).not.toMatch(/Production|ready|v2\.9\.4|fleet/);
    }
    // The REST API refuses the same user the same way.
    expect((await restStatus(MALLORY)).status).toBe(403);
  });

  it('answers an agent with a static token (a service): services are not subject to the user policy, and cannot operate', async () => {
    const client = await connect(AGENT);
    const result = await client.callTool({
      name: 'flux-bootstrap.get-cluster-status',
      arguments: { cluster: 'prod' },
    });
    expect(result.isError).toBeFalsy();
    expect((result.structuredContent as any).cluster).toBe('prod');
    expectNoSecrets(JSON.stringify(result));
    // … but it may not operate: that takes a signed-in user the policy lets operate.
    const suspend = await client.callTool({
      name: 'flux-bootstrap.suspend-cluster',
      arguments: { cluster: 'prod', reason: 'static token' },
    });
    expect(suspend.isError).toBe(true);
    expect(
      (suspend.content as { text: string }[]).map(c => c.text).join('\n'),
    ).toMatch(/^NotAllowedError: .*requires a signed-in user/);
  });

  it('refuses an agent without credentials before any tool is listed', async () => {
    const transport = new StreamableHTTPClientTransport(
      new URL(`${baseUrl}/api/mcp-actions/v1`),
    );
    const client = new Client({ name: 'anonymous-agent', version: '1.0.0' });
    await expect(client.connect(transport)).rejects.toThrow(
      /401|Unauthorized|auth/i,
    );
    await client.close().catch(() => {});
  });

  it('reports bad input and an unknown cluster as tool errors', async () => {
    const client = await connect(ALICE);
    // The actions registry validates the input against the schema before the action runs; the
    // error names the field (zod's issue path).
    const missing = await client.callTool({
      name: 'flux-bootstrap.get-cluster-status',
      arguments: {},
    });
    expect(missing.isError).toBe(true);
    const text = (missing.content as { text: string }[])[0].text;
    expect(text).toMatch(
      /^InputError: Invalid input to action "flux-bootstrap:get-cluster-status"; caused by/,
    );
    expect(text).toMatch(/"path": \[\s*"cluster"\s*\]/);
    const badRef = await client.callTool({
      name: 'flux-bootstrap.get-entity-clusters',
      arguments: { entityRef: 'prod' },
    });
    expect(badRef.isError).toBe(true);
    expect((badRef.content as { text: string }[])[0].text).toMatch(
      /^InputError: entityRef: "prod" is not an entity ref/,
    );
    const unknown = await client.callTool({
      name: 'flux-bootstrap.get-cluster-status',
      arguments: { cluster: 'nope' },
    });
    expect(unknown.isError).toBe(true);
    expect((unknown.content as { text: string }[])[0].text).toMatch(
      /^NotFoundError: No cluster named "nope"/,
    );
  });
});
