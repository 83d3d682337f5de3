/* eslint-disable no-console */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ARTIFACTS_DIR,
  launchChromium,
  recordProblems,
  screenshot,
} from './browser';
import { KubeHttp } from '@flux-bootstrap/test-peers';
import yaml from 'yaml';
import { repoRoot, SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi, TaskResult } from './scaffolder';
// The card's example statuses (shaped like the status backend's answers), for the looks whose
// states other parts of the product produce.
// eslint-disable-next-line @backstage/no-relative-monorepo-imports
import {
  exampleOperatorStatus,
  exampleStatuses,
} from '../../../plugins/flux-bootstrap/src/fixtures';

type ClusterBootstrapStatusLike = ReturnType<typeof exampleOperatorStatus>;

// The sandbox end to end: the app (production frontend build + backend from source) against the
// real peers — Bitbucket double with git http-backend and sshd, kube-apiserver + etcd per
// cluster, Flux controller simulator, fixture Flux bundle. Driven by headless Chromium like a
// user, and through the scaffolder REST API for both templates.
jest.setTimeout(10 * 60_000);

const BITBUCKET_TEMPLATE = 'template:default/flux-bootstrap-bitbucket-server';
const GIT_TEMPLATE = 'template:default/flux-bootstrap-git';
const EXTRA_CLUSTERS = ['staging', 'edge'];
/** A cluster bootstrapped with distribution operator (its simulator runs the operator loop). */
const OPERATOR_CLUSTER = 'prod-op';

let sandbox: Sandbox;
let api: BackstageApi;
let browser: Browser;
const sandboxLog: string[] = [];

function git(args: string[], cwd?: string): string {
  return execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
}

/** Head of a branch of a repository of the Bitbucket double, read from its bare repository. */
function branchHead(project: string, slug: string, branch = 'main'): string {
  return git([
    '--git-dir',
    sandbox.bitbucket.repoPath(project, slug),
    'rev-parse',
    `refs/heads/${branch}`,
  ]);
}

function commitCount(project: string, slug: string, branch = 'main'): number {
  return Number(
    git([
      '--git-dir',
      sandbox.bitbucket.repoPath(project, slug),
      'rev-list',
      '--count',
      `refs/heads/${branch}`,
    ]),
  );
}

/** The Flux Operator migration steps run only when flux:push-manifests reports migrationPending. */
const MIGRATION_STEPS = ['migrate', 'installMigrated'];

function expectAllStepsSucceeded(result: TaskResult, skipped: string[] = []) {
  const failed = Object.entries(result.steps).filter(
    ([id, s]) =>
      s !== 'completed' &&
      !([...skipped, ...MIGRATION_STEPS].includes(id) && s === 'skipped'),
  );
  if (result.status !== 'completed' || failed.length) {
    throw new Error(
      `task ${result.id} ended ${result.status}; steps ${JSON.stringify(
        result.steps,
      )}\n${result.log.slice(-40).join('\n')}`,
    );
  }
}

/** Fails with the page's problems and a screenshot when `fn` throws. */
async function step<T>(
  page: Page,
  name: string,
  problems: string[],
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    const shot = await screenshot(page, `failed-${name}`).catch(() => 'none');
    throw new Error(
      `${name}: ${
        (e as Error).message
      }\nscreenshot: ${shot}\nbrowser problems:\n${problems.join('\n')}`,
    );
  }
}

/**
 * Waits until the card row of a cluster says Ready. The status backend caches a cluster's state
 * for fluxBootstrap.status.cacheTtlSeconds (15 s), so a page opened right after the bootstrap may
 * first show the state read before it; reloading after that is what a user does.
 */
async function waitForReadyRow(page: Page, cluster: string) {
  const row = page.getByTestId(`flux-cluster-${cluster}`);
  const deadline = Date.now() + 90_000;
  for (;;) {
    await row.waitFor();
    if (await row.getByText('Ready', { exact: true }).isVisible()) return row;
    if (Date.now() > deadline) {
      throw new Error(`the card still says: ${await row.textContent()}`);
    }
    await page.waitForTimeout(3000);
    await page.reload();
  }
}

async function signIn(page: Page) {
  await page.goto(sandbox.baseUrl);
  await page.getByRole('button', { name: 'Enter' }).click();
  await page.getByText(SANDBOX.title).first().waitFor();
}

interface FormInput {
  cluster: string;
  /** The state the picker shows for the cluster before the run. */
  expectState: string;
  project: string;
  repo: string;
  token: string;
}

