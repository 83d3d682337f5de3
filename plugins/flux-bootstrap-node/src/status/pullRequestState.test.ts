import { execFileSync } from 'node:child_process';
import type { ClusterBootstrapStatus } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  BitbucketDouble,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { BitbucketServerClient } from '../bitbucket/client';
import type { BitbucketServerHostConfig } from '../config/bitbucketServer';
import {
  addPullRequestState,
  bitbucketPullRequestLookup,
  type PullRequestLookup,
} from './pullRequestState';

/*
 * The pull-request annotation flux:install writes on the sync Kustomization outlives the task
 * (timeout, `wait: false`, cancel): the status must only call a pull request pending while it
 * is. Pull requests are real ones on the Bitbucket double (REST create, merge with a real merge
 * commit, decline), read with the lookup the backend uses.
 */

const TOKEN = 'canary-prstate-token-5b8e1d';
const PROJECT = 'FLEET';
let bb: BitbucketDouble;
let slug: string;
let host: BitbucketServerHostConfig;
let client: BitbucketServerClient;
let lookup: PullRequestLookup;
let branchNo = 0;

const git = (...args: string[]) =>
  execFileSync('git', ['--git-dir', bb.repoPath(PROJECT, slug), ...args], {
    encoding: 'utf8',
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 't',
      GIT_AUTHOR_EMAIL: 't@example.com',
      GIT_COMMITTER_NAME: 't',
      GIT_COMMITTER_EMAIL: 't@example.com',
    },
  }).trim();
const prPath = `/rest/api/1.0/projects/${PROJECT}/repos/`;

/** A branch with one commit off main and an open pull request from it to main. */
async function openPullRequest(): Promise<{ id: number; url: string }> {
  const branch = `flux/c${++branchNo}`;
  const tree = git('rev-parse', 'main^{tree}');
  const commit = git('commit-tree', tree, '-p', 'main', '-m', branch);
  git('update-ref', `refs/heads/${branch}`, commit);
  const repoRef = { slug, project: { key: PROJECT } };
  const res = await client.request<any>(
    'POST',
    `${prPath}${slug}/pull-requests`,
    {
      body: {
        title: `bootstrap ${branch}`,
        fromRef: { id: `refs/heads/${branch}`, repository: repoRef },
        toRef: { id: 'refs/heads/main', repository: repoRef },
        reviewers: [{ user: { name: 'bob' } }],
      },
    },
  );
  expect(res.status).toBe(201);
  return { id: res.body.id, url: res.body.links.self[0].href };
}
async function settle(id: number, how: 'merge' | 'decline') {
  const path = `${prPath}${slug}/pull-requests/${id}`;
  const { version } = (await client.request<any>('GET', path)).body;
  const res = await client.request<any>('POST', `${path}/${how}`, {
    query: { version },
    body: how === 'decline' ? {} : undefined,
  });
  expect(res.status).toBe(200);
  return res.body;
}

function status(
  state: ClusterBootstrapStatus['state'],
  lastAppliedRevision?: string,
): ClusterBootstrapStatus {
  return {
    cluster: 'prod',
    state,
    checkedAt: new Date().toISOString(),
    source: {
      kind: 'GitRepository',
      name: 'flux-system',
      namespace: 'flux-system',
      branch: 'main',
      ready: true,
    },
    sync: {
      name: 'flux-system',
      namespace: 'flux-system',
      ready: state === 'ready',
      lastAppliedRevision,
      message: state === 'failing' ? 'kustomization path not found' : undefined,
    },
  } as ClusterBootstrapStatus;
}

