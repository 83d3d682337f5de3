import type { ComponentType } from 'react';
import { useApi } from '@backstage/core-plugin-api';
import { scmIntegrationsApiRef } from '@backstage/integration-react';
import type { FieldExtensionComponentProps } from '@backstage/plugin-scaffolder-react';
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
 * Scaffolder field `BitbucketServerRepoUrlPicker`: Backstage's RepoUrlPicker, restricted to the
 * Bitbucket Server / Data Center hosts configured in `integrations.bitbucketServer` — which a
 * template cannot list itself, because hosts differ per installation (environment variables).
 * Its value is RepoUrlPicker's `host?project=KEY&repo=name` (`project=~USER` for a personal
 * repository), validated like RepoUrlPicker's.
 *
 * It renders the RepoUrlPicker the form itself has (the form's field registry), so it works in
 * both frontend systems and follows the scaffolder the app runs.
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
  const uiOptions = props.uiSchema?.['ui:options'] ?? {};
  const hosts = bitbucketServerHosts(configured, uiOptions.allowedHosts);
  const Inner = (
    props.registry?.fields as Record<string, ComponentType<any>> | undefined
  )?.RepoUrlPicker;

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
    <Inner
      {...props}
      uiSchema={{
        ...props.uiSchema,
        'ui:options': { ...uiOptions, allowedHosts: hosts },
      }}
    />
  );
}
