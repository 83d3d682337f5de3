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

/** What a Bitbucket call tries: `needs` is e.g. `PROJECT_READ on project FLUX`. */
interface BitbucketAttempt {
  client: Pick<BitbucketServerClient, 'host'>;
  credentials: string;
  action: string;
  needs: string;
}

/** Runs `fn`; a 401/403 is reworded to name the credentials, the action and the permission it needs. */
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
      error,
    );
  }
}

/** The Bitbucket user credentials belong to (`name`: the login Bitbucket checks over HTTPS). */
export interface TokenOwner {
  name: string;
  displayName?: string;
  emailAddress?: string;
}

/**
 * The user the client's credentials belong to. A project or repository HTTP access token acts
 * as a service user that `GET /users/{name}` does not list and works only as a Bearer token, so
 * Flux cannot sign in with it over HTTPS: an `InputError` naming `field` (default `token`).
 * @public
 */
export async function resolveTokenOwner(
  client: BitbucketServerClient,
  opts: { signal?: AbortSignal; credentials?: string; field?: string } = {},
): Promise<TokenOwner> {
  const credentials = opts.credentials ?? 'the credentials';
  const needs = `a licensed user on ${client.host.host}`;
  const me = await attempt(
    { client, credentials, action: 'identify its user', needs },
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