/** Fills the Bitbucket Server template as a user would, SSH mode (the default), and submits it. */
async function runBitbucketTemplateInBrowser(
  page: Page,
  input: FormInput,
  problems: string[],
  shots: { prefix: string; all: boolean },
): Promise<string> {
  await page.goto(
    `${sandbox.baseUrl}/create/templates/default/flux-bootstrap-bitbucket-server`,
  );
  const picker = page.getByTestId('flux-cluster-picker');
  await picker.waitFor();
  await picker.click();
  // The picker lists the configured clusters with their state from the status backend.
  const option = page.getByTestId(`cluster-option-${input.cluster}`);
  await option.getByText(input.expectState).waitFor();
  for (const other of EXTRA_CLUSTERS)
    await page.getByTestId(`cluster-option-${other}`).waitFor();
  if (shots.all) {
    await page.waitForTimeout(500); // the menu's fade-in
    await screenshot(page, `${shots.prefix}-form-cluster-picker`);
  }
  await option.click();
  await page.getByRole('button', { name: 'Next' }).click();

  // The sandbox's integration has a token, so the token field says it is optional (the backend's
  // /integrations/bitbucket-server); the user still gives their own here, first.
  await page
    .getByText(
      `The integration for ${sandbox.bitbucket.host} has credentials; a token is optional.`,
    )
    .waitFor();
  await page.getByLabel('Bitbucket HTTP access token').fill(input.token);
  // Then, as a person does: type the project and the repository with the keyboard and press
  // Next straight after the last key (no click elsewhere first, issue 21).
  await page.getByRole('textbox', { name: 'Projects' }).click();
  await page.keyboard.type(input.project, { delay: 20 });
  await page.getByRole('textbox', { name: 'Repository' }).click();
  await page.keyboard.type(input.repo, { delay: 20 });
  await page.getByRole('button', { name: 'Next' }).click();
  // The next step shows up; the form must not complain about the repository instead.
  const incomplete = page
    .getByText(/Incomplete repository location provided/)
    .first();
  const nextStep = page.getByText('SSH with a deploy key').first();
  await Promise.race([
    nextStep.waitFor(),
    incomplete.waitFor({ timeout: 60_000 }).then(
      async () => {
        throw new Error(
          `after typing the repository and pressing Next the form says: ${await incomplete.textContent()}`,
        );
      },
      () => undefined, // never shown: the race is the next step's
    ),
  ]);
  expect(await incomplete.count()).toBe(0);
  if (shots.all) {
    // Back to the repository step for its screenshot: the typed values are kept.
    await page.getByRole('button', { name: 'Back' }).click();
    await expect(
      page.getByRole('textbox', { name: 'Repository' }).inputValue(),
    ).resolves.toBe(input.repo);
    await screenshot(page, `${shots.prefix}-form-repository`);
    await page.getByRole('button', { name: 'Next' }).click();
  }

  // SSH is the default authentication.
  await page.getByText('SSH with a deploy key').first().waitFor();
  await page.getByRole('button', { name: 'Review' }).click();

  // The review page shows the values, the token masked.
  await page
    .getByText(
      `${sandbox.bitbucket.host}?repo=${input.repo}&project=${input.project}`,
    )
    .waitFor();
  const review = await page.content();
  expect(review).not.toContain(input.token);
  const tokenRow = page
    .locator('tr')
    .filter({ hasText: 'Bitbucket HTTP access token' });
  await expect(tokenRow.textContent()).resolves.toMatch(/\*{6}/);
  await screenshot(page, `${shots.prefix}-form-review`);

  await page.getByRole('button', { name: 'Create' }).click();
  await page.waitForURL(/\/create\/tasks\/[0-9a-f-]+$/);
  const taskId = page.url().split('/').pop()!;
  void problems;
  return taskId;
}

/** The d attribute of Material UI's CheckCircleOutline, the task page's icon of a completed step. */
const COMPLETED_STEP_ICON = 'M16.59 7.58L10 14.17l-3.59-3.58L5 12l5 5 8-8z';

/**
 * What the task page shows a user for each step: its name and whether its icon is the check mark
 * of a completed step (not the spinner, the error or the skipped icon). Waits until every step
 * shows it, and fails with what the page shows otherwise.
 */
async function expectStepsCompletedOnPage(page: Page, stepNames: string[]) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const shown = await page.getByTestId('step-label').evaluateAll(
      (els, icon) =>
        els.map(el => ({
          text: el.textContent ?? '',
          completed: [...el.querySelectorAll('svg path')].some(p =>
            (p.getAttribute('d') ?? '').startsWith(icon),
          ),
        })),
      COMPLETED_STEP_ICON,
    );
    // Skipped steps (the Flux Operator migration) are shown without the check mark.
    const done = shown.filter(st => st.completed);
    const ok =
      done.length === stepNames.length &&
      stepNames.every((name, i) => done[i].text.startsWith(name));
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(
        `the task page shows the steps ${JSON.stringify(
          shown,
        )}, expected ${JSON.stringify(stepNames)} all completed`,
      );
    }
    await page.waitForTimeout(500);
  }
}

/** The step names of a template in templates/, in order. */
/** The names of a template's steps a flux bootstrap run completes (not the migration steps). */
function stepNamesOf(name: string): string[] {
  return (
    templateEntity(name) as { spec: { steps: { id: string; name: string }[] } }
  ).spec.steps
    .filter(s => !MIGRATION_STEPS.includes(s.id))
    .map(s => s.name);
}

