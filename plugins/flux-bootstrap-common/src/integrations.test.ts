import {
  BitbucketServerIntegrationsResponse,
  findBitbucketServerIntegration,
  hostOfRepoUrl,
  isBitbucketServerTokenRequired,
} from './integrations';

const integrations: BitbucketServerIntegrationsResponse = {
  items: [
    { host: 'bb.example.com', credentials: 'token' },
    { host: 'BB2.example.com:7990', credentials: 'basic' },
    { host: 'bb3.example.com', credentials: 'none' },
  ],
  requireScmUserCredentials: false,
};

describe('hostOfRepoUrl', () => {
  it('reads the host of a RepoUrlPicker value, with its port', () => {
    expect(hostOfRepoUrl('bb.example.com?project=FLUX&repo=fleet')).toBe(
      'bb.example.com',
    );
    expect(hostOfRepoUrl('127.0.0.1:7990?repo=fleet&project=~alice')).toBe(
      '127.0.0.1:7990',
    );
    expect(hostOfRepoUrl('BB.Example.com?repo=x')).toBe('bb.example.com');
  });

  it('is undefined while no host is chosen', () => {
    expect(hostOfRepoUrl(undefined)).toBeUndefined();
    expect(hostOfRepoUrl('')).toBeUndefined();
    expect(hostOfRepoUrl('?project=FLUX&repo=fleet')).toBeUndefined();
    expect(hostOfRepoUrl(42)).toBeUndefined();
  });
});

describe('isBitbucketServerTokenRequired', () => {
  it('is optional where the integration has a token or a username and password', () => {
    expect(isBitbucketServerTokenRequired(integrations, 'bb.example.com')).toBe(
      false,
    );
    expect(
      isBitbucketServerTokenRequired(integrations, 'bb2.example.com:7990'),
    ).toBe(false);
    expect(
      findBitbucketServerIntegration(integrations, 'bb2.example.com:7990'),
    ).toEqual({ host: 'BB2.example.com:7990', credentials: 'basic' });
  });

  it('is required where the integration has none, or the host is not configured', () => {
    expect(
      isBitbucketServerTokenRequired(integrations, 'bb3.example.com'),
    ).toBe(true);
    expect(isBitbucketServerTokenRequired(integrations, 'other.example')).toBe(
      true,
    );
  });

  it('is always required with scaffolder.requireScmUserCredentials', () => {
    const strict = { ...integrations, requireScmUserCredentials: true };
    expect(isBitbucketServerTokenRequired(strict, 'bb.example.com')).toBe(true);
  });
});
