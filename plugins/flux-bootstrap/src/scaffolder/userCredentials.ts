import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import {
  bitbucketServerAuthApiRef,
  useApiHolder,
} from '@backstage/core-plugin-api';
import { scmAuthApiRef } from '@backstage/integration-react';
import { useTemplateSecrets } from '@backstage/plugin-scaffolder-react';
import {
  type BitbucketServerIntegrationsResponse,
  findBitbucketServerIntegration,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import { fluxBootstrapApiFrom } from '../api/FluxBootstrapApi';

/**
 * `ui:options.requestUserCredentials` of a repository field, as RepoUrlPicker takes it: the
 * signed-in user's token for the chosen host goes into the task secrets under `secretsKey`
 * (`${{ secrets.<secretsKey> }}` in the steps).
 * @public
 */
export interface RequestUserCredentialsOptions {
  secretsKey: string;
  /**
   * Scopes asked for on top of ScmAuth's (`PUBLIC_REPOS REPO_READ` and, since the steps write,
   * `REPO_WRITE`), per provider as RepoUrlPicker names them: Bitbucket Server's is `bitbucket`
   * (`bitbucketServer` is accepted too).
   */
  additionalScopes?: {
    bitbucket?: string[];
    bitbucketServer?: string[];
  } & Record<string, string[] | undefined>;
}

/** Where the user's Bitbucket sign-in for the repository field stands. */
export type UserCredentialsState =
  /** Not asked for: no `requestUserCredentials`, no host yet, or no sign-in for the host. */
  | { kind: 'off' }
  /** Waiting for the user (Backstage's sign-in dialog and Bitbucket's consent page). */
  | { kind: 'asking'; host: string }
  | { kind: 'signed-in'; host: string; name?: string }
  | { kind: 'failed'; host: string; message: string };

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * RepoUrlPicker's `requestUserCredentials` for the Bitbucket Server repository field: once a
 * host is chosen, asks Backstage's `scmAuthApiRef` for the user's token of that host (Backstage
 * shows its sign-in dialog; Bitbucket its login and consent pages) and puts it into the task
 * secrets. Unlike RepoUrlPicker it asks only where the Flux bootstrap backend says the
 * Bitbucket Server auth provider is configured for the host (`userSignIn`), so an app without
 * the provider never shows a sign-in that cannot work, and the steps fall back to the token
 * field or the integration's credentials; a refused or failed sign-in is said, not thrown, and
 * can be retried.
 */
export function useBitbucketUserCredentials(
  host: string | undefined,
  options: RequestUserCredentialsOptions,
): { state: UserCredentialsState; retry: () => void } {
  const apiHolder = useApiHolder();
  const { secrets, setSecrets } = useTemplateSecrets();
  const [integrations, setIntegrations] =
    useState<BitbucketServerIntegrationsResponse>();
  const [state, setState] = useState<UserCredentialsState>({ kind: 'off' });
  const [attempt, setAttempt] = useState(0);
  // The latest secrets, read when a sign-in finishes (not a reason to sign in again).
  const latestSecrets = useRef(secrets);
  latestSecrets.current = secrets;
  const secretsKey = options.secretsKey;
  const scopesKey = JSON.stringify(
    options.additionalScopes?.bitbucket ??
      options.additionalScopes?.bitbucketServer ??
      [],
  );

  useEffect(() => {
    if (!secretsKey) return undefined;
    let cancelled = false;
    fluxBootstrapApiFrom(apiHolder)
      .getBitbucketServerIntegrations()
      .then(
        body => !cancelled && setIntegrations(body),
        // Without the backend's answer nobody is asked to sign in: the steps fall back.
        () => undefined,
      );
    return () => {
      cancelled = true;
    };
  }, [apiHolder, secretsKey]);

  const signIn =
    !!host &&
    !!integrations &&
    !!findBitbucketServerIntegration(integrations, host)?.userSignIn;

  useEffect(() => {
    if (!secretsKey || !host || !signIn) {
      setState({ kind: 'off' });
      return undefined;
    }
    const scmAuth = apiHolder.get(scmAuthApiRef);
    if (!scmAuth) {
      setState({
        kind: 'failed',
        host,
        message: 'this app has no SCM sign-in (scmAuthApiRef)',
      });
      return undefined;
    }
    let cancelled = false;
    setState({ kind: 'asking', host });
    (async () => {
      const { token } = await scmAuth.getCredentials({
        url: `https://${host}`,
        additionalScope: {
          repoWrite: true,
          customScopes: { bitbucket: JSON.parse(scopesKey) },
        },
      });
      if (!token) throw new Error('Bitbucket gave no token');
      if (cancelled) return;
      if (latestSecrets.current[secretsKey] !== token) {
        setSecrets({ [secretsKey]: token });
      }
      // Who, when the app's Bitbucket Server sign-in says (not needed for the token).
      const profile = await apiHolder
        .get(bitbucketServerAuthApiRef)
        ?.getProfile({ optional: true })
        .catch(() => undefined);
      if (!cancelled) {
        setState({
          kind: 'signed-in',
          host,
          name: profile?.displayName ?? undefined,
        });
      }
    })().catch(e => {
      if (cancelled) return;
      // No token of an earlier sign-in stays behind for the steps.
      if (latestSecrets.current[secretsKey]) setSecrets({ [secretsKey]: '' });
      setState({ kind: 'failed', host, message: message(e) });
    });
    return () => {
      cancelled = true;
    };
  }, [apiHolder, host, signIn, secretsKey, scopesKey, setSecrets, attempt]);

  const retry = useCallback(() => setAttempt(n => n + 1), []);
  return useMemo(() => ({ state, retry }), [state, retry]);
}
