import { listBranchesSync } from '../git/cli';
import { commitFile, gitClient, gitOk, tempDirs } from '../git/testUtils';
import { BitbucketDouble, startBitbucketDouble } from './double';
import { addUsersWithTokens, bearer, errorOf, restClient } from './testClient';

jest.setTimeout(90_000);

const PRS = '/rest/api/1.0/projects/FLUX/repos/fleet/pull-requests';
const ref = (id: string) => ({
  id,
  repository: { slug: 'fleet', project: { key: 'FLUX' } },
});

describe('Bitbucket double: pull requests', () => {
  let bb: BitbucketDouble;
  let call: ReturnType<typeof restClient>;
  const tmp = tempDirs();
  let work: string;
  let url: string;

  const head = (branch: string) =>
    listBranchesSync(bb.repoPath('FLUX', 'fleet')).find(b => b.name === branch)
      ?.sha;
  /** `git push -q origin <refspec>` from the work clone as the token's user. */
  const pushAs = (token: string, refspec: string) =>
    gitOk(['-C', work, ...bearer(token), 'push', '-q', 'origin', refspec]);
  /** Commits a file on a local branch (created from `from`) and pushes it as alice. */
  const pushBranch = async (
    branch: string,
    file: string,
    content: string,
    from = 'origin/main',
  ) => {
    await gitOk([
      '-C',
      work,
      ...bearer('alice-token'),
      'fetch',
      '-q',
      'origin',
    ]);
    await gitOk(['-C', work, 'checkout', '-q', '-B', branch, from]);
    const sha = await commitFile(work, file, content, `change ${file}`);
    await pushAs('alice-token', `HEAD:refs/heads/${branch}`);
    return sha;
  };
  const merge = (pr: { id: number; version: number }, token: string) =>
    call('POST', `${PRS}/${pr.id}/merge?version=${pr.version}`, { token });
  const mergeability = (pr: { id: number }, token: string) =>
    call('GET', `${PRS}/${pr.id}/merge`, { token });
  const open = async (from: string, to = 'main', extra: object = {}) =>
    call('POST', PRS, {
      token: 'alice-token',
      body: {
        title: `Bootstrap from ${from}`,
        description: 'Flux v2.9.4',
        state: 'OPEN',
        open: true,
        closed: false,
        locked: false,
        fromRef: ref(`refs/heads/${from}`),
        toRef: ref(`refs/heads/${to}`),
        ...extra,
      },
    });

  beforeAll(async () => {
    bb = await startBitbucketDouble({ contextPath: '/bitbucket' });
    call = restClient(bb);
    bb.addUser({
      name: 'alice',
      displayName: 'Alice Liddell',
      email: 'alice@example.com',
    });
    bb.addToken({ token: 'alice-token', user: 'alice' });
    bb.addUser({
      name: 'bob',
      displayName: 'Bob Builder',
      email: 'bob@example.com',
    });
    bb.addToken({ token: 'bob-token', user: 'bob' });
    addUsersWithTokens(bb, 'carol', 'dave');
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_WRITE');
    bb.grantProject('FLUX', { user: 'carol' }, 'PROJECT_READ');
    bb.createRepo('FLUX', 'fleet', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    url = bb.cloneUrls('FLUX', 'fleet').http;
    work = tmp.make('work');
    await gitOk([...bearer('alice-token'), 'clone', '-q', url, work]);
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  describe('create, get, list', () => {
    let prHead: string;
    let mainHead: string;
    beforeAll(async () => {
      await pushBranch('flux/prod', 'clusters/prod/a.yaml', 'a: 1\n');
      prHead = await commitFile(work, 'clusters/prod/b.yaml', 'b: 1\n');
      await pushAs('alice-token', 'HEAD:refs/heads/flux/prod');
      mainHead = head('main')!;
    });

    it('POST …/pull-requests → 201 RestPullRequest (fromRef/toRef with latestCommit, reviewers, links.self with the context path)', async () => {
      const r = await open('flux/prod', 'main', {
        reviewers: [{ user: { name: 'bob' } }],
      });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({
        id: 1,
        version: 0,
        title: 'Bootstrap from flux/prod',
        description: 'Flux v2.9.4',
        state: 'OPEN',
        open: true,
        closed: false,
        locked: false,
        draft: false,
        fromRef: {
          id: 'refs/heads/flux/prod',
          displayId: 'flux/prod',
          latestCommit: prHead,
          type: 'BRANCH',
          repository: { slug: 'fleet', project: { key: 'FLUX' } },
        },
        toRef: {
          id: 'refs/heads/main',
          displayId: 'main',
          latestCommit: mainHead,
        },
        author: {
          user: { name: 'alice' },
          role: 'AUTHOR',
          approved: false,
          status: 'UNAPPROVED',
        },
        reviewers: [
          {
            user: { name: 'bob', slug: 'bob' },
            role: 'REVIEWER',
            approved: false,
            status: 'UNAPPROVED',
          },
        ],
        participants: [],
        links: {
          self: [
            { href: `${bb.baseUrl}/projects/FLUX/repos/fleet/pull-requests/1` },
          ],
        },
      });
      expect(bb.baseUrl).toMatch(/\/bitbucket$/);
      expect(r.body.createdDate).toEqual(expect.any(Number));
      const got = await call(
        'GET',
        '/rest/api/latest/projects/flux/repos/fleet/pull-requests/1',
        { token: 'carol-token' },
      );
      expect(got.body).toEqual(r.body);
      const page = await fetch(r.body.links.self[0].href);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('Bootstrap from flux/prod');
      expect(
        bb.state().audit.find(a => a.action === 'PR_OPENED'),
      ).toMatchObject({
        actor: 'alice',
        via: 'http-access-token',
        projectKey: 'FLUX',
        slug: 'fleet',
        details: {
          id: 1,
          fromRef: 'refs/heads/flux/prod',
          toRef: 'refs/heads/main',
          reviewers: ['bob'],
        },
      });
    });

    it('the same open from/to pair again → 409 DuplicatePullRequestException carrying existingPullRequest', async () => {
      const r = await open('flux/prod');
      expect(r.status).toBe(409);
      expect(errorOf(r)).toMatchObject({
        exceptionName:
          'com.atlassian.bitbucket.pull.DuplicatePullRequestException',
        existingPullRequest: {
          id: 1,
          version: 0,
          state: 'OPEN',
          links: {
            self: [
              {
                href: `${bb.baseUrl}/projects/FLUX/repos/fleet/pull-requests/1`,
              },
            ],
          },
        },
      });
      expect(bb.state().pullRequests).toHaveLength(1);
    });

    it("refuses bad requests with Bitbucket's error shapes and creates nothing", async () => {
      const missing = await open('flux/nope');
      expect(missing.status).toBe(404);
      expect(errorOf(missing)).toMatchObject({
        context: 'fromRef',
        exceptionName:
          'com.atlassian.bitbucket.repository.NoSuchBranchException',
      });
      const noTarget = await open('flux/prod', 'develop');
      expect(noTarget.status).toBe(404);
      const reviewers = await open('flux/prod', 'main', {
        title: 'other target',
        toRef: ref('refs/heads/main'),
        fromRef: ref('refs/heads/main'),
      });
      expect(reviewers.status).toBe(409); // same source and target
      expect(errorOf(reviewers).exceptionName).toMatch(
        /InvalidPullRequestTargetException$/,
      );
      await pushBranch('flux/reviewers', 'r.txt', 'r\n');
      const bad = await open('flux/reviewers', 'main', {
        reviewers: [
          { user: { name: 'nobody' } },
          { user: { name: 'alice' } },
          { user: { name: 'bob' } },
        ],
      });
      expect(bad.status).toBe(409);
      expect(errorOf(bad)).toMatchObject({
        context: 'reviewers',
        message:
          'Errors encountered while adding some reviewers to this pull request.',
        exceptionName:
          'com.atlassian.bitbucket.pull.InvalidPullRequestReviewersException',
        reviewerErrors: [
          {
            context: 'nobody',
            message: 'nobody is not a user.',
            exceptionName: null,
          },
          {
            context: 'alice',
            message:
              'alice is the author and cannot be included as a reviewer.',
            exceptionName: null,
          },
        ],
        validReviewers: [expect.objectContaining({ name: 'bob' })],
      });
      const noTitle = await open('flux/reviewers', 'main', { title: ' ' });
      expect(noTitle.status).toBe(400);
      expect(errorOf(noTitle).context).toBe('title');
      const toTag = await open('flux/reviewers', 'main', {
        toRef: ref('refs/tags/v1'),
      });
      expect(toTag.status).toBe(400);
      expect(errorOf(toTag).context).toBe('toRef');
      await pushAs('alice-token', 'origin/main:refs/heads/flux/empty');
      const empty = await open('flux/empty');
      expect(empty.status).toBe(409);
      expect(errorOf(empty).exceptionName).toBe(
        'com.atlassian.bitbucket.pull.EmptyPullRequestException',
      );
      const stranger = await call('POST', PRS, {
        token: 'dave-token',
        body: {
          title: 't',
          fromRef: ref('refs/heads/flux/reviewers'),
          toRef: ref('refs/heads/main'),
        },
      });
      expect(stranger.status).toBe(401);
      expect(errorOf(stranger).exceptionName).toBe(
        'com.atlassian.bitbucket.AuthorisationException',
      );
      expect(bb.state().pullRequests.map(p => p.id)).toEqual([1]);
    });

    it('lists with state, direction, at, order and paging', async () => {
      await pushBranch('release', 'rel.txt', 'r\n');
      expect((await open('flux/prod', 'release')).status).toBe(201); // #2
      expect((await open('flux/reviewers')).status).toBe(201); // #3
      const ids = async (q: string) =>
        (
          await call('GET', `${PRS}${q}`, { token: 'carol-token' })
        ).body.values.map((p: any) => p.id);
      expect(await ids('')).toEqual([3, 2, 1]);
      expect(await ids('?order=OLDEST')).toEqual([1, 2, 3]);
      expect(await ids('?at=refs/heads/release')).toEqual([2]);
      expect(await ids('?direction=OUTGOING&at=refs/heads/flux/prod')).toEqual([
        2, 1,
      ]);
      expect(await ids('?direction=INCOMING&at=refs/heads/flux/prod')).toEqual(
        [],
      );
      expect(await ids('?state=MERGED')).toEqual([]);
      expect(await ids('?username.1=bob&role.1=REVIEWER')).toEqual([1]);
      const p1 = await call('GET', `${PRS}?limit=2`, { token: 'carol-token' });
      expect(p1.body).toMatchObject({
        size: 2,
        limit: 2,
        isLastPage: false,
        nextPageStart: 2,
        start: 0,
      });
      const p2 = await call(
        'GET',
        `${PRS}?limit=2&start=${p1.body.nextPageStart}`,
        { token: 'carol-token' },
      );
      expect(p2.body).toMatchObject({ size: 1, isLastPage: true });
      const bad = await call('GET', `${PRS}?state=CLOSED`, {
        token: 'carol-token',
      });
      expect(bad.status).toBe(400);
      const declined = await call('POST', `${PRS}/3/decline?version=0`, {
        token: 'alice-token',
      });
      expect(declined.status).toBe(200);
      expect(declined.body).toMatchObject({
        state: 'DECLINED',
        open: false,
        closed: true,
        version: 1,
      });
      expect(await ids('')).toEqual([2, 1]);
      expect(await ids('?state=DECLINED')).toEqual([3]);
      expect(await ids('?state=ALL')).toEqual([3, 2, 1]);
    });

    it('a push to the source branch bumps the version and fromRef.latestCommit; commits and changes follow it', async () => {
      await gitOk(['-C', work, 'checkout', '-q', 'flux/prod']);
      const newer = await commitFile(work, 'clusters/prod/c.yaml', 'c: 1\n');
      await pushAs('alice-token', 'HEAD:refs/heads/flux/prod');
      const r = await call('GET', `${PRS}/1`, { token: 'carol-token' });
      expect(r.body.version).toBe(1);
      expect(r.body.fromRef.latestCommit).toBe(newer);
      expect(bb.state().pullRequests.find(p => p.id === 1)).toMatchObject({
        version: 1,
        fromCommit: newer,
      });
      const commits = await call('GET', `${PRS}/1/commits?withCounts=true`, {
        token: 'carol-token',
      });
      expect(commits.body.values.map((c: any) => c.message)).toEqual([
        'edit clusters/prod/c.yaml',
        'edit clusters/prod/b.yaml',
        'change clusters/prod/a.yaml',
      ]);
      expect(commits.body).toMatchObject({ totalCount: 3, authorCount: 1 });
      const changes = await call('GET', `${PRS}/1/changes`, {
        token: 'carol-token',
      });
      expect(changes.body.toHash).toBe(newer);
      expect(
        changes.body.values.map((c: any) => [c.type, c.path.toString]),
      ).toEqual([
        ['ADD', 'clusters/prod/a.yaml'],
        ['ADD', 'clusters/prod/b.yaml'],
        ['ADD', 'clusters/prod/c.yaml'],
      ]);
      expect(changes.body.values[0].path).toMatchObject({
        components: ['clusters', 'prod', 'a.yaml'],
        parent: 'clusters/prod',
        name: 'a.yaml',
        extension: 'yaml',
      });
    });

    it('PUT updates with the current version (stale → 409 PullRequestOutOfDateException; none → 400)', async () => {
      const stale = await call('PUT', `${PRS}/1`, {
        token: 'alice-token',
        body: {
          version: 0,
          title: 'New title',
          reviewers: [{ user: { name: 'bob' } }],
        },
      });
      expect(stale.status).toBe(409);
      expect(errorOf(stale)).toMatchObject({
        message:
          'You are attempting to modify a pull request based on out-of-date information.',
        exceptionName:
          'com.atlassian.bitbucket.pull.PullRequestOutOfDateException',
        currentVersion: 1,
        expectedVersion: 0,
        pullRequest: { id: 1, version: 1 },
      });
      const none = await call('PUT', `${PRS}/1`, {
        token: 'alice-token',
        body: { title: 'x' },
      });
      expect(none.status).toBe(400);
      expect(errorOf(none).context).toBe('version');
      const ok = await call('PUT', `${PRS}/1`, {
        token: 'alice-token',
        body: {
          version: 1,
          title: 'Bootstrap Flux on prod',
          description: 'Flux v2.9.4 — components: source, kustomize',
          reviewers: [{ user: { name: 'bob' } }, { user: { name: 'carol' } }],
        },
      });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatchObject({
        version: 2,
        title: 'Bootstrap Flux on prod',
      });
      expect(ok.body.reviewers.map((x: any) => x.user.name)).toEqual([
        'bob',
        'carol',
      ]);
      const byReader = await call('PUT', `${PRS}/1`, {
        token: 'carol-token',
        body: { version: 2, title: 'mine' },
      });
      expect(byReader.status).toBe(401);
    });

    it('reviewers set their status with PUT …/participants/{their slug}; the author and others cannot', async () => {
      const approve = await call('PUT', `${PRS}/1/participants/bob`, {
        token: 'bob-token',
        body: { status: 'APPROVED' },
      });
      expect(approve.status).toBe(200);
      const fromSha = head('flux/prod');
      expect(approve.body).toMatchObject({
        user: { name: 'bob' },
        role: 'REVIEWER',
        approved: true,
        status: 'APPROVED',
        lastReviewedCommit: fromSha,
      });
      const work1 = await call('PUT', `${PRS}/1/participants/carol`, {
        token: 'carol-token',
        body: { status: 'NEEDS_WORK' },
      });
      expect(work1.body).toMatchObject({
        approved: false,
        status: 'NEEDS_WORK',
      });
      const forOther = await call('PUT', `${PRS}/1/participants/carol`, {
        token: 'bob-token',
        body: { status: 'APPROVED' },
      });
      expect(forOther.status).toBe(401);
      const author = await call('PUT', `${PRS}/1/participants/alice`, {
        token: 'alice-token',
        body: { status: 'APPROVED' },
      });
      expect(author.status).toBe(400);
      const badStatus = await call('PUT', `${PRS}/1/participants/bob`, {
        token: 'bob-token',
        body: { status: 'LGTM' },
      });
      expect(badStatus.status).toBe(400);
      const pr = (await call('GET', `${PRS}/1`, { token: 'carol-token' })).body;
      expect(pr.version).toBe(2); // reviews do not change the version
      expect(pr.reviewers.map((x: any) => [x.user.name, x.status])).toEqual([
        ['bob', 'APPROVED'],
        ['carol', 'NEEDS_WORK'],
      ]);
      const participants = await call('GET', `${PRS}/1/participants`, {
        token: 'carol-token',
      });
      expect(
        participants.body.values.map((x: any) => [x.user.name, x.role]),
      ).toEqual([
        ['alice', 'AUTHOR'],
        ['bob', 'REVIEWER'],
        ['carol', 'REVIEWER'],
      ]);
      expect(bb.state().pullRequests[0].reviewers).toEqual([
        { user: 'bob', status: 'APPROVED', approved: true },
        { user: 'carol', status: 'NEEDS_WORK', approved: false },
      ]);
    });

    it('merge: stale or missing version → 409 out of date; the right version writes a real merge commit (parents: target head, source head)', async () => {
      const before = head('main')!;
      const source = head('flux/prod')!;
      const stale = await call('POST', `${PRS}/1/merge?version=1`, {
        token: 'bob-token',
        headers: { 'X-Atlassian-Token': 'no-check' },
      });
      expect(stale.status).toBe(409);
      expect(errorOf(stale)).toMatchObject({
        exceptionName:
          'com.atlassian.bitbucket.pull.PullRequestOutOfDateException',
        currentVersion: 2,
        expectedVersion: 1,
      });
      const missing = await call('POST', `${PRS}/1/merge`, {
        token: 'bob-token',
      });
      expect(missing.status).toBe(409);
      expect(errorOf(missing)).toMatchObject({
        currentVersion: 2,
        expectedVersion: -1,
      });
      const byReader = await call('POST', `${PRS}/1/merge?version=2`, {
        token: 'carol-token',
      });
      expect(byReader.status).toBe(401);
      expect(head('main')).toBe(before);

      const can = await call('GET', `${PRS}/1/merge`, { token: 'bob-token' });
      expect(can.body).toEqual({
        canMerge: true,
        conflicted: false,
        outcome: 'CLEAN',
        vetoes: [],
      });
      const merged = await call('POST', `${PRS}/1/merge?version=2`, {
        token: 'bob-token',
      });
      expect(merged.status).toBe(200);
      expect(merged.body).toMatchObject({
        state: 'MERGED',
        open: false,
        closed: true,
        version: 3,
      });
      const mergeCommit = merged.body.properties.mergeCommit.id;
      expect(head('main')).toBe(mergeCommit);
      const parents = (
        await gitOk([
          '-C',
          bb.repoPath('FLUX', 'fleet'),
          'rev-list',
          '--parents',
          '-n',
          '1',
          mergeCommit,
        ])
      )
        .trim()
        .split(' ');
      expect(parents).toEqual([mergeCommit, before, source]);
      const meta = await gitOk([
        '-C',
        bb.repoPath('FLUX', 'fleet'),
        'log',
        '-1',
        '--format=%an <%ae>%n%cn <%ce>%n%B',
        mergeCommit,
      ]);
      expect(meta.split('\n').slice(0, 5)).toEqual([
        'Bob Builder <bob@example.com>',
        'Bob Builder <bob@example.com>',
        'Pull request #1: Bootstrap Flux on prod',
        '',
        'Merge in FLUX/fleet from flux/prod to main',
      ]);
      expect(meta).toContain(`* commit '${source}':`);
      const again = await call('POST', `${PRS}/1/merge?version=3`, {
        token: 'bob-token',
      });
      expect(again.status).toBe(409);
      const canAfter = await call('GET', `${PRS}/1/merge`, {
        token: 'bob-token',
      });
      expect(canAfter.status).toBe(409);
      expect(bb.state().pullRequests[0]).toMatchObject({
        state: 'MERGED',
        mergeCommit,
        closedBy: 'bob',
      });
      expect(
        bb.state().audit.find(a => a.action === 'PR_MERGED'),
      ).toMatchObject({
        actor: 'bob',
        details: {
          id: 1,
          mergeCommit,
          strategy: 'no-ff',
          toRef: 'refs/heads/main',
        },
      });
    });

    it('decline and reopen check the version and the state', async () => {
      const stale = await call('POST', `${PRS}/3/reopen?version=0`, {
        token: 'alice-token',
      });
      expect(stale.status).toBe(409);
      const reopened = await call('POST', `${PRS}/3/reopen?version=1`, {
        token: 'alice-token',
      });
      expect(reopened.body).toMatchObject({ state: 'OPEN', version: 2 });
      expect(reopened.body.closedDate).toBeUndefined();
      const notDeclined = await call('POST', `${PRS}/3/reopen?version=2`, {
        token: 'alice-token',
      });
      expect(notDeclined.status).toBe(409);
      const declined = await call('POST', `${PRS}/3/decline`, {
        token: 'alice-token',
        body: { version: 2 },
      });
      expect(declined.body).toMatchObject({ state: 'DECLINED', version: 3 });
      const again = await call('POST', `${PRS}/3/decline?version=3`, {
        token: 'alice-token',
      });
      expect(again.status).toBe(409);
      // a declined pull request does not block a new one for the same branches
      expect((await open('flux/reviewers')).status).toBe(201);
    });

    it('approve/unapprove (deprecated aliases) act for the caller; DELETE needs the current version', async () => {
      const pr = (
        await call(
          'GET',
          `${PRS}?direction=OUTGOING&at=refs/heads/flux/reviewers`,
          {
            token: 'carol-token',
          },
        )
      ).body.values[0];
      const approved = await call('POST', `${PRS}/${pr.id}/approve`, {
        token: 'carol-token',
      });
      expect(approved.body).toMatchObject({
        user: { name: 'carol' },
        role: 'PARTICIPANT',
        approved: true,
      });
      const withdrawn = await call('DELETE', `${PRS}/${pr.id}/approve`, {
        token: 'carol-token',
      });
      expect(withdrawn.body).toMatchObject({ status: 'UNAPPROVED' });
      const stale = await call('DELETE', `${PRS}/${pr.id}`, {
        token: 'alice-token',
        body: { version: pr.version + 1 },
      });
      expect(stale.status).toBe(409);
      const notAuthor = await call('DELETE', `${PRS}/${pr.id}`, {
        token: 'bob-token',
        body: { version: pr.version },
      });
      expect(notAuthor.status).toBe(401);
      const deleted = await call('DELETE', `${PRS}/${pr.id}`, {
        token: 'alice-token',
        body: { version: pr.version },
      });
      expect(deleted.status).toBe(204);
      expect(
        (await call('GET', `${PRS}/${pr.id}`, { token: 'alice-token' })).status,
      ).toBe(404);
      expect(bb.state().audit.filter(a => a.action === 'PR_DELETED')).toEqual([
        expect.objectContaining({ actor: 'alice', details: { id: pr.id } }),
      ]);
    });
  });

  describe('merge checks: conflicts, branch permissions, default reviewers, minimum approvals, access tokens', () => {
    it('a conflicting pull request cannot be merged (409 PullRequestMergeVetoedException, conflicted)', async () => {
      await pushBranch('conflict/a', 'shared.txt', 'from a\n');
      await pushBranch('conflict/b', 'shared.txt', 'from b\n');
      const a = (await open('conflict/a')).body;
      const b = (await open('conflict/b')).body;
      expect((await merge(a, 'alice-token')).status).toBe(200);
      const can = await mergeability(b, 'alice-token');
      expect(can.body).toEqual({
        canMerge: false,
        conflicted: true,
        outcome: 'CONFLICTED',
        vetoes: [],
      });
      const before = head('main');
      const r = await merge(b, 'alice-token');
      expect(r.status).toBe(409);
      expect(errorOf(r)).toMatchObject({
        message: 'The pull request has conflicts and cannot be merged.',
        exceptionName:
          'com.atlassian.bitbucket.pull.PullRequestMergeVetoedException',
        conflicted: true,
        vetoes: [],
      });
      expect(head('main')).toBe(before);
    });

    it('pull-request-only does not block the merge (no hook runs); read-only vetoes it for users it does not exempt', async () => {
      const prOnly = bb.addRestriction('FLUX', 'fleet', {
        type: 'pull-request-only',
        matcher: 'main',
      });
      const sha = await pushBranch('feature/ok', 'ok.txt', 'ok\n');
      const direct = await gitClient([
        '-C',
        work,
        ...bearer('bob-token'),
        'push',
        'origin',
        'HEAD:refs/heads/main',
      ]);
      expect(direct.stderr).toContain(
        'can only be modified through pull requests',
      );
      const pr = (await open('feature/ok')).body;
      const merged = await merge(pr, 'bob-token');
      expect(merged.status).toBe(200);
      const parents = (
        await gitOk([
          '-C',
          bb.repoPath('FLUX', 'fleet'),
          'log',
          '-1',
          '--format=%P',
          'main',
        ])
      ).trim();
      expect(parents.split(' ')[1]).toBe(sha);
      bb.removeRestriction(prOnly);

      const ro = bb.addRestriction('FLUX', undefined, {
        type: 'read-only',
        matcher: 'main',
        users: ['alice'],
      });
      await pushBranch('feature/ro', 'ro.txt', 'ro\n');
      const pr2 = (await open('feature/ro')).body;
      const can = await mergeability(pr2, 'bob-token');
      expect(can.body.canMerge).toBe(false);
      expect(can.body.vetoes).toEqual([
        {
          summaryMessage: 'Branch permissions prevent this merge',
          detailedMessage:
            'Branch refs/heads/main is read-only. You are not permitted to merge pull requests into it.',
        },
      ]);
      const vetoed = await merge(pr2, 'bob-token');
      expect(vetoed.status).toBe(409);
      expect(errorOf(vetoed)).toMatchObject({
        message: 'Merging the pull request has been vetoed.',
        exceptionName:
          'com.atlassian.bitbucket.pull.PullRequestMergeVetoedException',
        conflicted: false,
        vetoes: [{ summaryMessage: 'Branch permissions prevent this merge' }],
      });
      const exempt = await merge(pr2, 'alice-token');
      expect(exempt.status).toBe(200);
      bb.removeRestriction(ro);
    });

    it('default reviewers: conditions over REST, the reviewers lookup, not added by POST, requiredApprovals enforced at merge', async () => {
      const repo = (
        await call('GET', '/rest/api/1.0/projects/FLUX/repos/fleet', {
          token: 'alice-token',
        })
      ).body;
      const created = await call(
        'POST',
        '/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/condition',
        {
          token: 'alice-token',
          body: {
            sourceMatcher: { id: 'flux/*', type: { id: 'PATTERN' } },
            targetMatcher: { id: 'refs/heads/main', type: { id: 'BRANCH' } },
            reviewers: [{ name: 'carol' }, { name: 'bob' }],
            requiredApprovals: 1,
          },
        },
      );
      expect(created.status).toBe(200);
      expect(created.body).toMatchObject({
        id: expect.any(Number),
        scope: { type: 'REPOSITORY', resourceId: repo.id },
        sourceRefMatcher: {
          id: 'flux/*',
          displayId: 'flux/*',
          type: { id: 'PATTERN', name: 'Pattern' },
        },
        targetRefMatcher: {
          id: 'refs/heads/main',
          displayId: 'main',
          type: { id: 'BRANCH', name: 'Branch' },
        },
        reviewers: [
          expect.objectContaining({ name: 'carol' }),
          expect.objectContaining({ name: 'bob' }),
        ],
        requiredApprovals: 1,
      });
      const project = await call(
        'POST',
        '/rest/default-reviewers/latest/projects/FLUX/condition',
        {
          token: 'alice-token',
          body: {
            sourceMatcher: {
              id: 'ANY_REF_MATCHER_ID',
              type: { id: 'ANY_REF' },
            },
            targetMatcher: { id: 'release', type: { id: 'BRANCH' } },
            reviewers: [{ name: 'dave' }],
            requiredApprovals: 0,
          },
        },
      );
      expect(project.status).toBe(200);
      const listed = await call(
        'GET',
        '/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/conditions',
        {
          token: 'alice-token',
        },
      );
      expect(listed.body.map((c: any) => c.scope.type)).toEqual([
        'REPOSITORY',
        'PROJECT',
      ]);
      const notAdmin = await call(
        'POST',
        '/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/condition',
        {
          token: 'bob-token',
          body: created.body,
        },
      );
      expect(notAdmin.status).toBe(401);
      const tooMany = await call(
        'POST',
        '/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/condition',
        {
          token: 'alice-token',
          body: {
            sourceMatcher: {
              id: 'ANY_REF_MATCHER_ID',
              type: { id: 'ANY_REF' },
            },
            targetMatcher: {
              id: 'ANY_REF_MATCHER_ID',
              type: { id: 'ANY_REF' },
            },
            reviewers: [{ name: 'bob' }],
            requiredApprovals: 2,
          },
        },
      );
      expect(errorOf(tooMany).context).toBe('requiredApprovals');

      const lookup = (src: string, dst: string) =>
        call(
          'GET',
          `/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/reviewers?sourceRepoId=${repo.id}&targetRepoId=${repo.id}&sourceRefId=${src}&targetRefId=${dst}`,
          { token: 'carol-token' },
        );
      const users = await lookup('refs/heads/flux/dev', 'refs/heads/main');
      expect(users.status).toBe(200);
      expect(users.body.map((u: any) => u.name)).toEqual(['carol', 'bob']);
      expect(
        (await lookup('refs/heads/feature/x', 'refs/heads/main')).body,
      ).toEqual([]);
      expect(
        (await lookup('refs/heads/feature/x', 'refs/heads/release')).body.map(
          (u: any) => u.name,
        ),
      ).toEqual(['dave']);
      const missing = await call(
        'GET',
        '/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/reviewers',
        {
          token: 'carol-token',
        },
      );
      expect(missing.status).toBe(400);

      await pushBranch('flux/dev', 'dev.txt', 'dev\n');
      const pr = (await open('flux/dev')).body;
      expect(pr.reviewers).toEqual([]); // Bitbucket's REST create does not add default reviewers
      const vetoed = await merge(pr, 'alice-token');
      expect(vetoed.status).toBe(409);
      expect(errorOf(vetoed).vetoes).toEqual([
        {
          summaryMessage: 'Not enough approvals from default reviewers',
          detailedMessage:
            '1 more approval from the default reviewers (carol, bob) is required to merge this pull request.',
        },
      ]);
      bb.setReviewerStatus('FLUX', 'fleet', pr.id, 'carol', 'APPROVED');
      const merged = await merge(pr, 'alice-token');
      expect(merged.status).toBe(200);
      for (const c of listed.body) {
        const path =
          c.scope.type === 'PROJECT'
            ? `/rest/default-reviewers/1.0/projects/FLUX/condition/${c.id}`
            : `/rest/default-reviewers/1.0/projects/FLUX/repos/fleet/condition/${c.id}`;
        expect(
          (await call('DELETE', path, { token: 'alice-token' })).status,
        ).toBe(204);
      }
      expect(bb.state().defaultReviewerConditions).toEqual([]);
    });

    it('minimum approvals and "needs work" merge checks; a project access token cannot merge (no e-mail for the merge commit)', async () => {
      bb.setMergeChecks('FLUX', 'fleet', {
        requiredApprovals: 1,
        noNeedsWork: true,
      });
      await pushBranch('flux/checks', 'checks.txt', 'c\n');
      const pr = (
        await open('flux/checks', 'main', {
          reviewers: [{ user: { name: 'bob' } }],
        })
      ).body;
      const can = await mergeability(pr, 'alice-token');
      expect(can.body.vetoes.map((v: any) => v.summaryMessage)).toEqual([
        'Not enough approvals',
      ]);
      await call('PUT', `${PRS}/${pr.id}/participants/bob`, {
        token: 'bob-token',
        body: { status: 'NEEDS_WORK' },
      });
      const needsWork = await mergeability(pr, 'alice-token');
      expect(needsWork.body.vetoes.map((v: any) => v.summaryMessage)).toEqual([
        'Not enough approvals',
        'Changes requested',
      ]);
      await call('PUT', `${PRS}/${pr.id}/participants/bob`, {
        token: 'bob-token',
        body: { status: 'APPROVED' },
      });
      bb.addProjectToken({
        token: 'project-token',
        project: 'FLUX',
        permission: 'PROJECT_WRITE',
      });
      const byToken = await merge(pr, 'project-token');
      expect(byToken.status).toBe(409);
      expect(errorOf(byToken).vetoes[0].summaryMessage).toBe(
        'A commit author is required',
      );
      const ok = await merge(pr, 'alice-token');
      expect(ok.status).toBe(200);
      bb.setMergeChecks('FLUX', 'fleet', {});
    });
  });

  describe('branches changed outside the pull request', () => {
    it('the source commits pushed straight to the target mark it MERGED; a deleted source branch declines it', async () => {
      const sha = await pushBranch('flux/outside', 'outside.txt', 'o\n');
      const pr = (await open('flux/outside')).body;
      await pushAs('alice-token', `${sha}:refs/heads/main`);
      const got = await call('GET', `${PRS}/${pr.id}`, {
        token: 'alice-token',
      });
      expect(got.body).toMatchObject({
        state: 'MERGED',
        version: pr.version + 1,
      });

      await pushBranch('flux/gone', 'gone.txt', 'g\n');
      const pr2 = (await open('flux/gone')).body;
      await pushAs('alice-token', ':refs/heads/flux/gone');
      // the post-receive hook already synced it: the state shows it without a REST call
      expect(bb.state().pullRequests.find(p => p.id === pr2.id)?.state).toBe(
        'DECLINED',
      );
    });
  });
});