beforeAll(async () => {
  // Artifacts of this suite from an earlier run (numbered screenshots, failures, logs).
  if (fs.existsSync(ARTIFACTS_DIR)) {
    for (const f of fs.readdirSync(ARTIFACTS_DIR)) {
      if (
        /^(\d\d-.*|failed-.*|card|card-.*|fleet-.*)\.png$|^(backend|sandbox)\.log$/.test(
          f,
        )
      ) {
        fs.rmSync(path.join(ARTIFACTS_DIR, f));
      }
    }
  }
  const started = Date.now();
  sandbox = await startSandbox({
    extraClusters: [...EXTRA_CLUSTERS, OPERATOR_CLUSTER],
    operatorClusters: [OPERATOR_CLUSTER],
    log: line => {
      sandboxLog.push(line);
      console.log(line);
    },
  });
  console.log(
    `[e2e] sandbox up in ${Math.round(
      (Date.now() - started) / 1000,
    )} s (frontend build ${Math.round(sandbox.frontendBuildMs / 1000)} s)`,
  );
  api = await BackstageApi.asGuest(sandbox.baseUrl);
  browser = await launchChromium();
}, 8 * 60_000);

/** Screenshots copied into docs/screenshots when UPDATE_DOCS_IMAGES=1. */
const DOCS_SCREENSHOTS: Record<string, string> = {
  'fleet-page.png': 'fleet-page.png',
  'fleet-page-filtered.png': 'fleet-page-filtered.png',
  'card-awaiting-merge.png': 'card-awaiting-merge.png',
  'card-operator.png': 'card-operator.png',
};

/** Screenshots copied into the documentation when UPDATE_DOCS_IMAGES=1. */
const DOCS_IMAGES: Record<string, string> = {
  '02-form-cluster-picker.png': 'template-form-cluster.png',
  '02-form-repository.png': 'template-form-repository.png',
  '02-form-review.png': 'template-form-review.png',
  '03-task-completed.png': 'template-task-completed.png',
  'card.png': 'cluster-card.png',
  '05-fleet-repository-component.png': 'fleet-component-card.png',
};

afterAll(async () => {
  await browser?.close();
  if (process.env.UPDATE_DOCS_IMAGES === '1') {
    const docsImages = path.join(repoRoot, 'docs', 'images');
    fs.mkdirSync(docsImages, { recursive: true });
    for (const [from, to] of Object.entries(DOCS_IMAGES)) {
      const src = path.join(ARTIFACTS_DIR, from);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(docsImages, to));
    }
    const docsShots = path.join(repoRoot, 'docs', 'screenshots');
    for (const [from, to] of Object.entries(DOCS_SCREENSHOTS)) {
      const src = path.join(ARTIFACTS_DIR, from);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(docsShots, to));
    }
  }
  if (sandbox) {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'backend.log'),
      sandbox.backendLogs().join('\n'),
    );
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'sandbox.log'),
      sandboxLog.join('\n'),
    );
    await sandbox.stop();
  }
}, 2 * 60_000);

describe('the sandbox app', () => {
  it('loads both templates through the real catalog, and the scaffolder has the four actions', async () => {
    for (const name of [
      'flux-bootstrap-bitbucket-server',
      'flux-bootstrap-git',
    ]) {
      const entity = await api.waitForEntity({ kind: 'Template', name });
      expect(entity.spec.type).toBe('infrastructure');
      const schema = await api.get<{ steps: unknown[] }>(
        `/api/scaffolder/v2/templates/default/template/${name}/parameter-schema`,
      );
      expect(schema.steps.length).toBeGreaterThan(0);
    }
    const actions = await api.get<{ id: string }[]>(
      '/api/scaffolder/v2/actions',
    );
    expect(actions.map(a => a.id)).toEqual(
      expect.arrayContaining([
        'bitbucket:create-repo',
        'flux:generate-key',
        'flux:push-manifests',
        'flux:install',
        'catalog:register',
      ]),
    );
  });

  it('is labelled as the sandbox in its title', async () => {
    const html = await (await fetch(sandbox.baseUrl)).text();
    expect(html).toMatch(new RegExp(`<title>\\s*${SANDBOX.title}\\s*</title>`));
  });
});

/** A template as the catalog holds it, read from templates/. */
function templateEntity(name: string): unknown {
  return yaml.parse(
    fs.readFileSync(
      path.join(repoRoot, 'templates', name, 'template.yaml'),
      'utf8',
    ),
  );
}

interface DryRunResult {
  log: { body: { message?: string; stepId?: string; status?: string } }[];
  output: {
    links?: { title?: string; url?: string }[];
    text?: { content?: string }[];
  };
  directoryContents: { path: string; base64Content?: string }[];
}

/** A file of a dry run's workspace, as text. */
function dryRunFile(result: DryRunResult, file: string): string {
  const found = result.directoryContents.find(f => f.path === file);
  if (!found) throw new Error(`the dry run wrote no ${file}`);
  return Buffer.from(found.base64Content ?? '', 'base64').toString('utf8');
}

/** Last status of each step of a dry run, in the order the steps first reported. */
function dryRunSteps(result: DryRunResult): Record<string, string> {
  const steps: Record<string, string> = {};
  for (const { body } of result.log) {
    if (body.stepId && body.status) steps[body.stepId] = body.status;
  }
  return steps;
}

