import { InputValidationError } from '../util/errors';
import { isProjectKey, parseBitbucketRepoUrl, repositorySlug } from './repoUrl';

const hosts = [{ host: 'bitbucket.example.com' }, { host: '127.0.0.1:7990' }];

describe('parseBitbucketRepoUrl', () => {
  it('parses project, personal and name forms', () => {
    expect(
      parseBitbucketRepoUrl(
        'bitbucket.example.com?project=PLAT&repo=fleet',
        hosts,
      ),
    ).toEqual({
      host: 'bitbucket.example.com',
      project: 'PLAT',
      repo: 'fleet',
      personal: false,
      owner: undefined,
    });
    expect(
      parseBitbucketRepoUrl(
        '127.0.0.1:7990?project=~alice&repo=My Fleet',
        hosts,
      ),
    ).toMatchObject({
      host: '127.0.0.1:7990',
      project: '~alice',
      personal: true,
      owner: 'alice',
      repo: 'My Fleet',
    });
    expect(
      parseBitbucketRepoUrl(
        'BITBUCKET.example.com?project=Platform Team&repo=fleet',
        hosts,
      ).project,
    ).toBe('Platform Team');
  });

  it.each([
    ['', /is required/],
    ['bitbucket.example.com?repo=fleet', /missing project/],
    ['bitbucket.example.com?project=PLAT', /missing repo/],
    ['other.example.com?project=PLAT&repo=fleet', /not one of the configured/],
    [
      'alice:s3cret-token@bitbucket.example.com?project=PLAT&repo=fleet',
      /must not contain credentials/,
    ],
    [
      'https://alice:s3cret-token@bitbucket.example.com?project=PLAT&repo=fleet',
      /must not contain credentials/,
    ],
    [
      'https://bitbucket.example.com?project=PLAT&repo=fleet',
      /without a scheme/,
    ],
    [
      'bitbucket.example.com/scm?project=PLAT&repo=fleet',
      /must not contain a path/,
    ],
    ['bitbucket.example.com?project=PLAT&repo=a/b', /invalid repo name/],
    ['bitbucket.example.com?project=PLAT&repo=..', /invalid repo name/],
    ['bitbucket.example.com?project=PLAT&repo=_fleet', /invalid repo name/],
    ['bitbucket.example.com?project=PLAT&repo=.fleet', /invalid repo name/],
    ['bitbucket.example.com?project=~a b&repo=x', /invalid personal project/],
    ['bitbucket.example.com?project= padded&repo=x', /invalid project/],
  ])(
    'rejects %j naming the field and never echoing credentials',
    (value, message) => {
      let error: unknown;
      try {
        parseBitbucketRepoUrl(value, hosts);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputValidationError);
      expect((error as InputValidationError).field).toBe('repoUrl');
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('s3cret-token');
    },
  );
});

describe('helpers', () => {
  it('tells keys from names and derives slugs', () => {
    expect(isProjectKey('PLAT_1')).toBe(true);
    expect(isProjectKey('Platform Team')).toBe(false);
    expect(repositorySlug(' Fleet  Infra ')).toBe('fleet-infra');
    expect(repositorySlug('fleet.infra_2')).toBe('fleet.infra_2');
  });
});
