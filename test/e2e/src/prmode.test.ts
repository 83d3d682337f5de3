/* eslint-disable no-console */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import {
  ARTIFACTS_DIR,
  launchChromium,
  recordProblems,
  screenshot,
} from './browser';
import { KubeHttp, kubePath } from '@flux-bootstrap/test-peers';
import { repoRoot, SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi, TaskResult } from './scaffolder';

// Pull-request mode in the real app, against real peers: the fleet repository's `main` only
// changes through pull requests (a `pull-request-only` branch restriction on the Bitbucket
// double). The Bitbucket template's form is filled in the browser with "Open a pull request" and
// a reviewer; while the task waits for the merge, the fleet repository's card (the real status
// API: the sync Kustomization's pull-request annotation on the real kube-apiserver, the pull
// request as the double reports it) shows the awaiting-merge state with the link and the
// reviewer's status.
// The pull request is then merged through the double's REST API, the Flux simulator syncs the
// merge commit, the task completes, and the card turns ready without a reload.
jest.setTimeout(10 * 60_000);

const BITBUCKET_TEMPLATE = 'template:default/flux-bootstrap-bitbucket-server';
const SLUG = 'fleet-infra';
const REVIEWER = { name: 'alice', displayName: 'Alice Reviewer' };
/** A second cluster whose task ends (timeout) before its pull request is merged. */
const STAGING = 'staging';

let sandbox: Sandbox;
let api: BackstageApi;

const git = (...args: string[]) =>
  execFileSync(
    'git',
    ['--git-dir', sandbox.bitbucket.repoPath(SANDBOX.project, SLUG), ...args],
    { encoding: 'utf8' },
  ).trim();

