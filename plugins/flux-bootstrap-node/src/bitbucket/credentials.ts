import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { InputValidationError } from '../util/errors';
import type { BitbucketAccess } from './access';

/**
 * The one rule for Bitbucket credentials: the `token` input when given, else the host's
 * `integrations.bitbucketServer` credentials — unless `scaffolder.requireScmUserCredentials`
 * (`requireUserCredentials`) forbids them. None is an InputValidationError naming `token`,
 * before any request. `purpose` completes the message, e.g. ` to follow pull request #4`;
 * `hostName` names a host with no integration entry (`host` undefined).
 * @public
 */
export function chooseBitbucketCredentials(opts: {
  token?: string;
  host: BitbucketServerHostConfig | undefined;
  hostName: string;
  requireUserCredentials: boolean | undefined;
  purpose?: string;
}): Pick<BitbucketAccess, 'auth' | 'credentials'> {
  const token = opts.token?.trim();
  if (token) return { auth: { token }, credentials: 'the token input' };
  const { host, hostName, purpose = '' } = opts;
  const refuse = (why: string) =>
    new InputValidationError('token', `is required${purpose}: ${why}`);
  if (opts.requireUserCredentials)
    throw refuse(
      `scaffolder.requireScmUserCredentials is enabled, so the integration's credentials for ${hostName} are not used`,
    );
  if (!host)
    throw refuse(`no integrations.bitbucketServer entry matches ${hostName}`);
  if (!host.auth)
    throw refuse(
      `integrations.bitbucketServer for ${hostName} has neither a token nor a username and password`,
    );
  const what = 'token' in host.auth ? 'the token' : 'the username and password';
  return {
    auth: host.auth,
    credentials: `${what} of integrations.bitbucketServer for ${hostName}`,
  };
}
