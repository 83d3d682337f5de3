import { ConfigReader } from '@backstage/config';
import {
  BitbucketServerHostConfig,
  readBitbucketServerHosts,
} from '../config/bitbucketServer';
import {
  addBranchHeadState,
  bitbucketRepositoryLinks,
  matchBitbucketCloneUrl,
} from './bitbucketRepository';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';

let hosts: BitbucketServerHostConfig[];
beforeAll(async () => {
  hosts = await readBitbucketServerHosts(
    new ConfigReader({
      integrations: {
        bitbucketServer: [
          {
            host: 'bb.example.com',
            apiBaseUrl: 'https://bb.example.com/bitbucket/rest/api/1.0',
            token: 't0ken-1234',
          },
          {
            host: 'git.internal:7990',
            apiBaseUrl: 'http://git.internal:7990/rest/api/1.0',
          },
        ],
      },
      fluxBootstrap: {
        bitbucketServer: [
          { host: 'git.internal:7990', sshHost: 'ssh.internal:2222' },
        ],
      },
    }),
  );
});

describe('matchBitbucketCloneUrl', () => {
  it('maps HTTPS clone URLs, honouring the context path', () => {
    const m = matchBitbucketCloneUrl(
      'https://bb.example.com/bitbucket/scm/PLAT/fleet-infra.git',
      hosts,
    );
    expect(m).toMatchObject({ project: 'PLAT', slug: 'fleet-infra' });
    expect(m!.host.host).toBe('bb.example.com');
    // without the context path it is not this server's URL
    expect(
      matchBitbucketCloneUrl(
        'https://bb.example.com/scm/PLAT/fleet-infra.git',
        hosts,
      ),
    ).toBeUndefined();
    expect(
      matchBitbucketCloneUrl(
        'http://git.internal:7990/scm/~alice/fleet.git',
        hosts,
      ),
    ).toMatchObject({ project: '~alice', slug: 'fleet' });
  });

  it('maps SSH clone URLs by the configured sshHost or the default port 7999', () => {
    expect(
      matchBitbucketCloneUrl(
        'ssh://git@ssh.internal:2222/OPS/fleet.git',
        hosts,
      ),
    ).toMatchObject({
      project: 'OPS',
      slug: 'fleet',
    });
    const def = matchBitbucketCloneUrl(
      'ssh://git@bb.example.com:7999/PLAT/fleet-infra',
      hosts,
    );
    expect(def).toMatchObject({ project: 'PLAT', slug: 'fleet-infra' });
    expect(def!.host.host).toBe('bb.example.com');
    // Flux's own default URL has no port: same host name still matches
    expect(
      matchBitbucketCloneUrl(
        'ssh://git@bb.example.com/PLAT/fleet-infra',
        hosts,
      )!.host.host,
    ).toBe('bb.example.com');
  });

  it('ignores other hosts, other shapes and garbage', () => {
    expect(
      matchBitbucketCloneUrl('https://github.com/fluxcd/flux2.git', hosts),
    ).toBeUndefined();
    expect(
      matchBitbucketCloneUrl('ssh://git@github.com/fluxcd/flux2.git', hosts),
    ).toBeUndefined();
    expect(
      matchBitbucketCloneUrl(
        'https://bb.example.com/bitbucket/scm/PLAT/a/b.git',
        hosts,
      ),
    ).toBeUndefined();
    expect(matchBitbucketCloneUrl('not a url', hosts)).toBeUndefined();
    expect(matchBitbucketCloneUrl(undefined, hosts)).toBeUndefined();
  });
});

describe('bitbucketRepositoryLinks', () => {
  it('links project and personal repositories', () => {
    const project = bitbucketRepositoryLinks({
      host: hosts[0],
      project: 'PLAT',
      slug: 'fleet',
    });
    expect(project.browseUrl).toBe(
      'https://bb.example.com/bitbucket/projects/PLAT/repos/fleet/browse',
    );
    expect(project.commitUrl('abc')).toBe(
      'https://bb.example.com/bitbucket/projects/PLAT/repos/fleet/commits/abc',
    );
    expect(
      bitbucketRepositoryLinks({
        host: hosts[1],
        project: '~alice',
        slug: 'fleet',
      }).browseUrl,
    ).toBe('http://git.internal:7990/users/alice/repos/fleet/browse');
  });
});

describe('addBranchHeadState', () => {
  const sha = 'a'.repeat(40);
  const status = (applied?: string): ClusterBootstrapStatus => ({
    cluster: 'c',
    state: 'ready',
    checkedAt: new Date(0).toISOString(),
    components: [],
    inSync: null,
    source: {
      kind: 'GitRepository',
      name: 'flux-system',
      namespace: 'flux-system',
      url: 'ssh://git@bb.example.com:7999/PLAT/fleet',
      branch: 'main',
      ready: true,
    },
    sync: {
      name: 'flux-system',
      namespace: 'flux-system',
      ready: true,
      lastAppliedRevision: applied,
    },
  });

  it('is in sync when the applied SHA is the branch head, behind otherwise', async () => {
    const calls: string[] = [];
    const lookup = async (
      l: { project: string; slug: string },
      branch: string,
    ) => {
      calls.push(`${l.project}/${l.slug}@${branch}`);
      return sha.toUpperCase();
    };
    const same = await addBranchHeadState(status(`main@sha1:${sha}`), {
      hosts,
      lookup,
    });
    expect(same.inSync).toBe(true);
    expect(same.repository).toMatchObject({
      project: 'PLAT',
      slug: 'fleet',
      headCommit: sha,
      commitUrl: `https://bb.example.com/bitbucket/projects/PLAT/repos/fleet/commits/${sha}`,
    });
    const behind = await addBranchHeadState(
      status(`main@sha1:${'b'.repeat(40)}`),
      { hosts, lookup },
    );
    expect(behind.inSync).toBe(false);
    expect(calls).toEqual(['PLAT/fleet@main', 'PLAT/fleet@main']);
  });

  it('stays unknown without an applied revision, off Bitbucket, or when the lookup fails (redacted)', async () => {
    const lookup = async () => sha;
    expect(
      (await addBranchHeadState(status(undefined), { hosts, lookup })).inSync,
    ).toBeNull();
    const offHost = status(`main@sha1:${sha}`);
    offHost.source!.url = 'https://github.com/x/y.git';
    const off = await addBranchHeadState(offHost, { hosts, lookup });
    expect(off.inSync).toBeNull();
    expect(off.repository).toBeUndefined();
    const failed = await addBranchHeadState(status(`main@sha1:${sha}`), {
      hosts,
      lookup: async () => {
        throw new Error('401 for Authorization: Bearer t0ken-1234');
      },
    });
    expect(failed.inSync).toBeNull();
    expect(failed.repository!.message).toMatch(
      /Could not read the branch head/,
    );
    expect(JSON.stringify(failed)).not.toContain('t0ken-1234');
  });
});
