import { useEffect, useMemo, useState } from 'react';
import { type ApiHolder, useApiHolder } from '@backstage/core-plugin-api';
import { scmAuthApiRef } from '@backstage/integration-react';
import type { ResponseError } from '@backstage/errors';
import {
  type CustomFieldValidator,
  type FieldExtensionComponentProps,
  useTemplateSecrets,
} from '@backstage/plugin-scaffolder-react';
import {
  type BitbucketServerIntegrationsResponse,
  findBitbucketServerIntegration,
  hostOfRepoUrl,
  isBitbucketServerTokenRequired,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
// Material UI on purpose: a form field rendered inside the scaffolder's own Material UI form.
import { FormControl, FormHelperText, TextField } from '@material-ui/core';
import {
  FluxBootstrapApi,
  fluxBootstrapApiFrom,
} from '../api/FluxBootstrapApi';
import { maskedPlaceholder } from './SecretTextarea';

/** `ui:options` of the BitbucketServerToken field. */
export interface BitbucketServerTokenUiOptions {
  /**
   * Name of the sibling field holding the repository (a RepoUrlPicker value,
   * `host?project=KEY&repo=name`) whose host the token is for. Default `repoUrl`.
   */
  repoUrlField?: string;
  /**
   * The task secret the repository field's `requestUserCredentials` fills with the user's own
   * Bitbucket token (e.g. `USER_OAUTH_TOKEN`). When it holds one, the steps act as the user with
   * it (`${{ secrets.USER_OAUTH_TOKEN or secrets.token }}`), so this token is optional — even
   * with `scaffolder.requireScmUserCredentials` — and only Flux's HTTPS access (a token stored
   * in the cluster, which a short-lived sign-in token must not be) still uses it.
   */
  userCredentialsSecretsKey?: string;
}

const DEFAULT_REPO_URL_FIELD = 'repoUrl';

function errorMessage(e: unknown): string {
  return (
    (e as Partial<ResponseError>).body?.error?.message ??
    (e instanceof Error ? e.message : String(e))
  );
}

/** The host the token is for: the one of the sibling repository field, once chosen. */
function chosenHost(
  formData: unknown,
  uiOptions: BitbucketServerTokenUiOptions | undefined,
): string | undefined {
  const field = uiOptions?.repoUrlField ?? DEFAULT_REPO_URL_FIELD;
  const data = formData as Record<string, unknown> | undefined;
  return hostOfRepoUrl(data?.[field]);
}

/** What the field says about the integration of `host` (and whether the token is required). */
export function describeTokenNeed(
  integrations: BitbucketServerIntegrationsResponse,
  host: string,
  options: { signedIn?: boolean } = {},
): { required: boolean; note: string; reason?: string } {
  if (options.signedIn) {
    // Flux over HTTPS (tokenAuth) stores a token in the cluster: never the user's sign-in
    // token (short-lived), so this field's, else the integration's where it may be used.
    const item = findBitbucketServerIntegration(integrations, host);
    const fallback =
      !integrations.requireScmUserCredentials &&
      !!item &&
      item.credentials !== 'none';
    return {
      required: false,
      note: `You are signed in to Bitbucket (${host}): the steps act as you. A token here is only for Flux reading the repository over HTTPS (stored in the cluster; your sign-in expires and is never stored)${
        fallback
          ? ": without one, the integration's credentials are stored."
          : ": with HTTPS, enter one — the integration's credentials are not used."
      }`,
    };
  }
  const needed = (reason: string) => ({
    required: true,
    reason,
    note: `${reason[0].toLocaleUpperCase('en-US')}${reason.slice(
      1,
    )}; a token is required.`,
  });
  if (integrations.requireScmUserCredentials) {
    return needed(
      `scaffolder.requireScmUserCredentials is on, so the integration's credentials for ${host} are not used`,
    );
  }
  const item = findBitbucketServerIntegration(integrations, host);
  if (!item) {
    return needed(`${host} is not in integrations.bitbucketServer`);
  }
  if (item.credentials === 'none') {
    return needed(`the integration for ${host} has no credentials`);
  }
  return {
    required: false,
    note: `The integration for ${host} has credentials; a token is optional.`,
  };
}

/**
 * Scaffolder field `BitbucketServerToken`: the user's Bitbucket HTTP access token for the host
 * of the sibling repository field, required only when the actions cannot use the integration's
 * credentials — the integration for that host has none, or `scaffolder.requireScmUserCredentials`
 * is on. The browser cannot see the integration's credentials, so it asks the Flux bootstrap
 * backend (`GET /api/flux-bootstrap/integrations/bitbucket-server`), which says only which kind
 * each host has.
 *
 * Like `ui:field: Secret`, the value goes into the task's secrets under the field's name — read
 * it as `${{ secrets.<name> }}` — and the form (and so the review page and the stored task
 * parameters) only holds asterisks.
 */
export function BitbucketServerToken(
  props: FieldExtensionComponentProps<string, BitbucketServerTokenUiOptions>,
) {
  const {
    name,
    formData,
    onChange,
    schema,
    uiSchema,
    required,
    disabled,
    rawErrors,
    idSchema,
    formContext,
  } = props;
  const apiHolder = useApiHolder();
  const api = useMemo(() => fluxBootstrapApiFrom(apiHolder), [apiHolder]);
  const [integrations, setIntegrations] =
    useState<BitbucketServerIntegrationsResponse>();
  const [loadError, setLoadError] = useState<string>();
  const { secrets, setSecrets } = useTemplateSecrets();
  const [value, setValue] = useState<string>(secrets[name] ?? '');
  const host = chosenHost(formContext?.formData, uiSchema?.['ui:options']);
  const userKey = uiSchema?.['ui:options']?.userCredentialsSecretsKey;
  const signedIn = !!userKey && !!secrets[userKey];
  const need =
    integrations && host
      ? describeTokenNeed(integrations, host, { signedIn })
      : undefined;
  const isRequired = !!required || !!need?.required;

  useEffect(() => {
    let cancelled = false;
    api.getBitbucketServerIntegrations().then(
      body => !cancelled && setIntegrations(body),
      e => !cancelled && setLoadError(errorMessage(e)),
    );
    return () => {
      cancelled = true;
    };
  }, [api]);

  // Keep the secret when navigating between form pages.
  useEffect(() => {
    if (secrets[name] !== undefined && secrets[name] !== value)
      setValue(secrets[name]);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [secrets, name]);

  // The scaffolder runs a field's validation only for the fields present in the form's data;
  // an untouched field is not. Once the token turns out to be required, put the (empty) field
  // into the data, so "Next" reports it missing instead of letting the run fail later.
  useEffect(() => {
    if (need?.required && formData === undefined) onChange(undefined);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [need?.required]);

  const update = (next: string) => {
    setValue(next);
    setSecrets({ [name]: next });
    onChange(next ? maskedPlaceholder(next) : undefined);
  };

  let note: string | undefined;
  if (host && loadError) {
    note = `Could not tell whether the integration for ${host} has credentials (${loadError}); enter a token if it has none.`;
  } else if (need) {
    note = need.note;
  }

  const id = idSchema?.$id ?? name;
  return (
    <FormControl
      fullWidth
      margin="normal"
      required={isRequired}
      error={(rawErrors?.length ?? 0) > 0}
    >
      <TextField
        id={id}
        label={schema.title ?? name}
        type="password"
        autoComplete="off"
        required={isRequired}
        disabled={disabled}
        error={(rawErrors?.length ?? 0) > 0}
        value={value}
        onChange={e => update(e.target.value)}
        inputProps={{ 'data-testid': `bitbucket-server-token-${name}` }}
      />
      {note && (
        <FormHelperText data-testid={`bitbucket-server-token-note-${name}`}>
          {note}
        </FormHelperText>
      )}
      {schema.description && (
        <FormHelperText>{schema.description}</FormHelperText>
      )}
    </FormControl>
  );
}

/**
 * Whether the user holds a Bitbucket sign-in for `host` (asked without showing a sign-in: the
 * repository field asks for it). The validation cannot see the task secrets, so it asks ScmAuth.
 */
async function isSignedIn(
  apiHolder: ApiHolder,
  host: string,
): Promise<boolean> {
  try {
    const res = await apiHolder
      .get(scmAuthApiRef)
      ?.getCredentials({ url: `https://${host}`, optional: true });
    return !!res?.token;
  } catch {
    return false;
  }
}

/** The backend's answer, or undefined when it cannot be had (the actions then say what is missing). */
async function integrationsOrUndefined(
  api: Pick<FluxBootstrapApi, 'getBitbucketServerIntegrations'>,
): Promise<BitbucketServerIntegrationsResponse | undefined> {
  try {
    return await api.getBitbucketServerIntegrations();
  } catch {
    return undefined;
  }
}

/**
 * Validation of `ui:field: BitbucketServerToken`: an empty token is refused, naming the field,
 * when the chosen host's integration has no credentials or `scaffolder.requireScmUserCredentials`
 * is on. When the backend cannot be asked, the field is not blocked: the actions refuse a
 * missing token themselves, naming it, before sending any request.
 * @public
 */
export const bitbucketServerTokenValidation: CustomFieldValidator<
  string,
  BitbucketServerTokenUiOptions
> = async (value, validation, context) => {
  if (value) return;
  const host = chosenHost(context.formData, context.uiSchema?.['ui:options']);
  if (!host) return;
  const integrations = await integrationsOrUndefined(
    fluxBootstrapApiFrom(context.apiHolder),
  );
  if (!integrations || !isBitbucketServerTokenRequired(integrations, host)) {
    return;
  }
  if (
    context.uiSchema?.['ui:options']?.userCredentialsSecretsKey &&
    findBitbucketServerIntegration(integrations, host)?.userSignIn &&
    (await isSignedIn(context.apiHolder, host))
  ) {
    return; // the steps act as the signed-in user
  }
  const title =
    typeof context.schema?.title === 'string' ? context.schema.title : 'token';
  validation.addError(
    `${title} is required: ${describeTokenNeed(integrations, host).reason}`,
  );
};
