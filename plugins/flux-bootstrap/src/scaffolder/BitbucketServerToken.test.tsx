import { discoveryApiRef, fetchApiRef } from '@backstage/core-plugin-api';
import { TestApiProvider } from '@backstage/frontend-test-utils';
import { renderInTestApp } from '@backstage/test-utils';
import {
  SecretsContextProvider,
  useTemplateSecrets,
} from '@backstage/plugin-scaffolder-react';
import { Stepper } from '@backstage/plugin-scaffolder-react/alpha';
import type { BitbucketServerIntegrationsResponse } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import {
  BitbucketServerToken,
  bitbucketServerTokenValidation,
} from './BitbucketServerToken';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from '../api/FluxBootstrapApi';

const TITLE = 'Bitbucket HTTP access token';
const HOST = '127.0.0.1:7990';
const repoUrl = `${HOST}?project=FLUX&repo=fleet-infra`;

const withToken: BitbucketServerIntegrationsResponse = {
  items: [
    { host: HOST, credentials: 'token' },
    { host: 'bb-none.example.com', credentials: 'none' },
  ],
  requireScmUserCredentials: false,
};
const withoutCredentials: BitbucketServerIntegrationsResponse = {
  items: [{ host: HOST, credentials: 'none' }],
  requireScmUserCredentials: false,
};
const strict: BitbucketServerIntegrationsResponse = {
  ...withToken,
  requireScmUserCredentials: true,
};

/** The plugin's real client over a fake fetch answering `body`, recording the URLs asked for. */
function clientAnswering(body: BitbucketServerIntegrationsResponse | Error) {
  const urls: string[] = [];
  const client = new FluxBootstrapClient({
    discoveryApi: {
      getBaseUrl: async (id: string) => `http://backstage/api/${id}`,
    },
    fetchApi: {
      fetch: async (url: any) => {
        urls.push(String(url));
        if (body instanceof Error) {
          return new Response(
            JSON.stringify({
              error: { name: 'Error', message: body.message },
              response: { statusCode: 503 },
            }),
            {
              status: 503,
              headers: { 'content-type': 'application/json' },
            },
          );
        }
        return new Response(JSON.stringify(body), {
          headers: { 'content-type': 'application/json' },
        });
      },
    },
  });
  return { client, urls };
}

function SecretsProbe() {
  const { secrets } = useTemplateSecrets();
  return <pre data-testid="secrets">{JSON.stringify(secrets)}</pre>;
}

function renderField(
  body: BitbucketServerIntegrationsResponse | Error,
  over: Record<string, unknown> = {},
) {
  const { client, urls } = clientAnswering(body);
  const onChange = jest.fn();
  const props = {
    name: 'token',
    formData: undefined,
    onChange,
    required: false,
    rawErrors: [],
    schema: { title: TITLE, type: 'string', description: 'Your token.' },
    uiSchema: {},
    idSchema: { $id: 'root_token' },
    formContext: { formData: { repoUrl } },
    ...over,
  } as any;
  render(
    <TestApiProvider apis={[[fluxBootstrapApiRef, client]]}>
      <SecretsContextProvider>
        <BitbucketServerToken {...props} />
        <SecretsProbe />
      </SecretsContextProvider>
    </TestApiProvider>,
  );
  return { onChange, urls };
}

const input = () => screen.getByLabelText(TITLE, { exact: false });
const note = () => screen.findByTestId('bitbucket-server-token-note-token');

