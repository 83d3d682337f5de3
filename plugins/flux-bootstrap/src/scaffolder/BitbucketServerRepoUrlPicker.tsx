import { ComponentType, FormEvent, useCallback, useRef } from 'react';
import { useApi } from '@backstage/core-plugin-api';
import { scmIntegrationsApiRef } from '@backstage/integration-react';
import type { FieldExtensionComponentProps } from '@backstage/plugin-scaffolder-react';
import { hostOfRepoUrl } from '@flux-bootstrap/plugin-flux-bootstrap-common';
// Material UI on purpose: a form field rendered inside the scaffolder's own Material UI form.
import { Button, FormHelperText } from '@material-ui/core';
import {
  type RequestUserCredentialsOptions,
  useBitbucketUserCredentials,
} from './userCredentials';

/** `ui:options` accepted on top of RepoUrlPicker's own. */
export interface BitbucketServerRepoUrlPickerUiOptions {
  /** Further restrict to these hosts (each must also be a configured Bitbucket Server host). */
  allowedHosts?: string[];
  allowedProjects?: string[];
  allowedRepos?: string[];
  /**
   * As RepoUrlPicker's: the user signs in to Bitbucket and the token goes into the task secrets
   * under `secretsKey` — where the Bitbucket Server auth provider is configured for the host.
   */
  requestUserCredentials?: RequestUserCredentialsOptions;
}

/**
 * The user's Bitbucket sign-in for the chosen host (rendered only with `requestUserCredentials`):
 * what the field says about it, and the retry button.
 */
function UserCredentials(props: {
  host: string | undefined;
  options: RequestUserCredentialsOptions;
}) {
  const { state, retry } = useBitbucketUserCredentials(
    props.host,
    props.options,
  );
  if (state.kind === 'off') return null;
  let text: string;
  if (state.kind === 'asking') {
    text = `Sign in to Bitbucket (${state.host}) in the window Backstage offers: the steps then act as you.`;
  } else if (state.kind === 'signed-in') {
    text = `Signed in to Bitbucket${state.name ? ` as ${state.name}` : ''} (${
      state.host
    }): the steps act as you.`;
  } else {
    text = `Not signed in to Bitbucket (${state.message}): the steps use your token below, or else the integration's credentials.`;
  }
  return (
    <FormHelperText
      data-testid="bitbucket-user-credentials"
      error={state.kind === 'failed'}
      role={state.kind === 'failed' ? 'alert' : 'status'}
    >
      {text}
      {state.kind === 'failed' && (
        <>
          {' '}
          <Button size="small" variant="outlined" onClick={retry}>
            Sign in to Bitbucket
          </Button>
        </>
      )}
    </FormHelperText>
  );
}

/**
 * The hosts offered: every `integrations.bitbucketServer[].host`, intersected with the
 * template's `allowedHosts` when it names any.
 */
export function bitbucketServerHosts(
  configured: string[],
  templateHosts: string[] | undefined,
): string[] {
  if (!templateHosts?.length) return configured;
  const wanted = new Set(templateHosts.map(h => h.toLocaleLowerCase('en-US')));
  return configured.filter(h => wanted.has(h.toLocaleLowerCase('en-US')));
}

/** RepoUrlPicker's value `host?owner=…&repo=…&project=…` with one part replaced (its order kept). */
export function withRepoUrlPart(
  value: string | undefined,
  part: 'project' | 'repo',
  text: string,
): string | undefined {
  if (!value) return undefined;
  let parsed: URL;
  try {
    parsed = new URL(`https://${value}`);
  } catch {
    return undefined;
  }
  if (!parsed.host) return undefined;
  const get = (k: string) => (k === part ? text : parsed.searchParams.get(k));
  const params = new URLSearchParams();
  for (const key of ['owner', 'repo', 'organization', 'workspace', 'project']) {
    const v = get(key);
    if (v) params.set(key, v);
  }
  return `${parsed.host}?${params.toString()}`;
}

/** The text inputs a person types into (not the select's hidden or aria-hidden inputs), in order. */
function textInputs(root: HTMLElement): HTMLInputElement[] {
  return [...root.querySelectorAll('input')].filter(
    i =>
      (i.type === 'text' || i.type === '' || i.type === 'search') &&
      i.getAttribute('aria-hidden') !== 'true' &&
      !i.closest('[aria-hidden="true"]'),
  );
}

