import type { BitbucketAccess } from '../bitbucket/access';
import type { Redactor } from '../util/redact';

/** What every cluster's token Secret holds (`username` is known once the owner was asked). */
export interface FleetTokenAuth {
  username?: string;
  password: string;
  caPem?: string;
}

/**
 * The credentials Flux syncs with under `tokenAuth`, as flux:install stores them: the run's
 * Bitbucket credentials (the token input, else the integration's), the user name given, else the
 * integration's; the host's CA for `ca.crt`. Sends nothing; the secret is registered with the
 * redactor at once.
 */
export function fleetTokenAuth(
  req: { bitbucket: BitbucketAccess; tokenAuth?: { username?: string } },
  redactor: Redactor,
): FleetTokenAuth {
  const { auth, host } = req.bitbucket;
  const password = 'token' in auth ? auth.token : auth.password;
  redactor.add(password);
  const username =
    req.tokenAuth?.username?.trim() ||
    ('username' in auth ? auth.username : undefined);
  return { username, password, caPem: host.caPem };
}