describe('BitbucketServerToken field', () => {
  it('says the token is optional when the integration of the chosen host has credentials, asking the backend', async () => {
    const { onChange, urls } = renderField(withToken);
    expect(await note()).toHaveTextContent(
      `The integration for ${HOST} has credentials; a token is optional.`,
    );
    expect(urls).toEqual([
      'http://backstage/api/flux-bootstrap/integrations/bitbucket-server',
    ]);
    expect(input()).not.toBeRequired();
    expect(input()).toHaveAttribute('type', 'password');
    expect(screen.getByText('Your token.')).toBeInTheDocument();
    // Optional and untouched: the form's data is left alone.
    expect(onChange).not.toHaveBeenCalled();
  });

  it('keeps the token in the task secrets under the field name and only asterisks in the form', async () => {
    const { onChange } = renderField(withToken);
    await note();
    fireEvent.change(input(), { target: { value: 'canary-user-token-9c1' } });
    expect(onChange).toHaveBeenLastCalledWith(
      '*'.repeat('canary-user-token-9c1'.length),
    );
    await waitFor(() =>
      expect(JSON.parse(screen.getByTestId('secrets').textContent!)).toEqual({
        token: 'canary-user-token-9c1',
      }),
    );
    // Emptied again: no value in the form, an empty secret (the actions then use the integration).
    fireEvent.change(input(), { target: { value: '' } });
    expect(onChange).toHaveBeenLastCalledWith(undefined);
    await waitFor(() =>
      expect(JSON.parse(screen.getByTestId('secrets').textContent!)).toEqual({
        token: '',
      }),
    );
  });

  it('requires the token when the integration of the chosen host has none, and puts the field into the form data so it is validated', async () => {
    const { onChange } = renderField(withoutCredentials);
    expect(await note()).toHaveTextContent(
      `The integration for ${HOST} has no credentials; a token is required.`,
    );
    expect(input()).toBeRequired();
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(onChange).toHaveBeenCalledWith(undefined);
  });

  it('requires the token with scaffolder.requireScmUserCredentials, even where the integration has credentials', async () => {
    renderField(strict);
    expect(await note()).toHaveTextContent(
      `Scaffolder.requireScmUserCredentials is on, so the integration's credentials for ${HOST} are not used; a token is required.`,
    );
    expect(input()).toBeRequired();
  });

  it('reads the host from the field named by ui:options.repoUrlField', async () => {
    renderField(withToken, {
      uiSchema: { 'ui:options': { repoUrlField: 'fleetRepo' } },
      formContext: {
        formData: {
          repoUrl,
          fleetRepo: 'bb-none.example.com?project=X&repo=y',
        },
      },
    });
    expect(await note()).toHaveTextContent(
      'The integration for bb-none.example.com has no credentials; a token is required.',
    );
    expect(input()).toBeRequired();
  });

  it('says nothing until a repository is chosen', async () => {
    const { urls } = renderField(withoutCredentials, {
      formContext: { formData: {} },
    });
    await waitFor(() => expect(urls).toHaveLength(1));
    expect(
      screen.queryByTestId('bitbucket-server-token-note-token'),
    ).toBeNull();
    expect(input()).not.toBeRequired();
  });

  it("says when the backend cannot be asked, with the backend's reason", async () => {
    renderField(new Error('flux-bootstrap backend is restarting'));
    expect(await note()).toHaveTextContent(
      `Could not tell whether the integration for ${HOST} has credentials (flux-bootstrap backend is restarting); enter a token if it has none.`,
    );
    expect(input()).not.toBeRequired();
  });

  it('works in a legacy app without the plugin API, through the core discovery and fetch APIs', async () => {
    const urls: string[] = [];
    render(
      <TestApiProvider
        apis={[
          [
            discoveryApiRef,
            { getBaseUrl: async (id: string) => `http://backstage/api/${id}` },
          ],
          [
            fetchApiRef,
            {
              fetch: async (url: any) => {
                urls.push(String(url));
                return new Response(JSON.stringify(withoutCredentials));
              },
            },
          ],
        ]}
      >
        <SecretsContextProvider>
          <BitbucketServerToken
            {...({
              name: 'token',
              onChange: jest.fn(),
              schema: { title: TITLE },
              uiSchema: {},
              formContext: { formData: { repoUrl } },
            } as any)}
          />
        </SecretsContextProvider>
      </TestApiProvider>,
    );
    expect(await note()).toHaveTextContent('a token is required');
    expect(urls).toEqual([
      'http://backstage/api/flux-bootstrap/integrations/bitbucket-server',
    ]);
  });
});

describe('bitbucketServerTokenValidation', () => {
  async function validate(
    body: BitbucketServerIntegrationsResponse | Error,
    value: string | undefined,
    formData: Record<string, unknown> = { repoUrl },
    uiSchema: Record<string, unknown> = {},
  ) {
    const { client } = clientAnswering(body);
    const errors: string[] = [];
    await bitbucketServerTokenValidation(
      value as string,
      { addError: (m: string) => errors.push(m) } as any,
      {
        apiHolder: {
          get: (ref: { id: string }) =>
            ref.id === fluxBootstrapApiRef.id ? client : undefined,
        } as any,
        formData: formData as any,
        schema: { title: TITLE, type: 'string' },
        uiSchema: uiSchema as any,
      },
    );
    return errors;
  }

  it('refuses an empty token where the integration has no credentials, naming the field and the host', async () => {
    expect(await validate(withoutCredentials, undefined)).toEqual([
      `${TITLE} is required: the integration for ${HOST} has no credentials`,
    ]);
    expect(await validate(withoutCredentials, '')).toHaveLength(1);
  });

  it('refuses an empty token with scaffolder.requireScmUserCredentials', async () => {
    expect(await validate(strict, undefined)).toEqual([
      `${TITLE} is required: scaffolder.requireScmUserCredentials is on, so the integration's credentials for ${HOST} are not used`,
    ]);
  });

  it('accepts a typed token, and no token where the integration has credentials', async () => {
    expect(await validate(withoutCredentials, '*****')).toEqual([]);
    expect(await validate(strict, '*****')).toEqual([]);
    expect(await validate(withToken, undefined)).toEqual([]);
  });

  it('follows ui:options.repoUrlField', async () => {
    expect(
      await validate(
        withToken,
        undefined,
        { repoUrl, other: 'bb-none.example.com?project=X&repo=y' },
        { 'ui:options': { repoUrlField: 'other' } },
      ),
    ).toEqual([
      `${TITLE} is required: the integration for bb-none.example.com has no credentials`,
    ]);
  });

  it('does not block the form when no host is chosen or the backend cannot be asked (the actions name a missing token)', async () => {
    expect(await validate(withoutCredentials, undefined, {})).toEqual([]);
    expect(await validate(new Error('down'), undefined)).toEqual([]);
  });
});