function values(cluster: string, mergeTimeout: string) {
  return {
    cluster,
    owner: 'group:default/platform-team',
    repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${SLUG}`,
    private: true,
    branch: 'main',
    authentication: 'ssh',
    changes: 'pull-request',
    reviewers: [REVIEWER.name],
    mergeTimeout,
    token: '*'.repeat(sandbox.token.length),
  };
}

async function waitForPullRequest(fromBranch: string) {
  const deadline = Date.now() + 4 * 60_000;
  for (;;) {
    const pr = sandbox.bitbucket
      .state()
      .pullRequests.find(
        p => p.slug === SLUG && JSON.stringify(p).includes(fromBranch),
      );
    if (pr) return pr;
    if (Date.now() > deadline)
      throw new Error(`no pull request from ${fromBranch} opened`);
    await new Promise(r => setTimeout(r, 1000));
  }
}

async function statusUntil(cluster: string, state: string) {
  const deadline = Date.now() + 3 * 60_000;
  for (;;) {
    const s = await api.get<any>(
      `/api/flux-bootstrap/clusters/${cluster}?refresh=true`,
    );
    if (s.state === state) return s;
    if (Date.now() > deadline)
      throw new Error(`${cluster} is not ${state}: ${JSON.stringify(s)}`);
    await new Promise(r => setTimeout(r, 2000));
  }
}

async function merge(id: number) {
  const current = await bitbucket(
    'GET',
    `/projects/${SANDBOX.project}/repos/${SLUG}/pull-requests/${id}`,
  );
  expect(current.status).toBe(200);
  const merged = await bitbucket(
    'POST',
    `/projects/${SANDBOX.project}/repos/${SLUG}/pull-requests/${id}/merge?version=${current.body.version}`,
  );
  expect(merged.status).toBe(200);
  expect(merged.body.state).toBe('MERGED');
  return merged.body.properties.mergeCommit.id as string;
}

async function bitbucket(method: string, urlPath: string) {
  const res = await fetch(`${sandbox.bitbucket.apiBaseUrl}${urlPath}`, {
    method,
    headers: {
      authorization: `Bearer ${sandbox.token}`,
      accept: 'application/json',
      'x-atlassian-token': 'no-check',
    },
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function onCluster<T>(
  cluster: string,
  fn: (http: KubeHttp) => Promise<T>,
): Promise<T> {
  const http = new KubeHttp(sandbox.clusters[cluster].kube);
  try {
    return await fn(http);
  } finally {
    http.close();
  }
}

beforeAll(async () => {
  sandbox = await startSandbox({
    extraClusters: [STAGING],
    log: line => console.log(line),
  });
  const bb = sandbox.bitbucket;
  bb.addUser({ ...REVIEWER, email: 'alice@example.com' });
  bb.grantProject(SANDBOX.project, { user: REVIEWER.name }, 'PROJECT_READ');
  bb.createRepo(SANDBOX.project, SLUG, {
    defaultBranch: 'main',
    initialCommit: true,
  });
  bb.addRestriction(SANDBOX.project, SLUG, {
    type: 'pull-request-only',
    matcher: 'main',
  });
  api = await BackstageApi.asGuest(sandbox.baseUrl);
}, 6 * 60_000);

afterAll(async () => {
  if (sandbox) {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'prmode-backend.log'),
      sandbox.backendLogs().join('\n'),
    );
    await sandbox.stop();
  }
}, 2 * 60_000);

describe('browser: bootstrap through a pull request', () => {
  let browser: Browser;
  let page: Page;
  let problems: string[];
  beforeAll(async () => {
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    problems = recordProblems(page);
  });
  afterAll(async () => browser?.close());

  async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const shot = await screenshot(page, `prmode-failed-${name}`).catch(
        () => 'none',
      );
      throw new Error(
        `${name}: ${(e as Error).message}\nscreenshot: ${shot}\n${problems.join(
          '\n',
        )}\n${sandbox.backendLogs().slice(-30).join('\n')}`,
      );
    }
  }

  it('shows awaiting-merge with the link and reviewers, then ready after the merge', async () => {
    const mainBefore = git('rev-parse', 'main');
    // the template's form, as a user fills it: "Open a pull request" with a reviewer
    const taskId = await step('form', async () => {
      await page.goto(sandbox.baseUrl);
      await page.getByRole('button', { name: 'Enter' }).click();
      await page.getByText('Select a sign-in method').waitFor({
        state: 'detached',
      });
      await page.goto(
        `${sandbox.baseUrl}/create/templates/default/flux-bootstrap-bitbucket-server`,
      );
      const picker = page.getByTestId('flux-cluster-picker');
      await picker.waitFor();
      await picker.click();
      await page.getByTestId(`cluster-option-${SANDBOX.cluster}`).click();
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByLabel('Bitbucket HTTP access token').fill(sandbox.token);
      await page.getByRole('textbox', { name: 'Projects' }).click();
      await page.keyboard.type(SANDBOX.project, { delay: 20 });
      await page.getByRole('textbox', { name: 'Repository' }).click();
      await page.keyboard.type(SLUG, { delay: 20 });
      await page.getByLabel('Changes to the branch').click();
      await page.getByRole('option', { name: 'Open a pull request' }).click();
      // the innermost box holding the Reviewers heading and its add button
      const reviewers = page
        .locator('div')
        .filter({
          has: page.getByRole('heading', { name: 'Reviewers', exact: true }),
        })
        .filter({ has: page.getByRole('button') })
        .last();
      await reviewers.getByRole('button').last().click();
      await reviewers.getByRole('textbox').first().fill(REVIEWER.name);
      await screenshot(page, 'prmode-form-changes');
      await page.getByRole('button', { name: 'Next' }).click();
      await page.getByText('SSH with a deploy key').first().waitFor();
      await page.getByRole('button', { name: 'Review' }).click();
      await page.getByText('Open a pull request').first().waitFor();
      expect(await page.content()).not.toContain(sandbox.token);
      await page.getByRole('button', { name: 'Create' }).click();
      await page.waitForURL(/\/create\/tasks\/[0-9a-f-]+$/);
      return page.url().split('/').pop()!;
    });
    const taskDone: Promise<TaskResult> = api.waitForTask(taskId);
    taskDone.catch(() => undefined);

    // exactly one pull request, from flux/sandbox to main, with the reviewer
    const pr = await step('pull request opened', () =>
      waitForPullRequest(`refs/heads/flux/${SANDBOX.cluster}`),
    );
    expect(git('rev-parse', 'main')).toBe(mainBefore);
    sandbox.bitbucket.setReviewerStatus(
      SANDBOX.project,
      SLUG,
      pr.id,
      REVIEWER.name,
      'APPROVED',
    );
    const prUrl = `${sandbox.bitbucket.baseUrl}/projects/${SANDBOX.project}/repos/${SLUG}/pull-requests/${pr.id}`;

    // the real status API: awaiting-merge, from the annotation and Bitbucket's answer
    const status = await step('status api', () =>
      statusUntil(SANDBOX.cluster, 'awaiting-merge'),
    );
    expect(status.pullRequest).toMatchObject({
      id: pr.id,
      url: expect.stringContaining(`/pull-requests/${pr.id}`),
      state: 'OPEN',
      fromBranch: `flux/${SANDBOX.cluster}`,
      toBranch: 'main',
      reviewers: [
        expect.objectContaining({ name: REVIEWER.name, status: 'APPROVED' }),
      ],
    });
    expect(JSON.stringify(status)).not.toContain(sandbox.token);

    const card = page.getByRole('article', { name: 'Flux bootstrap' });
    const row = page.getByTestId(`flux-cluster-${SANDBOX.cluster}`);
    await step('card awaiting-merge', async () => {
      await page.goto(`${sandbox.baseUrl}/catalog/default/component/${SLUG}`);
      await row
        .getByRole('img', { name: 'State: Awaiting merge' })
        .waitFor({ timeout: 60_000 });
    });
    const group = card.getByRole('group', { name: 'Pull request' });
    const link = group.getByRole('link', {
      name: `#${pr.id} flux/${SANDBOX.cluster} → main`,
    });
    await expect(link.getAttribute('href')).resolves.toBe(
      status.pullRequest.url,
    );
    expect(status.pullRequest.url.startsWith(prUrl)).toBe(true);
    await expect(
      group.getByRole('list', { name: 'Reviewers' }).textContent(),
    ).resolves.toContain(`${REVIEWER.displayName}: approved`);
    await page.waitForTimeout(300);
    const shot = path.join(ARTIFACTS_DIR, 'prmode-card-awaiting-merge.png');
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    await card.screenshot({ path: shot });
    if (process.env.UPDATE_DOCS_IMAGES === '1') {
      fs.copyFileSync(
        shot,
        path.join(
          repoRoot,
          'docs',
          'screenshots',
          'pr-mode-awaiting-merge.png',
        ),
      );
    }

    // merge through the double's REST API, as a reviewer would in Bitbucket
    const mergeSha = await merge(pr.id);
    const mergeCommit = git('rev-parse', 'main');
    expect(mergeCommit).toBe(mergeSha);
    expect(mergeCommit).not.toBe(mainBefore);

    // the task completes at the merge commit; the open page turns ready without a reload
    const result = await taskDone;
    if (result.status !== 'completed')
      throw new Error(
        `task ended ${result.status}: ${result.log.slice(-30).join('\n')}`,
      );
    expect(JSON.stringify(result.events)).not.toContain(sandbox.token);
    await step('card ready', () =>
      row
        .getByRole('img', { name: 'State: Ready' })
        .waitFor({ timeout: 90_000 }),
    );
    await expect(row.textContent()).resolves.toContain(mergeCommit.slice(0, 8));
    await expect(
      card.getByRole('group', { name: 'Pull request' }).count(),
    ).resolves.toBe(0);
    const after = await api.get<any>(
      `/api/flux-bootstrap/clusters/${SANDBOX.cluster}?refresh=true`,
    );
    expect(after.state).toBe('ready');
    expect(after.pullRequest).toBeUndefined();
  });

  it('a task that ended before the merge leaves the annotation; after the merge the status is ready and lists no pull request', async () => {
    const result = await api.runTemplate(
      BITBUCKET_TEMPLATE,
      values(STAGING, '30s'),
      { token: sandbox.token },
    );
    expect(result.status).toBe('failed');
    expect(result.steps.install).toBe('failed');
    const pr = await waitForPullRequest(`refs/heads/flux/${STAGING}`);
    expect(result.log.join('\n')).toContain(
      `pull request #${pr.id} (${sandbox.bitbucket.baseUrl}/projects/${SANDBOX.project}/repos/${SLUG}/pull-requests/${pr.id}) was not merged within`,
    );
    const waiting = await statusUntil(STAGING, 'awaiting-merge');
    expect(waiting.pullRequest).toMatchObject({ id: pr.id, state: 'OPEN' });

    const mergeCommit = await merge(pr.id);
    const ready = await statusUntil(STAGING, 'ready');
    expect(ready.sync.lastAppliedRevision).toBe(`main@sha1:${mergeCommit}`);
    // the annotation is still on the sync Kustomization (nobody removed it) …
    const ks = await onCluster(STAGING, http =>
      http.expect(
        'GET',
        kubePath({
          apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
          resource: 'kustomizations',
          namespace: 'flux-system',
          name: 'flux-system',
        }),
      ),
    );
    expect(
      ks.body.metadata.annotations['flux-bootstrap.io/pull-request'],
    ).toContain(`/pull-requests/${pr.id}`);
    // … and the status no longer calls the merged pull request pending
    expect(ready.pullRequest).toBeUndefined();
    expect(ready.reason).toBeUndefined();
    expect(JSON.stringify([result.events, waiting, ready])).not.toContain(
      sandbox.token,
    );
  });
});
