import { discoveryApiRef, fetchApiRef } from '@backstage/core-plugin-api';
import { TestApiProvider } from '@backstage/frontend-test-utils';
import { scmIntegrationsApiRef } from '@backstage/integration-react';
import {
  SecretsContextProvider,
  useTemplateSecrets,
} from '@backstage/plugin-scaffolder-react';
import { ScmIntegrations } from '@backstage/integration';
import { ConfigReader } from '@backstage/config';
import {
  fireEvent,
  render,
  screen,
  waitFor,
  within,
} from '@testing-library/react';
import { useEffect, useState } from 'react';
import {
  BitbucketServerRepoUrlPicker,
  bitbucketServerHosts,
  withRepoUrlPart,
} from './BitbucketServerRepoUrlPicker';
import {
  ClusterPicker,
  describeClusterState,
  loadPickerClusters,
} from './ClusterPicker';
import { SecretTextarea } from './SecretTextarea';
import { fluxClusterPickerValidation } from './schemas';
import {
  FluxBootstrapClient,
  fluxBootstrapApiRef,
} from '../api/FluxBootstrapApi';

/** The plugin's real API client over a fake fetch, recording the URLs asked for. */
function clientAnswering(response: () => Response) {
  const urls: string[] = [];
  const client = new FluxBootstrapClient({
    discoveryApi: {
      getBaseUrl: async (id: string) => `http://backstage/api/${id}`,
    },
    fetchApi: {
      fetch: async (url: any) => {
        urls.push(String(url));
        return response();
      },
    },
  });
  return { client, urls };
}

const fieldProps = (over: Record<string, unknown> = {}) =>
  ({
    name: 'field',
    formData: undefined,
    onChange: jest.fn(),
    required: true,
    rawErrors: [],
    schema: { title: 'Field', type: 'string' },
    uiSchema: {},
    idSchema: { $id: 'root_field' },
    ...over,
  } as any);

