import { ComponentType, useEffect, useState } from 'react';
import { Progress } from '@backstage/core-components';
import { useApi } from '@backstage/frontend-plugin-api';
import { scmIntegrationsApiRef } from '@backstage/integration-react';
import type { FieldExtensionComponentProps } from '@backstage/plugin-scaffolder-react';
import { formFieldsApiRef } from '@backstage/plugin-scaffolder-react/alpha';
import { FormHelperText } from '@material-ui/core';

/** `ui:options` accepted on top of RepoUrlPicker's own. */
export interface BitbucketServerRepoUrlPickerUiOptions {
  /** Further restrict to these hosts (each must also be a configured Bitbucket Server host). */
  allowedHosts?: string[];
  allowedProjects?: string[];
  allowedRepos?: string[];
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

/**
 * Backstage's RepoUrlPicker, restricted to the Bitbucket Server / Data Center hosts configured in
 * `integrations.bitbucketServer` — which a template cannot list itself, because hosts differ per
 * installation (environment variables). Its value is RepoUrlPicker's `host?project=KEY&repo=name`
 * (`project=~USER` for a personal repository).
 */
export function BitbucketServerRepoUrlPicker(
  props: FieldExtensionComponentProps<
    string,
    BitbucketServerRepoUrlPickerUiOptions
  >,
) {
  const formFieldsApi = useApi(formFieldsApiRef);
  const integrations = useApi(scmIntegrationsApiRef);
  const [inner, setInner] = useState<{
    component?: ComponentType<any>;
    error?: string;
  }>();

  useEffect(() => {
    let cancelled = false;
    formFieldsApi
      .loadFormFields()
      .then(fields => {
        // The scaffolder plugin's own RepoUrlPicker field (loaded form fields carry name + component).
        const field = (
          fields as unknown as { name: string; component: ComponentType<any> }[]
        ).find(f => f.name === 'RepoUrlPicker');
        if (!cancelled) {
          setInner(
            field?.component
              ? { component: field.component }
              : {
                  error:
                    'The RepoUrlPicker field is not installed in this app.',
                },
          );
        }
      })
      .catch(e => !cancelled && setInner({ error: String(e) }));
    return () => {
      cancelled = true;
    };
  }, [formFieldsApi]);

  const configured = integrations.bitbucketServer
    .list()
    .map(i => i.config.host);
  const uiOptions = props.uiSchema?.['ui:options'] ?? {};
  const hosts = bitbucketServerHosts(configured, uiOptions.allowedHosts);

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
  if (!inner) return <Progress />;
  if (inner.error || !inner.component) {
    return <FormHelperText error>{inner.error}</FormHelperText>;
  }
  const Inner = inner.component;
  return (
    <Inner
      {...props}
      uiSchema={{
        ...props.uiSchema,
        'ui:options': { ...uiOptions, allowedHosts: hosts },
      }}
    />
  );
}
