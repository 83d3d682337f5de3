import type {
  BitbucketServerAuth,
  BitbucketServerHostConfig,
} from '../config/bitbucketServer';
import { InputValidationError } from '../util/errors';
import type { BitbucketServerClient } from './client';
import { BitbucketError, isBitbucketError } from './errors';
import type { BitbucketRepoRef } from './repoUrl';

/** A repository on a Bitbucket host and the credentials to use there. @public */
export interface BitbucketAccess {
  ref: BitbucketRepoRef;
  host: BitbucketServerHostConfig;
  auth: BitbucketServerAuth;
  /** How logs and errors name the credentials, e.g. `the token input` (never their value). */
  credentials: string;
}

/** What a Bitbucket call tries, for errors that say which permission it needs. @public */
export interface BitbucketAttempt {
  client: Pick<BitbucketServerClient, 'host'>;
  /** How the credentials are named, e.g. `the token input`. */
  credentials: string;
  action: string;
  /** e.g. `PROJECT_READ on project FLUX`. */
  needs: string;
}

/**
 * Runs `fn`, rewording a credential or permission failure (401/403) so that it names the
 * credentials, what was tried and the permission that needs.
 * @public
 */
export async function attempt<T>(
  a: BitbucketAttempt,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!isBitbucketError(error, 'unauthorized', 'forbidden')) throw error;
    const said = error.bitbucketMessage
      ? ` Bitbucket said: ${error.bitbucketMessage}`
      : '';
    const who = a.credentials;
    throw new BitbucketError(
      error.kind === 'unauthorized'
        ? `Bitbucket ${a.client.host.host} rejected ${who} while trying to ${a.action}: the token or password is invalid, expired or revoked (HTTP ${error.status}).${said}`
        : `${who[0].toUpperCase()}${who.slice(1)} may not ${
            a.action
          }: it needs ${a.needs} (HTTP ${error.status}).${said}`,
      {
        kind: error.kind,
        status: error.status,
        details: error.details,
        request: error.request,
      },
    );
  }
}

/** The Bitbucket user credentials belong to. @public */
export interface TokenOwner {
  /** The user name Bitbucket checks a Git-over-HTTPS login against. */
  name: string;
  displayName?: string;
  emailAddress?: string;
}

/**
 * The user the client's credentials belong to: the name Bitbucket gives in `X-AUSERNAME` (taken
 * from an earlier answer, or asked for), looked up as a user. A project or repository HTTP access
 * token acts as a service user that `GET /users/{name}` does not list: it belongs to no user and
 * works only as a Bearer token, so Flux cannot sign in with it and a username over HTTPS. That is
 * an `InputError` naming `field` (default `token`), thrown before anything is changed.
 * @public
 */
export async function resolveTokenOwner(
  client: BitbucketServerClient,
  opts: { signal?: AbortSignal; credentials?: string; field?: string } = {},
): Promise<TokenOwner> {
  const credentials = opts.credentials ?? 'the credentials';
  const me = await attempt(
    {
      client,
      credentials,
      action: 'identify its user',
      needs: `a licensed user on ${client.host.host}`,
    },
    () => client.currentUser(opts.signal),
  );
  if (!me.user) {
    throw new InputValidationError(
      opts.field ?? 'token',
      `${credentials} act as "${me.name}", which is no Bitbucket user: a project or repository HTTP access token. Such a token works only as a Bearer token, so Flux cannot sign in with it and a username over HTTPS (tokenAuth). Use a personal HTTP access token of a user with REPO_READ on the repository, or SSH with a deploy key.`,
    );
  }
  const { displayName, emailAddress } = me.user;
  return { name: me.name, displayName, emailAddress };
}