describe('ClusterPicker', () => {
  const listing = {
    items: [
      { name: 'prod-eu', title: 'Production EU', status: { state: 'ready' } },
      {
        name: 'staging',
        status: { state: 'not-installed', reason: 'no CRDs' },
      },
      { name: 'lab' },
    ],
  };

  it('asks the status backend for the clusters with their state', async () => {
    const { client, urls } = clientAnswering(
      () => new Response(JSON.stringify(listing)),
    );
    const clusters = await loadPickerClusters(client);
    expect(urls).toEqual([
      'http://backstage/api/flux-bootstrap/clusters?state=true',
    ]);
    expect(clusters.map(describeClusterState)).toEqual([
      'Flux bootstrapped and ready',
      'Flux not installed',
      'bootstrap state unknown',
    ]);
  });

  it('names the backend error when the list cannot be read (e.g. no permission)', async () => {
    const { client } = clientAnswering(
      () =>
        new Response(
          JSON.stringify({
            error: {
              name: 'NotAllowedError',
              message: 'requires the permission "flux.bootstrap.cluster.read"',
            },
            response: { statusCode: 403 },
          }),
          {
            status: 403,
            statusText: 'Forbidden',
            headers: { 'content-type': 'application/json' },
          },
        ),
    );
    await expect(loadPickerClusters(client)).rejects.toThrow(
      'Could not list clusters: requires the permission "flux.bootstrap.cluster.read"',
    );
  });

  it('offers the configured clusters (filtered by allowedClusters) and reports the chosen name', async () => {
    const onChange = jest.fn();
    render(
      <TestApiProvider
        apis={[
          [
            fluxBootstrapApiRef,
            clientAnswering(() => new Response(JSON.stringify(listing))).client,
          ],
        ]}
      >
        <ClusterPicker
          {...fieldProps({
            onChange,
            schema: { title: 'Cluster', type: 'string' },
            uiSchema: {
              'ui:options': { allowedClusters: ['prod-eu', 'staging'] },
            },
          })}
        />
      </TestApiProvider>,
    );
    fireEvent.mouseDown(
      within(screen.getByTestId('flux-cluster-picker')).getByRole('button'),
    );
    const option = await screen.findByTestId('cluster-option-staging');
    expect(option).toHaveTextContent('Flux not installed');
    expect(screen.getByTestId('cluster-option-prod-eu')).toHaveTextContent(
      'Production EU (prod-eu)',
    );
    expect(screen.queryByTestId('cluster-option-lab')).toBeNull();
    fireEvent.click(option);
    expect(onChange).toHaveBeenCalledWith('staging');
  });

  it('with ui:options.multiple picks several clusters (string[]), showing states and Kubernetes versions', async () => {
    const onChange = jest.fn();
    const withVersions = {
      items: [
        {
          name: 'prod-eu',
          title: 'Production EU',
          status: { state: 'ready', kubernetesVersion: 'v1.34.2' },
        },
        { name: 'staging', status: { state: 'not-installed' } },
        { name: 'lab', status: { state: 'unreachable' } },
      ],
    };
    const client = clientAnswering(
      () => new Response(JSON.stringify(withVersions)),
    ).client;
    const picker = (formData: string[] | undefined) => (
      <TestApiProvider apis={[[fluxBootstrapApiRef, client]]}>
        <ClusterPicker
          {...fieldProps({
            formData,
            onChange,
            schema: {
              title: 'Clusters',
              type: 'array',
              items: { type: 'string' },
            },
            uiSchema: { 'ui:options': { multiple: true } },
          })}
        />
      </TestApiProvider>
    );
    const { rerender } = render(picker(undefined));
    fireEvent.mouseDown(
      within(screen.getByTestId('flux-cluster-picker')).getByRole('button'),
    );
    const prod = await screen.findByTestId('cluster-option-prod-eu');
    expect(prod).toHaveTextContent(
      'Flux bootstrapped and ready · Kubernetes v1.34.2',
    );
    fireEvent.click(prod);
    expect(onChange).toHaveBeenLastCalledWith(['prod-eu']);
    rerender(picker(['prod-eu']));
    expect(
      within(screen.getByTestId('cluster-option-prod-eu')).getByRole(
        'checkbox',
        { name: 'Select Production EU (prod-eu)' },
      ),
    ).toBeChecked();
    fireEvent.click(screen.getByTestId('cluster-option-staging'));
    expect(onChange).toHaveBeenLastCalledWith(['prod-eu', 'staging']);
    rerender(picker(['prod-eu', 'staging']));
    expect(
      screen.getByText(
        '2 clusters: prod-eu (Flux bootstrapped and ready · Kubernetes v1.34.2); staging (Flux not installed)',
      ),
    ).toBeInTheDocument();
  });

  it("marks the clusters whose Kubernetes the chosen Flux version does not support, asking for the form's fluxVersion", async () => {
    const judged = {
      items: [
        {
          name: 'old',
          status: { state: 'not-installed', kubernetesVersion: 'v1.20.2' },
          kubernetesSupport: {
            fluxVersion: 'v2.9.4',
            level: 'unsupported',
            range: '>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
            message: 'Kubernetes v1.20.2 with Flux v2.9.4: not supported',
          },
        },
        {
          name: 'edge',
          status: { state: 'ready', kubernetesVersion: 'v1.33.1' },
          kubernetesSupport: {
            fluxVersion: 'v2.9.4',
            level: 'untested',
            range: '>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
            message: 'Kubernetes v1.33.1 with Flux v2.9.4: accepted',
          },
        },
        {
          name: 'new',
          status: { state: 'ready', kubernetesVersion: 'v1.34.2' },
          kubernetesSupport: {
            fluxVersion: 'v2.9.4',
            level: 'supported',
            range: '>=1.33.0',
            message: 'supported',
          },
        },
      ],
    };
    const { client, urls } = clientAnswering(
      () => new Response(JSON.stringify(judged)),
    );
    render(
      <TestApiProvider apis={[[fluxBootstrapApiRef, client]]}>
        <ClusterPicker
          {...fieldProps({
            formData: 'old',
            schema: { title: 'Cluster', type: 'string' },
            formContext: { formData: { fluxVersion: 'v2.9.4' } },
          })}
        />
      </TestApiProvider>,
    );
    expect(
      await screen.findByText(
        'old: Flux not installed · Kubernetes v1.20.2 — not supported by Flux v2.9.4 (needs >=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36))',
      ),
    ).toHaveClass('Mui-error');
    expect(urls).toEqual([
      'http://backstage/api/flux-bootstrap/clusters?state=true&fluxVersion=v2.9.4',
    ]);
    fireEvent.mouseDown(
      within(screen.getByTestId('flux-cluster-picker')).getByRole('button'),
    );
    expect(await screen.findByTestId('cluster-option-old')).toHaveAttribute(
      'data-kubernetes-support',
      'unsupported',
    );
    expect(screen.getByTestId('cluster-option-edge')).toHaveTextContent(
      'Flux bootstrapped and ready · Kubernetes v1.33.1 — untested with Flux v2.9.4 (supported >=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36))',
    );
    expect(screen.getByTestId('cluster-option-new')).toHaveTextContent(
      /^newFlux bootstrapped and ready · Kubernetes v1\.34\.2$/,
    );
  });

  it('validates each picked name and refuses a name picked twice', () => {
    const errors: string[] = [];
    const validation = { addError: (e: string) => errors.push(e) } as any;
    fluxClusterPickerValidation(
      ['prod-eu', 'bad name', 'prod-eu'],
      validation,
      {} as any,
    );
    expect(errors).toEqual([
      '"bad name" must be a configured cluster name',
      'names a cluster twice',
    ]);
  });
});

