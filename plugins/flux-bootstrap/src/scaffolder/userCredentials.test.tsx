import { bitbucketServerAuthApiRef } from '@backstage/core-plugin-api';
import { TestApiProvider } from '@backstage/frontend-test-utils';
import { ScmIntegrations } from '@backstage/integration';
import {
  scmAuthApiRef,
  scmIntegrationsApiRef,
  type ScmAuthTokenOptions,
} from '@backstage/integration-react';
import { ConfigReader } from '@backstage/config';
import {
  SecretsContextProvider,
  useTemplateSecrets,
} from '@backstage/plugin-scaffolder-react';
import type { BitbucketServerIntegrationsResponse } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { BitbucketServerRepoUrlPicker } from './BitbucketServerRepoUrlPicker';
import {
  BitbucketServerToken,
  bitbucketServerTokenValidation,
} from './BitbucketServerToken';
import { fluxBootstrapApiRef } from '../api/FluxBootstrapApi';

const HOST = '127.0.0.1:7990';
const KEY = 'USER_OAUTH_TOKEN';
const USER_TOKEN = 'user-oauth-token-canary-3e9f';
const REQUEST = {
  secretsKey: KEY,
  additionalScopes: { bitbucket: ['REPO_ADMIN', 'PROJECT_ADMIN'] },
};

const integrations = (
  userSignIn: boolean,
  requireScmUserCredentials = false,
): BitbucketServerIntegrationsResponse => ({
  items: [
    { host: HOST, credentials: 'token', ...(userSignIn ? { userSignIn } : {}) },
  ],
  requireScmUserCredentials,
});

/** ScmAuth as the app has it, answering with `answer` and recording what it was asked. */
function fakeScmAuth(answer: () => Promise<string>) {
  const calls: ScmAuthTokenOptions[] = [];
  return {
    calls,
    api: {
      getCredentials: async (o: ScmAuthTokenOptions) => {
        calls.push(o);
        const token = await answer();
        return { token, headers: { Authorization: `Bearer ${token}` } };
      },
    },
  };
}

function SecretsProbe() {
  const { secrets } = useTemplateSecrets();
  return <pre data-testid="secrets">{JSON.stringify(secrets)}</pre>;
}
const secrets = () =>
  JSON.parse(screen.getByTestId('secrets').textContent ?? '{}');

function renderPicker(opts: {
  body: BitbucketServerIntegrationsResponse;
  scmAuth: ReturnType<typeof fakeScmAuth>;
  uiOptions?: Record<string, unknown>;
  formData?: string;
}) {
  const inner = jest.fn(() => <div data-testid="repo-url-picker" />);
  const backendCalls: string[] = [];
  render(
    <TestApiProvider
      apis={[
        [
          scmIntegrationsApiRef,
          ScmIntegrations.fromConfig(
            new ConfigReader({
              integrations: { bitbucketServer: [{ host: HOST }] },
            }),
          ),
        ],
        [
          fluxBootstrapApiRef,
          {
            getBitbucketServerIntegrations: async () => {
              backendCalls.push('integrations');
              return opts.body;
            },
          } as any,
        ],
        [scmAuthApiRef, opts.scmAuth.api],
        [
          bitbucketServerAuthApiRef,
          {
            getProfile: async () => ({ displayName: 'Alice Example' }),
          } as any,
        ],
      ]}
    >
      <SecretsContextProvider>
        <BitbucketServerRepoUrlPicker
          {...({
            name: 'repoUrl',
            formData:
              'formData' in opts
                ? opts.formData
                : `${HOST}?project=FLEET&repo=fleet-infra`,
            onChange: jest.fn(),
            required: true,
            rawErrors: [],
            schema: { title: 'Repository', type: 'string' },
            uiSchema: {
              'ui:options': {
                requestUserCredentials: REQUEST,
                ...opts.uiOptions,
              },
            },
            idSchema: { $id: 'root_repoUrl' },
            registry: { fields: { RepoUrlPicker: inner } },
          } as any)}
        />
        <SecretsProbe />
      </SecretsContextProvider>
    </TestApiProvider>,
  );
  return { inner, backendCalls };
}