/**
 * Scaffolder field `BitbucketServerRepoUrlPicker`: Backstage's RepoUrlPicker, restricted to the
 * Bitbucket Server / Data Center hosts configured in `integrations.bitbucketServer` — which a
 * template cannot list itself, because hosts differ per installation (environment variables).
 * Its value is RepoUrlPicker's `host?project=KEY&repo=name` (`project=~USER` for a personal
 * repository), validated like RepoUrlPicker's.
 *
 * It renders the RepoUrlPicker the form itself has (the form's field registry), so it works in
 * both frontend systems and follows the scaffolder the app runs.
 *
 * Typed text is committed on every keystroke. In its Material UI look, RepoUrlPicker's project
 * and repository inputs are free-solo autocompletes that hand their text to the form only when
 * they lose focus; typing a name and clicking *Next* right away validated the value from before
 * ("Incomplete repository location provided, repo not provided") although the field showed the
 * name. Worse, RepoUrlPicker sends its whole value again whenever the form hands it a new
 * `onChange` (rjsf does on every render), from its own state, which lacks the text not yet
 * committed. So this field writes each `input` event of the project or the repository input into
 * the value at once, in RepoUrlPicker's own format, gives RepoUrlPicker a stable `onChange`, and
 * keeps the typed text over what RepoUrlPicker sends, as long as the input still shows it (a
 * cleared or re-mounted input leaves RepoUrlPicker's value alone). The text inputs are, in order, the
 * project's (unless `allowedProjects` makes it a select) and the repository's (unless
 * `allowedRepos` does).
 *
 * `requestUserCredentials` (RepoUrlPicker's option) is handled here, not by RepoUrlPicker: the
 * user is asked to sign in to Bitbucket only where the Flux bootstrap backend says the Bitbucket
 * Server auth provider is configured for the host, and the field says whether the steps act as
 * the user (see {@link useBitbucketUserCredentials}).
 */
export function BitbucketServerRepoUrlPicker(
  props: FieldExtensionComponentProps<
    string,
    BitbucketServerRepoUrlPickerUiOptions
  >,
) {
  const integrations = useApi(scmIntegrationsApiRef);
  const configured = integrations.bitbucketServer
    .list()
    .map(i => i.config.host);
  const { requestUserCredentials, ...uiOptions } =
    props.uiSchema?.['ui:options'] ?? {};
  const hosts = bitbucketServerHosts(configured, uiOptions.allowedHosts);

  const Inner = (
    props.registry?.fields as Record<string, ComponentType<any>> | undefined
  )?.RepoUrlPicker;
  // The latest value and onChange, for the stable handlers below.
  const latest = useRef({ formData: props.formData, onChange: props.onChange });
  latest.current = { formData: props.formData, onChange: props.onChange };
  const root = useRef<HTMLDivElement>(null);
  const parts: ('project' | 'repo')[] = [];
  if (!uiOptions.allowedProjects?.length) parts.push('project');
  if (!uiOptions.allowedRepos?.length) parts.push('repo');
  const partsKey = parts.join(',');

  // What the person typed into each input (by input event), while the input still shows it.
  const typed = useRef<{ project?: string; repo?: string }>({});

  /** The project and repository inputs, when they are where they are expected. */
  const partInputs = useCallback((): Map<
    'project' | 'repo',
    HTMLInputElement
  > => {
    const inputs = root.current ? textInputs(root.current) : [];
    const order = (partsKey ? partsKey.split(',') : []) as (
      | 'project'
      | 'repo'
    )[];
    if (inputs.length !== order.length) return new Map();
    return new Map(order.map((part, i) => [part, inputs[i]]));
  }, [partsKey]);

  /** `value` with the typed text of each input that still shows it. */
  const withTyped = useCallback(
    (value: string | undefined): string | undefined => {
      let v = value;
      for (const [part, input] of partInputs()) {
        const text = typed.current[part];
        if (text !== undefined && input.value === text) {
          v = withRepoUrlPart(v, part, text) ?? v;
        }
      }
      return v;
    },
    [partInputs],
  );
  // RepoUrlPicker sends its whole value whenever its own state or its onChange changes: give it
  // a stable onChange, and keep the typed text over its possibly older state.
  const innerOnChange = useCallback(
    (value: string | undefined) => latest.current.onChange(withTyped(value)!),
    [withTyped],
  );
  // Each keystroke in the project or repository input goes into the value at once.
  const onInput = useCallback(
    (event: FormEvent<HTMLDivElement>) => {
      const target = event.target as HTMLInputElement;
      for (const [part, input] of partInputs()) {
        if (input !== target) continue;
        typed.current[part] = input.value;
        const next = withRepoUrlPart(
          latest.current.formData,
          part,
          input.value,
        );
        if (next !== undefined && next !== latest.current.formData) {
          latest.current.onChange(next);
        }
      }
    },
    [partInputs],
  );

  if (!hosts.length) {
    return (
      <FormHelperText error>
        No Bitbucket Server host is configured: set integrations.bitbucketServer
        in app-config.yaml (BITBUCKET_HOST)
        {uiOptions.allowedHosts?.length
          ? " among the template's allowedHosts"
          : ''}
        .
      </FormHelperText>
    );
  }
  if (!Inner) {
    return (
      <FormHelperText error>
        The scaffolder's RepoUrlPicker field is not installed in this app.
      </FormHelperText>
    );
  }
  return (
    <div
      ref={root}
      onInput={onInput}
      data-testid="bitbucket-server-repo-url-picker"
    >
      <Inner
        {...props}
        onChange={innerOnChange}
        uiSchema={{
          ...props.uiSchema,
          'ui:options': { ...uiOptions, allowedHosts: hosts },
        }}
      />
      {requestUserCredentials && (
        <UserCredentials
          host={hostOfRepoUrl(props.formData)}
          options={requestUserCredentials}
        />
      )}
    </div>
  );
}
