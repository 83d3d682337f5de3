import {
  ApiBlueprint,
  bitbucketAuthApiRef,
  bitbucketServerAuthApiRef,
  configApiRef,
  createFrontendModule,
  githubAuthApiRef,
  gitlabAuthApiRef,
  microsoftAuthApiRef,
} from '@backstage/frontend-plugin-api';
import {
  ScmAuth,
  scmAuthApiRef,
  ScmIntegrationsApi,
} from '@backstage/integration-react';

/**
 * The app's `scmAuthApiRef` (replacing the app plugin's `api:app/scm-auth`): Backstage's default
 * SCM sign-ins (GitHub, GitLab, Azure DevOps, bitbucket.org) plus, for every
 * `integrations.bitbucketServer[].host`, Bitbucket Server / Data Center through the
 * `bitbucketServer` auth provider (OAuth 2.0 against an incoming application link). A
 * repository field with `requestUserCredentials` then gets a token of the signed-in user for that
 * host. Its scopes: `PUBLIC_REPOS REPO_READ`, `REPO_WRITE` for repoWrite, and the template's
 * `additionalScopes.bitbucket` (ScmAuth names Bitbucket Server's provider `bitbucket`).
 *
 * Whether the backend has the provider configured (`auth.providers.bitbucketServer`) is not
 * visible here: the Flux bootstrap repository field asks the Flux bootstrap backend before it
 * asks the user to sign in, so without the provider nobody is asked.
 */
export const scmAuthModule = createFrontendModule({
  pluginId: 'app',
  extensions: [
    ApiBlueprint.make({
      name: 'scm-auth',
      params: defineParams =>
        defineParams({
          api: scmAuthApiRef,
          deps: {
            configApi: configApiRef,
            bitbucketServer: bitbucketServerAuthApiRef,
            github: githubAuthApiRef,
            gitlab: gitlabAuthApiRef,
            azure: microsoftAuthApiRef,
            bitbucket: bitbucketAuthApiRef,
          },
          factory: ({
            configApi,
            bitbucketServer,
            github,
            gitlab,
            azure,
            bitbucket,
          }) =>
            ScmAuth.merge(
              ...ScmIntegrationsApi.fromConfig(configApi)
                .bitbucketServer.list()
                .map(({ config }) =>
                  ScmAuth.forBitbucketServer(bitbucketServer, {
                    host: config.host,
                  }),
                ),
              ScmAuth.forGithub(github),
              ScmAuth.forGitlab(gitlab),
              ScmAuth.forAzure(azure),
              ScmAuth.forBitbucket(bitbucket),
            ),
        }),
    }),
  ],
});