describe("BitbucketServerRepoUrlPicker: the user's own Bitbucket credentials", () => {
  it('asks ScmAuth for the chosen host with the scopes the steps need, keeps the token in the task secrets, and says who the steps act as', async () => {
    const scmAuth = fakeScmAuth(async () => USER_TOKEN);
    const { inner } = renderPicker({ body: integrations(true), scmAuth });
    expect(
      await screen.findByText(
        `Signed in to Bitbucket as Alice Example (${HOST}): the steps act as you.`,
      ),
    ).toBeInTheDocument();
    expect(scmAuth.calls).toEqual([
      {
        url: `https://${HOST}`,
        additionalScope: {
          repoWrite: true,
          customScopes: { bitbucket: ['REPO_ADMIN', 'PROJECT_ADMIN'] },
        },
      },
    ]);
    expect(secrets()).toEqual({ [KEY]: USER_TOKEN });
    // RepoUrlPicker does not ask a second time: the option is handled here.
    const innerOptions = (inner.mock.calls.at(-1) as any)[0].uiSchema[
      'ui:options'
    ];
    expect(innerOptions).toEqual({ allowedHosts: [HOST] });
    // The field shows no part of the token.
    expect(
      screen.getByTestId('bitbucket-server-repo-url-picker').textContent,
    ).not.toContain(USER_TOKEN.slice(0, 12));
  });

  it('takes additionalScopes.bitbucketServer as well', async () => {
    const scmAuth = fakeScmAuth(async () => USER_TOKEN);
    renderPicker({
      body: integrations(true),
      scmAuth,
      uiOptions: {
        requestUserCredentials: {
          secretsKey: KEY,
          additionalScopes: { bitbucketServer: ['PROJECT_ADMIN'] },
        },
      },
    });
    await waitFor(() => expect(secrets()).toEqual({ [KEY]: USER_TOKEN }));
    expect(scmAuth.calls[0].additionalScope?.customScopes).toEqual({
      bitbucket: ['PROJECT_ADMIN'],
    });
  });

  it('asks nobody to sign in where the backend has no Bitbucket Server auth provider for the host (the steps fall back)', async () => {
    const scmAuth = fakeScmAuth(async () => USER_TOKEN);
    const { backendCalls } = renderPicker({
      body: integrations(false),
      scmAuth,
    });
    await waitFor(() => expect(backendCalls).toEqual(['integrations']));
    await new Promise(r => setTimeout(r, 50));
    expect(scmAuth.calls).toEqual([]);
    expect(secrets()).toEqual({});
    expect(screen.queryByTestId('bitbucket-user-credentials')).toBeNull();
  });

  it('asks nothing without requestUserCredentials, or before a host is chosen', async () => {
    const scmAuth = fakeScmAuth(async () => USER_TOKEN);
    const { backendCalls } = renderPicker({
      body: integrations(true),
      scmAuth,
      uiOptions: { requestUserCredentials: undefined },
    });
    await new Promise(r => setTimeout(r, 50));
    expect(backendCalls).toEqual([]);
    expect(scmAuth.calls).toEqual([]);
  });

  it('says when the sign-in was refused, keeps no token, and signs in again on request', async () => {
    let refuse = true;
    const scmAuth = fakeScmAuth(async () => {
      if (refuse) throw new Error('Login failed, rejected by user');
      return USER_TOKEN;
    });
    renderPicker({ body: integrations(true), scmAuth });
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(
      "Not signed in to Bitbucket (Login failed, rejected by user): the steps use your token below, or else the integration's credentials.",
    );
    expect(secrets()).toEqual({});
    refuse = false;
    fireEvent.click(
      screen.getByRole('button', { name: 'Sign in to Bitbucket' }),
    );
    expect(
      await screen.findByText(/^Signed in to Bitbucket as Alice Example/),
    ).toBeInTheDocument();
    expect(scmAuth.calls).toHaveLength(2);
    expect(secrets()).toEqual({ [KEY]: USER_TOKEN });
  });
});