describe("scaffolder dry-run API (the template editor's dry run)", () => {
  // Both templates as they ship, through POST /api/scaffolder/v2/dry-run: every step runs in
  // dry-run mode and succeeds, and nothing reaches Bitbucket, git or the clusters. Only
  // catalog:register (Backstage's, without dry-run support) is skipped by the scaffolder.
  async function dryRun(
    name: string,
    values: Record<string, unknown>,
    secrets: Record<string, string>,
  ) {
    const res = await api.request<DryRunResult>(
      'POST',
      '/api/scaffolder/v2/dry-run',
      {
        template: templateEntity(name),
        values,
        secrets,
        directoryContents: [],
      },
    );
    if (res.status !== 200) {
      throw new Error(`dry run of ${name}: ${res.status} ${res.text}`);
    }
    return { result: res.body, text: res.text };
  }

  async function fluxNamespace(cluster: string) {
    const http = new KubeHttp(sandbox.clusters[cluster].kube);
    try {
      return (await http.request('GET', '/api/v1/namespaces/flux-system'))
        .status;
    } finally {
      http.close();
    }
  }

  it('dry-runs the Bitbucket Server template with every step succeeding and nothing sent', async () => {
    const slug = 'fleet-dry-run';
    const { result, text } = await dryRun(
      'flux-bootstrap-bitbucket-server',
      {
        cluster: SANDBOX.cluster,
        owner: 'group:default/platform-team',
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${slug}`,
        private: true,
        branch: 'main',
        authentication: 'ssh',
        networkPolicy: true,
        // Flux options of the form, as a user sets them.
        logLevel: 'debug',
        tolerationKeys: ['flux.example.com/dedicated'],
        clusterDomain: 'fleet.internal',
        interval: '30s',
        keyAlgorithm: 'ed25519',
        token: '*'.repeat(sandbox.token.length),
      },
      { token: sandbox.token },
    );
    expect(dryRunSteps(result)).toEqual({
      createRepo: 'completed',
      pushManifests: 'completed',
      generateKey: 'completed',
      install: 'completed',
      migrate: 'skipped',
      installMigrated: 'skipped',
      register: 'skipped',
      waitForCluster: 'completed',
    });
    const log = result.log.map(l => l.body.message ?? '').join('\n');
    expect(log).toContain(
      `Dry run: would ensure private repository ${SANDBOX.project}/${slug}`,
    );
    // flux:install takes the revision a dry run of flux:push-manifests outputs.
    expect(log).toContain(
      'until Flux reconciled the commit flux:push-manifests pushes to main (main@sha1:<sha>',
    );
    expect(log).toContain('Dry run: no entityRef');
    expect(result.directoryContents.map(f => f.path)).toEqual(
      expect.arrayContaining([
        `clusters/${SANDBOX.cluster}/flux-system/gotk-components.yaml`,
        `clusters/${SANDBOX.cluster}/flux-system/gotk-sync.yaml`,
        `clusters/${SANDBOX.cluster}/flux-system/kustomization.yaml`,
      ]),
    );
    // The form's Flux options reach the manifests flux:push-manifests generates.
    const components = dryRunFile(
      result,
      `clusters/${SANDBOX.cluster}/flux-system/gotk-components.yaml`,
    );
    expect(components).toContain('--log-level=debug');
    expect(components).toContain('flux.example.com/dedicated');
    expect(components).toContain('fleet.internal');
    expect(
      dryRunFile(
        result,
        `clusters/${SANDBOX.cluster}/flux-system/gotk-sync.yaml`,
      ),
    ).toMatch(/interval: 30s/);
    expect(result.output.links?.[0]).toEqual(
      expect.objectContaining({
        title: 'Repository',
        url: `${sandbox.bitbucket.baseUrl}/projects/${SANDBOX.project}/repos/${slug}/browse`,
      }),
    );
    // Nothing was sent: no repository, no request about it, no Flux on the cluster.
    expect(
      sandbox.bitbucket.state().repos.filter(r => r.slug === slug),
    ).toEqual([]);
    expect(
      sandbox.bitbucket.requests().filter(r => r.path.includes(slug)),
    ).toEqual([]);
    expect(await fluxNamespace(SANDBOX.cluster)).toBe(404);
    expect(text).not.toContain(sandbox.token);
  });

  it("dry-runs the Bitbucket Server template with token auth and no username: the token's owner is checked first and taken for the Secret", async () => {
    const slug = 'fleet-dry-run-token';
    const { result, text } = await dryRun(
      'flux-bootstrap-bitbucket-server',
      {
        cluster: SANDBOX.cluster,
        owner: 'group:default/platform-team',
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=${slug}`,
        private: true,
        branch: 'main',
        authentication: 'token',
        networkPolicy: true,
        token: '*'.repeat(sandbox.token.length),
      },
      { token: sandbox.token },
    );
    expect(dryRunSteps(result)).toEqual({
      createRepo: 'completed',
      pushManifests: 'completed',
      generateKey: 'skipped',
      install: 'completed',
      migrate: 'skipped',
      installMigrated: 'skipped',
      register: 'skipped',
      waitForCluster: 'completed',
    });
    const log = result.log.map(l => l.body.message ?? '').join('\n');
    expect(log).toContain(
      'Dry run: would check that the credentials belong to a user, ensure private repository',
    );
    expect(log).toContain(`gets user "the token's owner"`);
    expect(
      sandbox.bitbucket.requests().filter(r => r.path.includes(slug)),
    ).toEqual([]);
    expect(text).not.toContain(sandbox.token);
  });

  it('dry-runs the git template (your own SSH key, no token) with every step succeeding and nothing sent', async () => {
    const slug = 'fleet-git-dry-run';
    sandbox.bitbucket.createRepo(SANDBOX.project, slug, {
      defaultBranch: 'main',
      initialCommit: true,
    });
    const refs = () =>
      git([
        '--git-dir',
        sandbox.bitbucket.repoPath(SANDBOX.project, slug),
        'for-each-ref',
      ]);
    const refsBefore = refs();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-dry-key-'));
    const passphrase = 'e2e-dry-run-passphrase-91c4';
    try {
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        passphrase,
        '-C',
        '',
        '-f',
        path.join(dir, 'id'),
      ]);
      const privateKey = fs.readFileSync(path.join(dir, 'id'), 'utf8');
      const url = sandbox.bitbucket.cloneUrls(SANDBOX.project, slug).ssh!;
      const { result, text } = await dryRun(
        'flux-bootstrap-git',
        {
          cluster: 'edge',
          owner: 'group:default/platform-team',
          url,
          branch: 'main',
          sshPrivateKey: '*'.repeat(privateKey.length),
          sshPassphrase: '*'.repeat(passphrase.length),
        },
        { sshPrivateKey: privateKey, sshPassphrase: passphrase },
      );
      expect(dryRunSteps(result)).toEqual({
        gitSecret: 'completed',
        pushManifests: 'completed',
        install: 'completed',
        migrate: 'skipped',
        installMigrated: 'skipped',
        register: 'skipped',
        waitForCluster: 'completed',
      });
      const log = result.log.map(l => l.body.message ?? '').join('\n');
      // flux:generate-key scans no host key in a dry run; flux:push-manifests does without it.
      expect(log).toContain('Dry run: no knownHosts given');
      expect(log).toContain(
        'until Flux reconciled the commit flux:push-manifests pushes to main',
      );
      expect(result.directoryContents.map(f => f.path)).toContain(
        'clusters/edge/flux-system/gotk-sync.yaml',
      );
      // Nothing was pushed, asked or written.
      expect(refs()).toBe(refsBefore);
      expect(
        sandbox.bitbucket.requests().filter(r => r.path.includes(slug)),
      ).toEqual([]);
      expect(await fluxNamespace('edge')).toBe(404);
      for (const line of privateKey
        .split('\n')
        .filter(l => l.length > 20 && !l.startsWith('-----'))) {
        expect(text).not.toContain(line);
      }
      expect(text).not.toContain(passphrase);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('browser: bootstrap the sandbox cluster over SSH', () => {
  let page: Page;
  let problems: string[];
  let firstRevision: string;

  beforeAll(async () => {
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    problems = recordProblems(page);
  });
  afterAll(async () => page?.close());

  it('signs in as guest, fills the form, runs it, and every step succeeds', async () => {
    await step(page, 'sign-in', problems, () => signIn(page));
    await screenshot(page, '01-catalog');
    const taskId = await step(page, 'form', problems, () =>
      runBitbucketTemplateInBrowser(
        page,
        {
          cluster: SANDBOX.cluster,
          expectState: 'Flux not installed',
          project: SANDBOX.project,
          repo: 'fleet-infra',
          token: sandbox.token,
        },
        problems,
        { prefix: '02', all: true },
      ),
    );

    // The task page shows the output links once every step is done.
    await step(page, 'task page', problems, async () => {
      await page
        .getByRole('link', { name: 'Cluster', exact: true })
        .waitFor({ timeout: 5 * 60_000 });
    });
    await screenshot(page, '03-task-completed');
    await step(page, 'task steps', problems, () =>
      expectStepsCompletedOnPage(
        page,
        stepNamesOf('flux-bootstrap-bitbucket-server'),
      ),
    );

    const result = await api.waitForTask(taskId);
    expectAllStepsSucceeded(result);
    expect(Object.keys(result.steps)).toEqual([
      'createRepo',
      'pushManifests',
      'generateKey',
      'install',
      'migrate',
      'installMigrated',
      'register',
      'waitForCluster',
    ]);
    const links = Object.fromEntries(
      (result.output?.links ?? []).map(l => [l.title, l]),
    );
    expect(links.Cluster.entityRef).toBe('resource:default/sandbox');
    const head = branchHead(SANDBOX.project, 'fleet-infra');
    expect(links.Commit.url).toBe(
      `${sandbox.bitbucket.baseUrl}/projects/${SANDBOX.project}/repos/fleet-infra/commits/${head}`,
    );
    expect(links.Repository.url).toBe(
      `${sandbox.bitbucket.baseUrl}/projects/${SANDBOX.project}/repos/fleet-infra/browse`,
    );
    firstRevision = `main@sha1:${head}`;
    expect(result.output?.text?.[0].content).toContain(firstRevision);
    // Secrets never reach the task log or output.
    expect(JSON.stringify(result.events)).not.toContain(sandbox.token);
  });

  it('follows the link to the cluster entity, whose card says ready with the pushed revision', async () => {
    await page.getByRole('link', { name: 'Cluster', exact: true }).click();
    await page.waitForURL(/\/catalog\/default\/resource\/sandbox$/);
    const row = await step(page, 'card', problems, () =>
      waitForReadyRow(page, SANDBOX.cluster),
    );
    const sha = firstRevision.split(':')[1];
    await expect(row.textContent()).resolves.toContain(sha.slice(0, 8));
    await expect(row.textContent()).resolves.toContain('in sync');
    await screenshot(page, '04-cluster-entity-card');
    const card = page
      .locator('article, .MuiCard-root')
      .filter({ hasText: 'Flux bootstrap' })
      .first();
    if (await card.count()) {
      fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await card.screenshot({ path: path.join(ARTIFACTS_DIR, 'card.png') });
    }
  });

  it("shows the same card on the fleet repository's Component page", async () => {
    await page.goto(`${sandbox.baseUrl}/catalog/default/component/fleet-infra`);
    const row = await step(page, 'fleet component card', problems, () =>
      waitForReadyRow(page, SANDBOX.cluster),
    );
    await expect(row.textContent()).resolves.toContain(
      firstRevision.split(':')[1].slice(0, 8),
    );
    await screenshot(page, '05-fleet-repository-component');
  });

  it('runs again and converges: every step succeeds, no new commit, one access key, same revision', async () => {
    const commitsBefore = commitCount(SANDBOX.project, 'fleet-infra');
    const taskId = await step(page, 'rerun form', problems, () =>
      runBitbucketTemplateInBrowser(
        page,
        {
          cluster: SANDBOX.cluster,
          expectState: 'Flux bootstrapped and ready',
          project: SANDBOX.project,
          repo: 'fleet-infra',
          token: sandbox.token,
        },
        problems,
        { prefix: '06-rerun', all: false },
      ),
    );
    await page
      .getByRole('link', { name: 'Cluster', exact: true })
      .waitFor({ timeout: 5 * 60_000 });
    await screenshot(page, '07-rerun-task-completed');
    await step(page, 'rerun task steps', problems, () =>
      expectStepsCompletedOnPage(
        page,
        stepNamesOf('flux-bootstrap-bitbucket-server'),
      ),
    );
    const result = await api.waitForTask(taskId);
    expectAllStepsSucceeded(result);
    expect(commitCount(SANDBOX.project, 'fleet-infra')).toBe(commitsBefore);
    expect(`main@sha1:${branchHead(SANDBOX.project, 'fleet-infra')}`).toBe(
      firstRevision,
    );
    expect(result.output?.text?.[0].content).toContain(firstRevision);
    const state = sandbox.bitbucket.state();
    expect(
      state.repos.filter(
        r => r.projectKey === SANDBOX.project && r.slug === 'fleet-infra',
      ),
    ).toHaveLength(1);
    expect(
      state.accessKeys.filter(
        k => k.projectKey === SANDBOX.project && k.slug === 'fleet-infra',
      ),
    ).toHaveLength(1);
    const status = await api.get<{
      state: string;
      sync?: { lastAppliedRevision?: string };
    }>(`/api/flux-bootstrap/clusters/${SANDBOX.cluster}?refresh=true`);
    expect(status.state).toBe('ready');
    expect(status.sync?.lastAppliedRevision).toBe(firstRevision);
  });
});

describe("browser: the fleet page and the card's new looks", () => {
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    problems = recordProblems(page);
    await signIn(page);
  });
  afterAll(async () => page?.close());

  it('lists every configured cluster with its state, counts, filter, search and entity links', async () => {
    await step(page, 'fleet page', problems, async () => {
      // Reached from the sidebar, like a person does.
      await page.getByRole('link', { name: 'Flux fleet' }).first().click();
      await page.waitForURL(/\/flux-fleet$/);
      await page
        .getByRole('heading', { name: 'Flux fleet', level: 1 })
        .waitFor();
      const row = (name: string) =>
        page.getByRole('row', { name: new RegExp(`^${name} \\(entity\\)`) });
      // The sandbox cluster (bootstrapped above) is ready; the other two have no Flux yet.
      await row(SANDBOX.clusterTitle)
        .getByRole('img', { name: 'State: Ready' })
        .waitFor({ timeout: 60_000 });
      for (const other of [...EXTRA_CLUSTERS, OPERATOR_CLUSTER]) {
        await row(other)
          .getByRole('img', { name: 'State: Not installed' })
          .waitFor({ timeout: 60_000 });
      }
      await expect(row(SANDBOX.clusterTitle).textContent()).resolves.toContain(
        'in sync',
      );
      const filters = page.getByRole('radiogroup', {
        name: 'Clusters per state (filter)',
      });
      await filters.getByRole('radio', { name: 'All: 4' }).waitFor();
      await filters.getByRole('radio', { name: 'Ready: 1' }).waitFor();
      await filters.getByRole('radio', { name: 'Not installed: 3' }).waitFor();
      await page.waitForTimeout(300); // fonts and the table's layout settle
      await screenshot(page, 'fleet-page');

      // Filter by state.
      await filters.getByRole('radio', { name: 'Not installed: 3' }).click();
      await page
        .getByTestId('flux-fleet-summary')
        .getByText('3 of 4 clusters shown')
        .waitFor();
      expect(await row(SANDBOX.clusterTitle).count()).toBe(0);
      await screenshot(page, 'fleet-page-filtered');
      await filters.getByRole('radio', { name: 'All: 4' }).click();

      // Search by name or title.
      const search = page.getByRole('searchbox', {
        name: 'Search clusters by name or title',
      });
      await search.click();
      await page.keyboard.type('edge');
      await page
        .getByTestId('flux-fleet-summary')
        .getByText('1 of 4 clusters shown')
        .waitFor();
      expect(await row('edge').count()).toBe(1);
      expect(await row('staging').count()).toBe(0);
      await search.fill('sandbox');
      await page
        .getByTestId('flux-fleet-summary')
        .getByText('1 of 4 clusters shown')
        .waitFor();

      // The applied revision links to the commit on Bitbucket; the name to the cluster's entity.
      const commit = row(SANDBOX.clusterTitle).getByRole('link', {
        name: /^commit [0-9a-f]{8} of sandbox$/,
      });
      await expect(commit.getAttribute('href')).resolves.toMatch(
        new RegExp(
          `/projects/${SANDBOX.project}/repos/fleet-infra/commits/[0-9a-f]{40}$`,
        ),
      );
      await row(SANDBOX.clusterTitle)
        .getByRole('link', { name: `${SANDBOX.clusterTitle} (entity)` })
        .click();
      await page.waitForURL(/\/catalog\/default\/resource\/sandbox$/);
      await waitForReadyRow(page, SANDBOX.cluster);
    });
  });

  /*
   * The states that pull-request mode and the Flux Operator produce are read by the status
   * backend from Bitbucket and the operator's objects; here the card of the real app (production
   * build) is shown the status backend's answer for them (the plugin's fixtures, routed in the
   * browser), to see and screenshot how it renders them.
   */
  /** Opens the fleet repository's Component page with `item` as the status backend's answer. */
  async function cardShowing(item: ClusterBootstrapStatusLike) {
    await page.route('**/api/flux-bootstrap/entity/**/clusters*', route =>
      route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify({
          entityRef: 'component:default/fleet-infra',
          clusters: [item.cluster],
          items: [item],
          unknownClusters: [],
        }),
      }),
    );
    await page.goto(`${sandbox.baseUrl}/catalog/default/component/fleet-infra`);
    const card = page.getByRole('article', { name: 'Flux bootstrap' });
    const row = card.getByRole('row', {
      name: new RegExp(`^${item.title!.replace(/[()]/g, '\\$&')} `),
    });
    return { card, row };
  }

  async function shootCard(name: string) {
    await page.waitForTimeout(300);
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    await page
      .getByRole('article', { name: 'Flux bootstrap' })
      .screenshot({ path: path.join(ARTIFACTS_DIR, `${name}.png`) });
    await page.unroute('**/api/flux-bootstrap/entity/**/clusters*');
  }

  it('renders the awaiting-merge look of the card: its chip, the pull request link, the reviewers', async () => {
    const item = exampleStatuses()['awaiting-merge'];
    const { card, row } = await cardShowing(item);
    const pr = card.getByRole('group', { name: 'Pull request' });
    await step(page, 'card awaiting-merge', problems, () =>
      row.getByRole('img', { name: 'State: Awaiting merge' }).waitFor(),
    );
    await expect(
      pr
        .getByRole('link', { name: '#12 flux/prod-ap → main' })
        .getAttribute('href'),
    ).resolves.toBe(item.pullRequest!.url);
    await expect(
      pr.getByRole('list', { name: 'Reviewers' }).textContent(),
    ).resolves.toContain('Alice Example: approved');
    await shootCard('card-awaiting-merge');
  });

  it('bootstraps a cluster through the Flux Operator with the template; its card shows the real status: Flux Operator, requested and installed version', async () => {
    const result = await api.runTemplate(
      BITBUCKET_TEMPLATE,
      {
        cluster: OPERATOR_CLUSTER,
        owner: 'group:default/platform-team',
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=fleet-operator`,
        private: true,
        branch: 'main',
        authentication: 'token',
        username: SANDBOX.user,
        distribution: 'operator',
        fluxVersion: '2.9.x',
        networkPolicy: true,
        token: '*'.repeat(sandbox.token.length),
      },
      { token: sandbox.token },
    );
    expectAllStepsSucceeded(result, [
      'generateKey',
      'migrate',
      'installMigrated',
    ]);
    const files = execFileSync(
      'git',
      [
        '--git-dir',
        sandbox.bitbucket.repoPath(SANDBOX.project, 'fleet-operator'),
        'ls-tree',
        '-r',
        '--name-only',
        'main',
      ],
      { encoding: 'utf8' },
    );
    expect(files).toContain(
      `clusters/${OPERATOR_CLUSTER}/flux-system/flux-instance.yaml`,
    );
    expect(files).not.toContain('gotk-components.yaml');
    await api.waitForEntity({ kind: 'Resource', name: OPERATOR_CLUSTER });
    await page.goto(
      `${sandbox.baseUrl}/catalog/default/resource/${OPERATOR_CLUSTER}`,
    );
    const card = page.getByRole('article', { name: 'Flux bootstrap' });
    await step(page, 'card operator', problems, () =>
      card.getByText('managed by Flux Operator').waitFor({ timeout: 60_000 }),
    );
    await expect(
      card
        .getByRole('group', { name: 'FluxInstance flux-system/flux' })
        .textContent(),
    ).resolves.toContain('requested 2.9.x, installed v2.9.4');
    await shootCard('card-operator');
  });
});

describe('scaffolder REST API', () => {
  it('bootstraps a second cluster from a personal repository with token auth (HTTPS)', async () => {
    const result = await api.runTemplate(
      BITBUCKET_TEMPLATE,
      {
        cluster: 'staging',
        owner: 'group:default/platform-team',
        repoUrl: `${sandbox.bitbucket.host}?project=~${SANDBOX.user}&repo=fleet-personal`,
        private: true,
        branch: 'main',
        authentication: 'token',
        username: SANDBOX.user,
        networkPolicy: true,
        // What the form's Secret field leaves in the values: one * per character.
        token: '*'.repeat(sandbox.token.length),
      },
      { token: sandbox.token },
    );
    expectAllStepsSucceeded(result, ['generateKey']);
    expect(result.steps.generateKey).toBe('skipped');
    const links = Object.fromEntries(
      (result.output?.links ?? []).map(l => [l.title, l]),
    );
    expect(links.Cluster.entityRef).toBe('resource:default/staging');
    const entity = await api.waitForEntity({
      kind: 'Resource',
      name: 'staging',
    });
    expect(entity.spec.type).toBe('kubernetes-cluster');
    expect(
      entity.metadata.annotations['flux-bootstrap.io/fleet-repository'],
    ).toContain(`/users/${SANDBOX.user}/repos/fleet-personal/browse`);
    const status = await api.get<{ state: string; source?: { url?: string } }>(
      '/api/flux-bootstrap/clusters/staging?refresh=true',
    );
    expect(status.state).toBe('ready');
    expect(status.source?.url).toMatch(
      /^https?:\/\/.*\/scm\/~demo\/fleet-personal\.git$/,
    );
    expect(JSON.stringify(result.events)).not.toContain(sandbox.token);
  });

  it("bootstraps a third cluster from an existing repository over SSH with the user's own key, without a token", async () => {
    const project = SANDBOX.project;
    sandbox.bitbucket.createRepo(project, 'fleet-git', {
      defaultBranch: 'main',
      initialCommit: true,
    });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-key-'));
    // Encrypted, as in the Flux guide (--private-key-file with --password): push-manifests
    // decrypts it for the push, flux:generate-key (url mode) stores it with the passphrase as the
    // Secret's password, and the Flux simulator decrypts it with that password like
    // source-controller.
    const passphrase = 'e2e-canary-passphrase-6a0f';
    try {
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        passphrase,
        '-C',
        '',
        '-f',
        path.join(dir, 'id'),
      ]);
      const privateKey = fs.readFileSync(path.join(dir, 'id'), 'utf8');
      const publicKey = fs
        .readFileSync(path.join(dir, 'id.pub'), 'utf8')
        .trim();
      sandbox.bitbucket.addAccessKey(
        project,
        'fleet-git',
        { text: publicKey, label: 'e2e' },
        'REPO_WRITE',
      );
      const url = sandbox.bitbucket.cloneUrls(project, 'fleet-git').ssh!;

      const run = () =>
        api.runTemplate(
          GIT_TEMPLATE,
          {
            cluster: 'edge',
            owner: 'group:default/platform-team',
            url,
            branch: 'main',
            // What the form's secret fields leave in the values.
            sshPrivateKey: '*'.repeat(privateKey.length),
            sshPassphrase: '*'.repeat(passphrase.length),
          },
          { sshPrivateKey: privateKey, sshPassphrase: passphrase },
        );
      const result = await run();
      expectAllStepsSucceeded(result);
      const head = branchHead(project, 'fleet-git');
      // Flux (the simulator runs a real `git ls-remote` with the Secret's identity, known_hosts
      // and password against the real sshd) synced the pushed commit.
      const status = await api.get<{
        state: string;
        sync?: { lastAppliedRevision?: string };
      }>('/api/flux-bootstrap/clusters/edge?refresh=true');
      expect(status.state).toBe('ready');
      expect(status.sync?.lastAppliedRevision).toBe(`main@sha1:${head}`);
      const edge = new KubeHttp(sandbox.clusters.edge.kube);
      const secret = await edge
        .expect<{ data: Record<string, string> }>(
          'GET',
          '/api/v1/namespaces/flux-system/secrets/flux-system',
        )
        .finally(() => edge.close());
      expect(Object.keys(secret.body.data).sort()).toEqual([
        'identity',
        'identity.pub',
        'known_hosts',
        'password',
      ]);
      expect(
        Buffer.from(secret.body.data['identity.pub'], 'base64').toString(),
      ).toBe(`${publicKey.split(' ').slice(0, 2).join(' ')}\n`);
      expect(Buffer.from(secret.body.data.identity, 'base64').toString()).toBe(
        privateKey,
      );
      const entity = await api.waitForEntity({
        kind: 'Resource',
        name: 'edge',
      });
      expect(
        entity.metadata.annotations['flux-bootstrap.io/fleet-repository'],
      ).toBe(url);
      const events = JSON.stringify(result.events);
      expect(events).not.toContain(privateKey.split('\n')[1]);
      expect(events).not.toContain(passphrase);

      // Again: converges without a new commit.
      const again = await run();
      expectAllStepsSucceeded(again);
      expect(branchHead(project, 'fleet-git')).toBe(head);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
