/**
 * Which credentials an `integrations.bitbucketServer[]` entry has: an access `token`, a
 * `basic` username and password, or `none`. Never the credentials themselves.
 * @public
 */
export type BitbucketServerCredentialsKind = 'token' | 'basic' | 'none';

/** One configured Bitbucket Server host in {@link BitbucketServerIntegrationsResponse}. @public */
export interface BitbucketServerIntegrationInfo {
  /** `integrations.bitbucketServer[].host`, e.g. `bitbucket.example.com` or `127.0.0.1:7990`. */
  host: string;
  credentials: BitbucketServerCredentialsKind;
  /**
   * True when Backstage's Bitbucket Server auth provider (`auth.providers.bitbucketServer`) is
   * configured for this host: a template's repository field may then ask the user to sign in to
   * Bitbucket (`requestUserCredentials`) and its steps act as that user. Absent otherwise.
   */
  userSignIn?: boolean;
}

/**
 * Response of `GET /api/flux-bootstrap/integrations/bitbucket-server`: whether each configured
 * Bitbucket Server host has credentials, so the template's token field can be optional where
 * the actions can use the integration's. No secret value is ever part of it.
 * @public
 */
export interface BitbucketServerIntegrationsResponse {
  items: BitbucketServerIntegrationInfo[];
  /**
   * `scaffolder.requireScmUserCredentials`: the actions then never use the integration's
   * credentials, so the user's token is always required.
   */
  requireScmUserCredentials: boolean;
}

/**
 * The entry of `host` (compared as URL hosts: case-insensitive, default port ignored).
 * @public
 */
export function findBitbucketServerIntegration(
  integrations: BitbucketServerIntegrationsResponse,
  host: string,
): BitbucketServerIntegrationInfo | undefined {
  const wanted = normalizeHost(host);
  return integrations.items.find(i => normalizeHost(i.host) === wanted);
}

/**
 * Whether a user token is needed for `host`: always when `requireScmUserCredentials` is on, and
 * when the host's integration has no credentials (or the host is not configured).
 * @public
 */
export function isBitbucketServerTokenRequired(
  integrations: BitbucketServerIntegrationsResponse,
  host: string,
): boolean {
  if (integrations.requireScmUserCredentials) return true;
  const item = findBitbucketServerIntegration(integrations, host);
  return !item || item.credentials === 'none';
}

/**
 * The host of a RepoUrlPicker value (`host?project=KEY&repo=name`), lower-cased; undefined when
 * there is none yet.
 * @public
 */
export function hostOfRepoUrl(repoUrl: unknown): string | undefined {
  if (typeof repoUrl !== 'string') return undefined;
  const host = repoUrl.split('?')[0].trim();
  return host ? normalizeHost(host) : undefined;
}

function normalizeHost(host: string): string {
  try {
    return new URL(`https://${host}`).host || host.toLocaleLowerCase('en-US');
  } catch {
    return host.toLocaleLowerCase('en-US');
  }
}
