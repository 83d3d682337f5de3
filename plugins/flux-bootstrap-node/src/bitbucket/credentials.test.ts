import { InputError } from '@backstage/errors';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { chooseBitbucketCredentials } from './credentials';

const host = (
  auth?: BitbucketServerHostConfig['auth'],
): BitbucketServerHostConfig =>
  ({
    host: 'bb.example.com',
    baseUrl: 'https://bb.example.com',
    apiBaseUrl: 'https://bb.example.com/rest/api/1.0',
    auth,
  } as BitbucketServerHostConfig);

const choose = (o: Partial<Parameters<typeof chooseBitbucketCredentials>[0]>) =>
  chooseBitbucketCredentials({
    host: host({ token: 'integration-token' }),
    hostName: 'bb.example.com',
    requireUserCredentials: false,
    ...o,
  });

describe('chooseBitbucketCredentials', () => {
  it('takes the token input first, trimmed, even when user credentials are required', () => {
    expect(choose({ token: ' t0k ', requireUserCredentials: true })).toEqual({
      auth: { token: 't0k' },
      credentials: 'the token input',
    });
  });

  it("falls back to the integration's token or username and password, named but not shown", () => {
    expect(choose({})).toEqual({
      auth: { token: 'integration-token' },
      credentials:
        'the token of integrations.bitbucketServer for bb.example.com',
    });
    const basic = { username: 'svc', password: 'pw' };
    expect(choose({ host: host(basic), token: '  ' })).toEqual({
      auth: basic,
      credentials:
        'the username and password of integrations.bitbucketServer for bb.example.com',
    });
  });

  it.each([
    [
      { requireUserCredentials: true },
      /^Invalid input "token": is required to follow pull request #4: scaffolder\.requireScmUserCredentials is enabled, so the integration's credentials for bb\.example\.com are not used$/,
    ],
    [
      { host: undefined, hostName: 'git.example.com' },
      /^Invalid input "token": is required to follow pull request #4: no integrations\.bitbucketServer entry matches git\.example\.com$/,
    ],
    [
      { host: host(undefined) },
      /^Invalid input "token": is required to follow pull request #4: integrations\.bitbucketServer for bb\.example\.com has neither a token nor a username and password$/,
    ],
  ])('refuses %o with an InputError naming token', (o, message) => {
    const call = () => choose({ ...o, purpose: ' to follow pull request #4' });
    expect(call).toThrow(InputError);
    expect(call).toThrow(message);
    expect(call).not.toThrow(/integration-token/);
  });
});
