import {
  BitbucketDouble,
  buildFluxUpgradeBundles,
  run,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { BitbucketServerClient, gitHttpAuthHeaders } from '../bitbucket';
import { BitbucketPullRequests } from '../bitbucket/pullRequests';
import { restrictionMatches } from '../bitbucket/restrictions';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import { generateSshKeyPair } from '../keys';
import { resolveFluxManifestOptions } from '../manifests/options';
import { Redactor } from '../util/redact';
import {
  commitFluxManifests as pushFluxManifests,
  renderFluxManifests,
} from './pushFluxManifests';
import type { ResolvedFluxManifestOptions } from '../manifests/options';

/** The commit step's input for a bundle and resolved options. */
const commitInputOf = (
  bundle: Record<string, string>,
  options: ResolvedFluxManifestOptions,
) => ({
  files: renderFluxManifests(bundle, options),
  version: options.components.version,
  branch: options.branch,
});
import {
  pushFluxManifestsWithPullRequest,
  type PullRequestModeRequest,
  type PullRequestPushResult,
} from './pullRequestMode';
import { BranchProtectedError } from './pushRejection';
import { SshGitTransport } from './ssh';
import { HttpsGitTransport } from './transport';

jest.setTimeout(120_000);

const ADMIN = `canary-admin-${Math.random().toString(36).slice(2)}`;
const WRITER = `canary-writer-${Math.random().toString(36).slice(2)}`;
const BOB = `canary-bob-${Math.random().toString(36).slice(2)}`;

describe('pull-request mode against the Bitbucket double (real git, hooks and merges)', () => {
  let bb: BitbucketDouble;
  let bundles: Record<'from' | 'to', Record<string, string>>;
  let n = 0;

  beforeAll(async () => {
    bb = await startBitbucketDouble({ ssh: true });
    for (const name of ['alice', 'walt', 'bob', 'carol'])
      bb.addUser({ name, email: `${name}@example.com` });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('FLUX', { user: 'walt' }, 'PROJECT_WRITE');
    bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_WRITE');
    bb.grantProject('FLUX', { user: 'carol' }, 'PROJECT_READ');
    bb.addToken({ token: ADMIN, user: 'alice' });
    bb.addToken({ token: WRITER, user: 'walt' });
    bb.addToken({ token: BOB, user: 'bob' });
    const built = await buildFluxUpgradeBundles();
    bundles = { from: built.from.files, to: built.to.files };
  }, 90_000);
  afterAll(() => bb?.stop());

  const host = (): BitbucketServerHostConfig => ({
    host: bb.host,
    apiBaseUrl: bb.apiBaseUrl,
    baseUrl: bb.baseUrl,
    sshHost: bb.ssh!.host,
    requestTimeoutMs: 30_000,
    retries: 0,
  });

  function repo(opts: { protect?: boolean } = {}) {
    const { slug } = bb.createRepo('FLUX', `fleet-${++n}`, {
      defaultBranch: 'main',
      initialCommit: true,
    });
    if (opts.protect)
      bb.addRestriction('FLUX', slug, {
        type: 'pull-request-only',
        matcher: 'main',
      });
    return slug;
  }

  const lines: string[] = [];
  const logger = {
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(m),
    error: (m: string) => lines.push(m),
    debug: () => undefined,
  };
  beforeEach(() => lines.splice(0));

  function push(
    slug: string,
    opts: {
      token?: string;
      version?: 'from' | 'to';
      pullRequest?: PullRequestModeRequest;
    } = {},
  ): Promise<PullRequestPushResult> {
    const token = opts.token ?? ADMIN;
    const client = new BitbucketServerClient(host(), { token });
    const input = {
      repo: new BitbucketPullRequests(client, 'FLUX', slug),
      cluster: 'prod',
      transport: new HttpsGitTransport({
        url: bb.cloneUrls('FLUX', slug).http,
        headers: gitHttpAuthHeaders({ token }),
      }),
      ...commitInputOf(
        bundles[opts.version ?? 'from'],
        resolveFluxManifestOptions(
          {
            path: 'clusters/prod',
            syncUrl: bb.cloneUrls('FLUX', slug).http,
            fluxVersion: opts.version === 'to' ? 'v2.10.0' : 'v2.9.4',
          },
          { fluxVersion: 'v2.9.4' },
        ),
      ),
      author: { name: 'Flux', email: '' },
    };
    const deps = { logger, redactor: new Redactor([token]) };
    return opts.pullRequest
      ? pushFluxManifestsWithPullRequest(
          { ...input, pullRequest: opts.pullRequest },
          deps,
        )
      : pushFluxManifests(input, deps);
  }

  const git = async (slug: string, ...args: string[]) =>
    (await run('git', ['--git-dir', bb.repoPath('FLUX', slug), ...args]))
      .stdout;
  const log = async (slug: string, ref: string) =>
    (await git(slug, 'log', '--format=%s', ref)).trim().split('\n');
  const prs = (slug: string) =>
    bb.state().pullRequests.filter(p => p.slug === slug);
  const rest = async (method: string, path: string, token = BOB) => {
    const r = await fetch(`${bb.baseUrl}${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(r.status).toBe(200);
    return r.json();
  };
  const prPath = (slug: string, id: number, action: string) =>
    `/rest/api/1.0/projects/FLUX/repos/${slug}/pull-requests/${id}/${action}`;

  it('refuses a direct push to a protected branch over HTTPS with the server reason and what to do', async () => {
    const slug = repo({ protect: true });
    const error = await push(slug).catch(e => e);
    expect(error).toBeInstanceOf(BranchProtectedError);
    expect(error.name).toBe('NotAllowedError');
    expect(error.message).toContain('branch "main"');
    expect(error.message).toContain(
      'Branch refs/heads/main can only be modified through pull requests.',
    );
    expect(error.message).toContain('pre-receive hook declined');
    expect(error.message).toMatch(/set the input pullRequest/);
    expect(error.message).not.toContain(ADMIN);
    expect(await log(slug, 'main')).toEqual(['Initial commit']);
  });

  it('refuses a direct push over SSH the same way (git CLI stderr)', async () => {
    const slug = repo({ protect: true });
    const pair = await generateSshKeyPair({ algorithm: 'ed25519' });
    bb.addAccessKey('FLUX', slug, { text: pair.publicKey }, 'REPO_WRITE');
    const error = await pushFluxManifests(
      {
        transport: new SshGitTransport({
          url: bb.cloneUrls('FLUX', slug).ssh!,
          privateKey: pair.privateKeyPem,
          knownHosts: bb.ssh!.knownHosts,
        }),
        ...commitInputOf(
          bundles.from,
          resolveFluxManifestOptions(
            { path: 'clusters/prod', syncUrl: bb.cloneUrls('FLUX', slug).ssh! },
            { fluxVersion: 'v2.9.4' },
          ),
        ),
        author: { name: 'Flux', email: '' },
      },
      { logger },
    ).catch(e => e);
    expect(error).toBeInstanceOf(BranchProtectedError);
    expect(error.message).toContain(
      'refused by the server (pre-receive hook declined): Branch refs/heads/main can only be modified through pull requests.',
    );
  });

  it('opens one pull request holding both commits, with reviewers and default reviewers, and re-runs converge', async () => {
    const slug = repo({ protect: true });
    bb.addDefaultReviewers('FLUX', slug, {
      target: 'main',
      reviewers: ['carol', 'alice'],
    });
    const first = await push(slug, {
      pullRequest: { auto: false, reviewers: ['bob'] },
    });
    expect(first).toMatchObject({
      revision: '',
      sourceBranch: 'flux/prod',
      changed: true,
      pullRequest: {
        id: 1,
        state: 'OPEN',
        fromBranch: 'flux/prod',
        toBranch: 'main',
        title: 'flux: bootstrap Flux v2.9.4 on cluster prod',
      },
    });
    expect(first.pullRequest!.url).toBe(
      `${bb.baseUrl}/projects/FLUX/repos/${slug}/pull-requests/1`,
    );
    // the author (alice, the token's owner) is not her own reviewer
    expect(first.pullRequest!.reviewers.map(r => r.name).sort()).toEqual([
      'bob',
      'carol',
    ]);
    expect(await log(slug, 'flux/prod')).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
      'Initial commit',
    ]);
    expect(await log(slug, 'main')).toEqual(['Initial commit']);
    const [pr] = prs(slug);
    expect(pr.description).toContain('clusters/prod/flux-system');
    expect(lines.join('\n')).toContain(
      `Pull request #1 from flux/prod to main: ${first.pullRequest!.url}`,
    );

    // open and unchanged: no commit, no second pull request
    const head = await git(slug, 'rev-parse', 'flux/prod');
    const again = await push(slug, { pullRequest: { auto: false } });
    expect(again).toMatchObject({ changed: false, pullRequest: { id: 1 } });
    expect(await git(slug, 'rev-parse', 'flux/prod')).toBe(head);
    expect(prs(slug)).toHaveLength(1);

    // open and changed (a newer Flux): the branch moves, the same pull request says so
    const newer = await push(slug, {
      version: 'to',
      pullRequest: { auto: false },
    });
    expect(newer).toMatchObject({ changed: true, pullRequest: { id: 1 } });
    expect((await log(slug, 'flux/prod'))[0]).toBe(
      'Add Flux v2.10.0 component manifests',
    );
    expect(prs(slug)).toHaveLength(1);
    expect(prs(slug)[0].description).toContain('Flux v2.10.0');

    // merged through the REST API: a re-run is a no-op
    const merged = await rest(
      'POST',
      `${prPath(slug, 1, 'merge')}?version=${prs(slug)[0].version}`,
    );
    const mainHead = (await git(slug, 'rev-parse', 'main')).trim();
    expect(merged.properties.mergeCommit.id).toBe(mainHead);
    const noop = await push(slug, {
      version: 'to',
      pullRequest: { auto: false },
    });
    expect(noop).toMatchObject({
      changed: false,
      revision: `main@sha1:${mainHead}`,
      pullRequest: { id: 1, state: 'MERGED' },
    });
    expect(prs(slug)).toHaveLength(1);
    expect((await git(slug, 'rev-parse', 'main')).trim()).toBe(mainHead);
  });

  it('upgrades through a pull request that changes only gotk-components.yaml', async () => {
    const slug = repo();
    await push(slug); // bootstrapped with v2.9.4 by a direct push
    bb.addRestriction('FLUX', slug, {
      type: 'pull-request-only',
      matcher: 'main',
    });
    const r = await push(slug, {
      version: 'to',
      pullRequest: { auto: false },
    });
    expect(r.pullRequest!.title).toBe(
      'flux: upgrade to Flux v2.10.0 on cluster prod',
    );
    const changed = await git(slug, 'diff', '--name-only', 'main...flux/prod');
    expect(changed.trim()).toBe(
      'clusters/prod/flux-system/gotk-components.yaml',
    );
  });

  it('fails clearly on a declined pull request, and the next run opens a new one', async () => {
    const slug = repo({ protect: true });
    const first = await push(slug, { pullRequest: { auto: false } });
    await rest(
      'POST',
      `${prPath(slug, first.pullRequest!.id, 'decline')}?version=${
        prs(slug)[0].version
      }`,
    );
    const error = await push(slug, { pullRequest: { auto: false } }).catch(
      e => e,
    );
    expect(error.name).toBe('ConflictError');
    expect(error.message).toContain('pull request #1');
    expect(error.message).toContain('was declined');
    expect(error.message).toContain('run the template again');
    const next = await push(slug, { pullRequest: { auto: false } });
    expect(next.pullRequest).toMatchObject({ id: 2, state: 'OPEN' });
    expect(await log(slug, 'flux/prod')).toHaveLength(3);
  });

  it('auto: pushes directly to an unprotected branch and opens a pull request on a protected one', async () => {
    const open = repo();
    const direct = await push(open, { pullRequest: { auto: true } });
    expect(direct.pullRequest).toBeUndefined();
    expect(direct.revision).toMatch(/^main@sha1:[0-9a-f]{40}$/);
    expect(lines.join('\n')).toMatch(/pullRequest auto: no read-only/);
    expect(prs(open)).toHaveLength(0);

    const closed = repo({ protect: true });
    lines.splice(0);
    const viaPr = await push(closed, { pullRequest: { auto: true } });
    expect(viaPr.pullRequest).toMatchObject({ id: 1, state: 'OPEN' });
    expect(lines.join('\n')).toMatch(
      /pullRequest auto: branch main has the restriction pull-request-only/,
    );
    // no direct push was even tried
    expect(
      bb
        .state()
        .audit.filter(a => a.slug === closed && a.action === 'PUSH_REJECTED'),
    ).toHaveLength(0);
  });

  it('auto with a token that cannot read restrictions tries the direct push and falls back to a pull request', async () => {
    const slug = repo({ protect: true });
    const r = await push(slug, {
      token: WRITER,
      pullRequest: { auto: true, reviewers: ['bob'] },
    });
    expect(r.pullRequest).toMatchObject({ id: 1, state: 'OPEN' });
    const text = lines.join('\n');
    expect(text).toMatch(/cannot be read with these credentials \(HTTP 401/);
    expect(text).toContain(
      `Opening a pull request instead: the push to branch "main" of ${
        bb.cloneUrls('FLUX', slug).http
      } was refused by the server (pre-receive hook declined): Branch refs/heads/main can only be modified through pull requests.`,
    );
    expect(text).not.toContain(WRITER);
  });

  it('names the reviewers field when a reviewer is not a user', async () => {
    const slug = repo({ protect: true });
    const error = await push(slug, {
      pullRequest: { auto: false, reviewers: ['nobody'] },
    }).catch(e => e);
    expect(error.name).toBe('InputError');
    expect(error.message).toContain('pullRequest.reviewers');
    expect(error.message).toContain('nobody is not a user.');
  });
});

describe('restrictionMatches', () => {
  const m = (type: string, id: string) => ({
    matcher: { id, type: { id: type } },
  });
  it.each([
    [m('BRANCH', 'refs/heads/main'), 'main', true],
    [m('BRANCH', 'refs/heads/main'), 'mainline', false],
    [m('PATTERN', 'main'), 'main', true],
    [m('PATTERN', 'release/*'), 'release/1.0', true],
    [m('PATTERN', 'release/*'), 'release/1/x', false],
    [m('PATTERN', 'release/'), 'release/1/x', true],
    [m('PATTERN', '**/prod'), 'clusters/eu/prod', true],
    [m('PATTERN', 'ma?n'), 'main', true],
    [m('PATTERN', 'PROJECT-*'), 'stable/PROJECT-1', true],
    [m('PATTERN', 'flux/*'), 'main', false],
    [m('MODEL_BRANCH', 'development'), 'main', true],
    [m('MODEL_CATEGORY', 'RELEASE'), 'release/2', true],
    [m('ANY_REF', 'ANY_REF_MATCHER_ID'), 'x', true],
  ])('%j matches %s: %s', (r, branch, expected) => {
    expect(restrictionMatches(r, branch, 'main')).toBe(expected);
  });
});