describe('BitbucketServerToken with the user signed in to Bitbucket', () => {
  const TITLE = 'Bitbucket HTTP access token';

  function renderToken(body: BitbucketServerIntegrationsResponse) {
    const scmAuth = fakeScmAuth(async () => USER_TOKEN);
    render(
      <TestApiProvider
        apis={[
          [
            fluxBootstrapApiRef,
            { getBitbucketServerIntegrations: async () => body } as any,
          ],
          [scmAuthApiRef, scmAuth.api],
        ]}
      >
        <SecretsContextProvider initialSecrets={{ [KEY]: USER_TOKEN }}>
          <BitbucketServerToken
            {...({
              name: 'token',
              onChange: jest.fn(),
              required: false,
              rawErrors: [],
              schema: { title: TITLE, type: 'string' },
              uiSchema: {
                'ui:options': { userCredentialsSecretsKey: KEY },
              },
              idSchema: { $id: 'root_token' },
              formContext: {
                formData: { repoUrl: `${HOST}?project=FLEET&repo=x` },
              },
            } as any)}
          />
        </SecretsContextProvider>
      </TestApiProvider>,
    );
  }

  it('is optional, even with scaffolder.requireScmUserCredentials, and says what it is still for', async () => {
    renderToken(integrations(true, true));
    expect(
      await screen.findByTestId('bitbucket-server-token-note-token'),
    ).toHaveTextContent(
      `You are signed in to Bitbucket (${HOST}): the steps act as you. A token here is only for Flux reading the repository over HTTPS (stored in the cluster; your sign-in expires and is never stored): with HTTPS, enter one — the integration's credentials are not used.`,
    );
    expect(screen.getByLabelText(TITLE)).not.toBeRequired();
  });

  it("says that Flux over HTTPS stores the integration's credentials, never the sign-in, where they may be used", async () => {
    renderToken(integrations(true, false));
    expect(
      await screen.findByTestId('bitbucket-server-token-note-token'),
    ).toHaveTextContent(
      `You are signed in to Bitbucket (${HOST}): the steps act as you. A token here is only for Flux reading the repository over HTTPS (stored in the cluster; your sign-in expires and is never stored): without one, the integration's credentials are stored.`,
    );
  });

  async function validate(
    body: BitbucketServerIntegrationsResponse,
    signedInToken: string,
    uiOptions: Record<string, unknown> = { userCredentialsSecretsKey: KEY },
  ) {
    const scmAuth = fakeScmAuth(async () => signedInToken);
    const errors: string[] = [];
    await bitbucketServerTokenValidation(
      undefined as unknown as string,
      { addError: (m: string) => errors.push(m) } as any,
      {
        apiHolder: {
          get: (ref: { id: string }) => {
            if (ref.id === fluxBootstrapApiRef.id)
              return { getBitbucketServerIntegrations: async () => body };
            if (ref.id === scmAuthApiRef.id) return scmAuth.api;
            return undefined;
          },
        } as any,
        formData: { repoUrl: `${HOST}?project=FLEET&repo=x` },
        schema: { title: TITLE, type: 'string' },
        uiSchema: { 'ui:options': uiOptions } as any,
      },
    );
    return { errors, calls: scmAuth.calls };
  }

  it('validation lets an empty token through under requireScmUserCredentials when the user holds a Bitbucket sign-in (asked without a prompt)', async () => {
    const ok = await validate(integrations(true, true), USER_TOKEN);
    expect(ok.errors).toEqual([]);
    expect(ok.calls).toEqual([{ url: `https://${HOST}`, optional: true }]);
    // No sign-in held: the token is required as before.
    expect((await validate(integrations(true, true), '')).errors).toEqual([
      `${TITLE} is required: scaffolder.requireScmUserCredentials is on, so the integration's credentials for ${HOST} are not used`,
    ]);
    // The template does not pass the user's token (no userCredentialsSecretsKey), or the
    // host has no sign-in: a sign-in the steps do not use changes nothing.
    expect(
      (await validate(integrations(true, true), USER_TOKEN, {})).errors,
    ).toHaveLength(1);
    expect(
      (await validate(integrations(false, true), USER_TOKEN)).errors,
    ).toHaveLength(1);
  });
});