it("ClusterPicker reads the status backend through the core APIs when the app lacks the plugin's API (a legacy app with only the field extensions)", async () => {
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
              return new Response(
                JSON.stringify({
                  items: [{ name: 'prod-eu', status: { state: 'ready' } }],
                }),
              );
            },
          },
        ],
      ]}
    >
      <ClusterPicker {...fieldProps({ formData: 'prod-eu' })} />
    </TestApiProvider>,
  );
  await screen.findByText('prod-eu: Flux bootstrapped and ready');
  expect(urls).toEqual([
    'http://backstage/api/flux-bootstrap/clusters?state=true',
  ]);
});

describe('SecretTextarea', () => {
  function SecretsProbe() {
    const { secrets } = useTemplateSecrets();
    return <pre data-testid="secrets">{JSON.stringify(secrets)}</pre>;
  }

  it('keeps a multi-line value in the task secrets and only asterisks in the form', async () => {
    const onChange = jest.fn();
    render(
      <SecretsContextProvider>
        <SecretTextarea
          {...fieldProps({
            name: 'sshPrivateKey',
            onChange,
            schema: { title: 'SSH private key' },
          })}
        />
        <SecretsProbe />
      </SecretsContextProvider>,
    );
    const key =
      '-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n';
    fireEvent.change(screen.getByTestId('secret-textarea-sshPrivateKey'), {
      target: { value: key },
    });
    expect(onChange).toHaveBeenLastCalledWith('*'.repeat(key.length));
    await waitFor(() =>
      expect(JSON.parse(screen.getByTestId('secrets').textContent!)).toEqual({
        sshPrivateKey: key,
      }),
    );
  });
});

