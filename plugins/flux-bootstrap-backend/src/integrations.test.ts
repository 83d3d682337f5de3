import type { JsonObject } from '@backstage/config';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import request from 'supertest';
import { fluxBootstrapPlugin } from './plugin';

const ROUTE = '/api/flux-bootstrap/integrations/bitbucket-server';
const TOKEN_CANARY = 'canary-bb-token-7d1e55';
const PASSWORD_CANARY = 'canary-bb-password-41a0c2';

const integrations = {
  bitbucketServer: [
    {
      host: 'bb.example.com',
      apiBaseUrl: 'https://bb.example.com/rest/api/1.0',
      token: TOKEN_CANARY,
    },
    {
      host: '127.0.0.1:7990',
      apiBaseUrl: 'http://127.0.0.1:7990/bitbucket/rest/api/1.0',
      username: 'flux-bot',
      password: PASSWORD_CANARY,
    },
    // a blank token is no token (the engine trims it, as Backstage does)
    { host: 'bb-none.example.com', token: '   ' },
    // a username alone is no credentials
    { host: 'bb-user.example.com', username: 'someone' },
  ],
};

async function startBackend(extra: Record<string, unknown> = {}) {
  const { server } = await startTestBackend({
    features: [
      fluxBootstrapPlugin,
      mockServices.rootConfig.factory({ data: { integrations, ...extra } }),
      // requests without an Authorization header carry no credentials
      mockServices.httpAuth.factory({
        defaultCredentials: mockCredentials.none(),
      }),
      // nobody holds any permission: this route must not need one
      mockServices.permissions.mock({
        authorize: async requests =>
          requests.map(() => ({ result: 'DENY' } as any)),
      }).factory,
      catalogServiceMock.factory({ entities: [] }),
    ],
  });
  return server;
}

describe('GET /api/flux-bootstrap/integrations/bitbucket-server', () => {
  let server: Awaited<ReturnType<typeof startBackend>>;
  beforeAll(async () => {
    server = await startBackend();
  });

  it('answers 401 without credentials, with nothing of the configuration', async () => {
    const res = await request(server).get(ROUTE);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain('bb.example.com');
    expect(res.text).not.toContain(TOKEN_CANARY);
  });

  it('tells a signed-in user which credentials each host has, never their value', async () => {
    const res = await request(server)
      .get(ROUTE)
      .set('Authorization', mockCredentials.user.header('user:default/alice'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      items: [
        { host: 'bb.example.com', credentials: 'token' },
        { host: '127.0.0.1:7990', credentials: 'basic' },
        { host: 'bb-none.example.com', credentials: 'none' },
        { host: 'bb-user.example.com', credentials: 'none' },
      ],
      requireScmUserCredentials: false,
    });
    expect(res.text).not.toContain(TOKEN_CANARY);
    expect(res.text).not.toContain(PASSWORD_CANARY);
    expect(res.text).not.toContain('flux-bot');
  });

  it('answers a service too (e.g. another backend plugin on behalf of the form)', async () => {
    const res = await request(server)
      .get(ROUTE)
      .set(
        'Authorization',
        mockCredentials.service.header({
          onBehalfOf: mockCredentials.service('plugin:scaffolder'),
          targetPluginId: 'flux-bootstrap',
        }),
      );
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(4);
    expect(res.text).not.toContain(TOKEN_CANARY);
  });

  it('reports scaffolder.requireScmUserCredentials, and an empty list without integrations', async () => {
    const strict = await startTestBackend({
      features: [
        fluxBootstrapPlugin,
        mockServices.rootConfig.factory({
          data: { scaffolder: { requireScmUserCredentials: true } },
        }),
        catalogServiceMock.factory({ entities: [] }),
      ],
    });
    const res = await request(strict.server)
      .get(ROUTE)
      .set('Authorization', mockCredentials.user.header('user:default/alice'));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [], requireScmUserCredentials: true });
  });

  it("marks the host Backstage's Bitbucket Server auth provider signs users in to (auth.environment's entry), never saying more of it", async () => {
    const CLIENT_SECRET = 'canary-oauth-client-secret-9b2d41';
    const provider = {
      host: '127.0.0.1:7990/bitbucket', // with Bitbucket's context path
      clientId: 'backstage-app',
      clientSecret: CLIENT_SECRET,
    };
    const withSignIn = async (auth: JsonObject) => {
      const b = await startTestBackend({
        features: [
          fluxBootstrapPlugin,
          mockServices.rootConfig.factory({ data: { integrations, auth } }),
          catalogServiceMock.factory({ entities: [] }),
        ],
      });
      const res = await request(b.server)
        .get(ROUTE)
        .set(
          'Authorization',
          mockCredentials.user.header('user:default/alice'),
        );
      expect(res.status).toBe(200);
      expect(res.text).not.toContain(CLIENT_SECRET);
      expect(res.text).not.toContain('backstage-app');
      return (res.body.items as { host: string; userSignIn?: boolean }[])
        .filter(i => i.userSignIn)
        .map(i => i.host);
    };
    expect(
      await withSignIn({
        providers: { bitbucketServer: { development: provider } },
      }),
    ).toEqual(['127.0.0.1:7990']);
    // Another auth environment than the one the frontend asks for: no sign-in there.
    expect(
      await withSignIn({
        environment: 'production',
        providers: { bitbucketServer: { development: provider } },
      }),
    ).toEqual([]);
    expect(
      await withSignIn({
        environment: 'production',
        providers: {
          bitbucketServer: {
            production: { ...provider, host: 'BB.example.com:443' },
          },
        },
      }),
    ).toEqual(['bb.example.com']);
  });
});