describe('BitbucketServerToken in the scaffolder form', () => {
  // jsdom has no scrolling; the form scrolls to the top on every step.
  beforeAll(() => {
    window.scrollTo = jest.fn() as any;
  });

  const manifest = {
    title: 'Bootstrap',
    steps: [
      {
        title: 'Fleet repository',
        schema: {
          type: 'object',
          required: ['repoUrl'],
          properties: {
            repoUrl: { title: 'Repository', type: 'string' },
            token: {
              title: TITLE,
              type: 'string',
              'ui:field': 'BitbucketServerToken',
            },
          },
        },
      },
    ],
  };

  async function renderForm(
    body: BitbucketServerIntegrationsResponse,
    formProps?: { noHtml5Validate?: boolean },
  ) {
    const { client } = clientAnswering(body);
    await renderInTestApp(
      <TestApiProvider apis={[[fluxBootstrapApiRef, client]]}>
        <SecretsContextProvider>
          <Stepper
            manifest={manifest as any}
            extensions={[
              {
                name: 'BitbucketServerToken',
                component: BitbucketServerToken,
                validation: bitbucketServerTokenValidation,
              },
            ]}
            initialState={{ repoUrl }}
            onCreate={jest.fn()}
            formProps={formProps}
          />
          <SecretsProbe />
        </SecretsContextProvider>
      </TestApiProvider>,
    );
  }

  const review = () => screen.getByRole('button', { name: 'Review' });
  const create = () => screen.findByRole('button', { name: 'Create' });

  it('will not go on while a required token is empty: the browser refuses the required input, like every required field of the form', async () => {
    await renderForm(withoutCredentials);
    await note();
    const form = input().closest('form')!;
    expect(form.checkValidity()).toBe(false);
    fireEvent.click(review());
    await waitFor(() => expect(review()).toBeEnabled());
    expect(screen.queryByRole('button', { name: 'Create' })).toBeNull();

    fireEvent.change(input(), { target: { value: 'canary-user-token-9c1' } });
    expect(form.checkValidity()).toBe(true);
    fireEvent.click(review());
    expect(await create()).toBeInTheDocument();
    // The review page shows asterisks; the token is only in the task secrets.
    expect(
      screen.getByText('*'.repeat('canary-user-token-9c1'.length)),
    ).toBeInTheDocument();
    expect(JSON.parse(screen.getByTestId('secrets').textContent!)).toEqual({
      token: 'canary-user-token-9c1',
    });
    expect(
      document.body.textContent!.replace(
        screen.getByTestId('secrets').textContent!,
        '',
      ),
    ).not.toContain('canary-user-token-9c1');
  });

  it("stops the step with a message naming the field when the app turns the browser's validation off (formProps.noHtml5Validate), though the field was never touched", async () => {
    await renderForm(withoutCredentials, { noHtml5Validate: true });
    await note();
    fireEvent.click(review());
    expect(
      (
        await screen.findAllByText(
          `${TITLE} is required: the integration for ${HOST} has no credentials`,
          { exact: false },
        )
      ).length,
    ).toBeGreaterThan(0);
    expect(screen.queryByRole('button', { name: 'Create' })).toBeNull();

    fireEvent.change(input(), { target: { value: 'canary-user-token-9c1' } });
    fireEvent.click(review());
    expect(await create()).toBeInTheDocument();
  });

  it('goes on to the review without a token when the integration has credentials', async () => {
    await renderForm(withToken);
    await note();
    expect(input().closest('form')!.checkValidity()).toBe(true);
    fireEvent.click(review());
    expect(await create()).toBeInTheDocument();
  });
});