beforeAll(async () => {
  bb = await startBitbucketDouble();
  bb.addUser({ name: 'alice', email: 'alice@example.com' });
  bb.addUser({ name: 'bob', displayName: 'Bob B', email: 'bob@example.com' });
  bb.addProject({ key: PROJECT, name: 'Fleet' });
  bb.grantProject(PROJECT, { user: 'alice' }, 'PROJECT_WRITE');
  bb.grantProject(PROJECT, { user: 'bob' }, 'PROJECT_READ');
  bb.addToken({ token: TOKEN, user: 'alice' });
  slug = bb.createRepo(PROJECT, 'fleet-infra', {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  host = {
    host: bb.host,
    apiBaseUrl: bb.apiBaseUrl,
    baseUrl: bb.baseUrl,
    requestTimeoutMs: 10_000,
    retries: 0,
    auth: { token: TOKEN },
  } as BitbucketServerHostConfig;
  client = new BitbucketServerClient(host, { token: TOKEN });
  lookup = bitbucketPullRequestLookup({ requestTimeoutMs: 10_000 });
});

afterAll(async () => {
  client?.close();
  await bb?.stop();
});

const read = (s: ClusterBootstrapStatus, url: string, l = lookup) =>
  addPullRequestState(s, url, { hosts: [host], lookup: l });

describe('addPullRequestState against real pull requests', () => {
  it('an open pull request on a sync that cannot apply yet: awaiting-merge with its reviewers', async () => {
    const { id, url } = await openPullRequest();
    const s = await read(status('failing'), url);
    expect(s.state).toBe('awaiting-merge');
    expect(s.reason).toContain(`waits for pull request #${id} to be merged`);
    expect(s.pullRequest).toMatchObject({
      id,
      url,
      state: 'OPEN',
      toBranch: 'main',
      reviewers: [expect.objectContaining({ name: 'bob' })],
    });
  });

  it('merged, Flux not there yet: installing with the pull request; once Flux applied the merge, no pull request', async () => {
    const { id, url } = await openPullRequest();
    const merged = await settle(id, 'merge');
    const sha = merged.properties.mergeCommit.id as string;
    expect(git('rev-parse', 'main')).toBe(sha);

    const before = await read(status('failing'), url);
    expect(before.state).toBe('installing');
    expect(before.reason).toBe(
      `Pull request #${id} was merged; Flux has not applied the merge yet`,
    );
    expect(before.pullRequest?.state).toBe('MERGED');

    // the task that wrote the annotation ended before the merge (timeout, wait: false): the
    // annotation is still there, Flux applied the merge commit
    const ready = await read(status('ready', `main@sha1:${sha}`), url);
    expect(ready.state).toBe('ready');
    expect(ready.pullRequest).toBeUndefined();
    expect(ready.reason).toBeUndefined();

    // applied, then failing for a reason of its own: Flux's message, not the pull request's
    const failing = await read(status('failing', `main@sha1:${sha}`), url);
    expect(failing.state).toBe('failing');
    expect(failing.pullRequest).toBeUndefined();
    expect(failing.reason).toBeUndefined();
  });

  it('declined: failing with the link while nothing applies, and never shown as pending', async () => {
    const { id, url } = await openPullRequest();
    await settle(id, 'decline');
    const s = await read(status('failing'), url);
    expect(s.state).toBe('failing');
    expect(s.reason).toContain(`Pull request #${id} (${url}) was declined`);
    expect(s.pullRequest).toBeUndefined();
    const ready = await read(status('ready', 'main@sha1:abc'), url);
    expect(ready).toMatchObject({ state: 'ready' });
    expect(ready.pullRequest).toBeUndefined();
  });

  it('an open pull request on a cluster whose sync applies (an upgrade) stays listed; one Bitbucket cannot describe does not', async () => {
    const { id, url } = await openPullRequest();
    const upgrade = await read(status('ready', 'main@sha1:abc'), url);
    expect(upgrade.state).toBe('ready');
    expect(upgrade.pullRequest).toMatchObject({ id, state: 'OPEN' });

    const noAnswer: PullRequestLookup = async () => {
      throw new Error('Bitbucket answered 401');
    };
    const unknownReady = await read(
      status('ready', 'main@sha1:abc'),
      url,
      noAnswer,
    );
    expect(unknownReady.pullRequest).toBeUndefined();
    const unknownWaiting = await read(status('installing'), url, noAnswer);
    expect(unknownWaiting.state).toBe('awaiting-merge');
    expect(unknownWaiting.reason).toContain('Bitbucket did not say more');
    expect(
      JSON.stringify([upgrade, unknownReady, unknownWaiting]),
    ).not.toContain(TOKEN);
  });
});
