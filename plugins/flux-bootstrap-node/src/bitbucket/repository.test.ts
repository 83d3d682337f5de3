import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { BitbucketServerClient } from './client';
import {
  cloneLink,
  planRepositoryOutputs,
  repositoryOutputs,
  setDefaultBranch,
} from './repository';
import type { BitbucketRepository } from './types';

const host: BitbucketServerHostConfig = {
  host: 'bitbucket.example.com',
  baseUrl: 'https://bitbucket.example.com/bitbucket',
  apiBaseUrl: 'https://bitbucket.example.com/bitbucket/rest/api/1.0',
  sshHost: 'bitbucket.example.com:7999',
  requestTimeoutMs: 5000,
  retries: 0,
};

describe('repositoryOutputs', () => {
  it('picks clone links by name, whatever their order and the case of the key, and drops user info', () => {
    const repo: BitbucketRepository = {
      slug: 'fleet',
      name: 'fleet',
      project: { key: 'FLUX', name: 'Flux' },
      links: {
        clone: [
          {
            name: 'SSH',
            href: 'ssh://git@bitbucket.example.com:7999/FLUX/fleet.git',
          },
          {
            name: 'mirror',
            href: 'https://mirror.example.com/scm/other/thing.git',
          },
          {
            name: 'HTTP',
            href: 'https://alice@bitbucket.example.com/bitbucket/scm/FLUX/fleet.git',
          },
        ],
        self: [
          {
            href: 'https://bitbucket.example.com/bitbucket/projects/FLUX/repos/fleet/browse',
          },
        ],
      },
    };
    expect(cloneLink(repo, 'http')).toBe(
      'https://alice@bitbucket.example.com/bitbucket/scm/FLUX/fleet.git',
    );
    const out = repositoryOutputs(
      { ...host, sshHost: 'ssh.example.com:2222' },
      repo,
      'main',
      true,
    );
    expect(out).toEqual({
      remoteUrl: 'https://bitbucket.example.com/bitbucket/scm/FLUX/fleet.git',
      sshUrl: 'ssh://git@ssh.example.com:2222/FLUX/fleet.git',
      repoContentsUrl:
        'https://bitbucket.example.com/bitbucket/projects/FLUX/repos/fleet/browse',
      projectKey: 'FLUX',
      repoSlug: 'fleet',
      defaultBranch: 'main',
      created: true,
    });
  });

  it('falls back to URLs built from the base URL when links are missing or name another repository', () => {
    const warnings: string[] = [];
    const logger = {
      info() {},
      debug() {},
      error() {},
      warn: (m: string) => warnings.push(m),
    };
    const repo: BitbucketRepository = {
      slug: 'fleet',
      name: 'fleet',
      project: { key: '~ALICE', name: 'Alice' },
      links: {
        clone: [
          {
            name: 'http',
            href: 'https://bitbucket.example.com/scm/other/repo.git',
          },
        ],
      },
    };
    const out = repositoryOutputs(host, repo, 'main', false, logger);
    expect(out.remoteUrl).toBe(
      'https://bitbucket.example.com/bitbucket/scm/~alice/fleet.git',
    );
    expect(out.sshUrl).toBe(
      'ssh://git@bitbucket.example.com:7999/~alice/fleet.git',
    );
    expect(out.repoContentsUrl).toBe(
      'https://bitbucket.example.com/bitbucket/users/alice/repos/fleet/browse',
    );
    expect(warnings).toHaveLength(1);
  });

  it('plans outputs without any request', () => {
    expect(
      planRepositoryOutputs(host, {
        ref: {
          host: host.host,
          project: 'plat',
          repo: 'Fleet Infra',
          personal: false,
        },
        defaultBranch: 'main',
      }),
    ).toMatchObject({
      projectKey: 'PLAT',
      repoSlug: 'fleet-infra',
      remoteUrl:
        'https://bitbucket.example.com/bitbucket/scm/plat/fleet-infra.git',
      sshUrl: 'ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
    });
  });
});

describe('setDefaultBranch', () => {
  it('falls back to the pre-7.5 endpoint when /default-branch does not exist', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        if (req.url!.endsWith('/default-branch')) {
          res.writeHead(404, { 'Content-Type': 'application/json' });
          res.end(
            JSON.stringify({
              errors: [
                {
                  message: 'null for uri',
                  exceptionName: 'com.sun.jersey.api.NotFoundException',
                },
              ],
            }),
          );
          return;
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>(r => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${port}`;
    const client = new BitbucketServerClient(
      {
        ...host,
        host: `127.0.0.1:${port}`,
        baseUrl: base,
        apiBaseUrl: `${base}/rest/api/1.0`,
      },
      { token: 't-123456' },
    );
    try {
      await setDefaultBranch(client, 'FLUX', 'fleet', 'production');
      expect(seen).toEqual([
        'PUT /rest/api/1.0/projects/FLUX/repos/fleet/default-branch',
        'PUT /rest/api/1.0/projects/FLUX/repos/fleet/branches/default',
      ]);
    } finally {
      client.close();
      await new Promise(r => server.close(r));
    }
  });
});