describe('BitbucketServerRepoUrlPicker', () => {
  it('offers the Bitbucket Server hosts, narrowed by the template', () => {
    expect(
      bitbucketServerHosts(
        ['bb.example.com', 'bb2.example.com:7990'],
        undefined,
      ),
    ).toEqual(['bb.example.com', 'bb2.example.com:7990']);
    expect(
      bitbucketServerHosts(
        ['bb.example.com', 'bb2.example.com:7990'],
        ['BB2.example.com:7990'],
      ),
    ).toEqual(['bb2.example.com:7990']);
  });

  it("renders the form's own RepoUrlPicker with allowedHosts from integrations.bitbucketServer", () => {
    const inner = jest.fn(() => <div data-testid="repo-url-picker" />);
    const integrations = ScmIntegrations.fromConfig(
      new ConfigReader({
        integrations: {
          bitbucketServer: [{ host: 'bb.example.com' }],
          github: [{ host: 'github.com' }],
        },
      }),
    );
    render(
      <TestApiProvider apis={[[scmIntegrationsApiRef, integrations]]}>
        <BitbucketServerRepoUrlPicker
          {...fieldProps({
            uiSchema: { 'ui:options': { allowedProjects: ['PLAT'] } },
            // RJSF hands every field the form's registry, the scaffolder's fields included.
            registry: { fields: { RepoUrlPicker: inner } },
          })}
        />
      </TestApiProvider>,
    );
    expect(screen.getByTestId('repo-url-picker')).toBeInTheDocument();
    expect((inner.mock.calls[0] as any)[0].uiSchema['ui:options']).toEqual({
      allowedProjects: ['PLAT'],
      allowedHosts: ['bb.example.com'],
    });
  });

  /**
   * An input like Material UI's Autocomplete: it shows its initial text only after its own
   * effect ran (so its parent's effects of the same render still see it empty), keeps what is
   * typed, and commits it on blur.
   */
  function LazyInput(p: {
    label: string;
    initial: string;
    onCommit: (text: string) => void;
  }) {
    const [text, setText] = useState('');
    const { initial } = p;
    useEffect(() => setText(initial), [initial]);
    return (
      <input
        aria-label={p.label}
        aria-autocomplete="list"
        value={text}
        onChange={e => setText(e.target.value)}
        onBlur={() => p.onCommit(text)}
      />
    );
  }

  /**
   * Behaves like the scaffolder's RepoUrlPicker in its Material UI look: its state starts from
   * the first value; it sends its whole value from that state whenever the state or its
   * onChange changes (an effect), and the inputs commit typed text only on blur.
   */
  function FakeRepoUrlPicker(p: {
    formData?: string;
    onChange: Function;
    uiSchema?: { 'ui:options'?: { allowedProjects?: string[] } };
  }) {
    const [state, setState] = useState(() => p.formData);
    const { onChange } = p;
    useEffect(() => {
      onChange(state);
    }, [state, onChange]);
    const url = new URL(`https://${state ?? ''}`);
    const commit = (key: string) => (text: string) => {
      url.searchParams.set(key, text);
      setState(`${url.host}?${url.searchParams.toString()}`);
    };
    const projects = p.uiSchema?.['ui:options']?.allowedProjects;
    return (
      <>
        <input aria-hidden="true" tabIndex={-1} readOnly value={url.host} />
        {projects ? (
          <select aria-label="Project" defaultValue={projects[0]}>
            {projects.map(k => (
              <option key={k}>{k}</option>
            ))}
          </select>
        ) : (
          <LazyInput
            label="Projects"
            initial={url.searchParams.get('project') ?? ''}
            onCommit={commit('project')}
          />
        )}
        <LazyInput
          label="Repository"
          initial={url.searchParams.get('repo') ?? ''}
          onCommit={commit('repo')}
        />
      </>
    );
  }

  /** The form around the field: a new onChange on every render, as rjsf hands fields. */
  function FormLike(p: {
    initial: string;
    seen: string[];
    uiOptions?: Record<string, unknown>;
  }) {
    const [value, setValue] = useState<string | undefined>(p.initial);
    p.seen.push(String(value));
    return (
      <BitbucketServerRepoUrlPicker
        {...fieldProps({
          formData: value,
          onChange: (v: string) => setValue(v),
          uiSchema: { 'ui:options': p.uiOptions ?? {} },
          registry: { fields: { RepoUrlPicker: FakeRepoUrlPicker } },
        })}
      />
    );
  }

  const bbIntegrations = () =>
    ScmIntegrations.fromConfig(
      new ConfigReader({
        integrations: { bitbucketServer: [{ host: 'bb.example.com' }] },
      }),
    );

  const typeInto = (name: string, text: string) => {
    const input = screen.getByRole('textbox', { name });
    for (let i = 1; i <= text.length; i++)
      fireEvent.input(input, { target: { value: text.slice(0, i) } });
  };

  it('has the typed project and repository in its value at once, without a blur (issue 21)', () => {
    const seen: string[] = [];
    render(
      <TestApiProvider apis={[[scmIntegrationsApiRef, bbIntegrations()]]}>
        <FormLike initial="bb.example.com" seen={seen} />
      </TestApiProvider>,
    );
    typeInto('Projects', 'FLEET');
    // Into the repository field: the project input loses focus and commits, as it does.
    fireEvent.blur(screen.getByRole('textbox', { name: 'Projects' }));
    typeInto('Repository', 'fleet-infra');
    // No blur of the repository input: the value already holds what it shows.
    expect(seen[seen.length - 1]).toBe(
      'bb.example.com?repo=fleet-infra&project=FLEET',
    );
  });

  it('keeps the value when the step is shown again (inputs filled after mount)', () => {
    const seen: string[] = [];
    render(
      <TestApiProvider apis={[[scmIntegrationsApiRef, bbIntegrations()]]}>
        <FormLike
          initial="bb.example.com?repo=fleet-infra&project=FLEET"
          seen={seen}
        />
      </TestApiProvider>,
    );
    expect(screen.getByRole('textbox', { name: 'Repository' })).toHaveValue(
      'fleet-infra',
    );
    expect(seen[seen.length - 1]).toBe(
      'bb.example.com?repo=fleet-infra&project=FLEET',
    );
  });

  it('with allowedProjects (a select), the only text input is the repository', () => {
    const seen: string[] = [];
    render(
      <TestApiProvider apis={[[scmIntegrationsApiRef, bbIntegrations()]]}>
        <FormLike
          initial="bb.example.com?project=PLAT"
          seen={seen}
          uiOptions={{ allowedProjects: ['PLAT'] }}
        />
      </TestApiProvider>,
    );
    typeInto('Repository', 'apps');
    expect(seen[seen.length - 1]).toBe('bb.example.com?repo=apps&project=PLAT');
  });

  it("keeps RepoUrlPicker's value format when one part changes", () => {
    expect(withRepoUrlPart('bb.example.com', 'repo', 'r')).toBe(
      'bb.example.com?repo=r',
    );
    expect(
      withRepoUrlPart('bb.example.com:7990?repo=a&project=P', 'repo', ''),
    ).toBe('bb.example.com:7990?project=P');
    expect(withRepoUrlPart(undefined, 'repo', 'r')).toBeUndefined();
  });

  it('says how to configure a host when there is none', () => {
    render(
      <TestApiProvider
        apis={[
          [
            scmIntegrationsApiRef,
            ScmIntegrations.fromConfig(new ConfigReader({})),
          ],
        ]}
      >
        <BitbucketServerRepoUrlPicker
          {...fieldProps({
            registry: { fields: { RepoUrlPicker: () => null } },
          })}
        />
      </TestApiProvider>,
    );
    expect(
      screen.getByText(/No Bitbucket Server host is configured/),
    ).toBeInTheDocument();
  });

  it('says so when the form has no RepoUrlPicker', () => {
    render(
      <TestApiProvider
        apis={[
          [
            scmIntegrationsApiRef,
            ScmIntegrations.fromConfig(
              new ConfigReader({
                integrations: { bitbucketServer: [{ host: 'bb.example.com' }] },
              }),
            ),
          ],
        ]}
      >
        <BitbucketServerRepoUrlPicker
          {...fieldProps({ registry: { fields: {} } })}
        />
      </TestApiProvider>,
    );
    expect(
      screen.getByText(/RepoUrlPicker field is not installed/),
    ).toBeInTheDocument();
  });
});
