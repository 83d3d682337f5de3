/* eslint-disable no-console */
import fs from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { KubeHttp } from '@flux-bootstrap/test-peers';
import {
  ARTIFACTS_DIR,
  launchChromium,
  recordProblems,
  screenshot,
  serverSpkiHash,
} from './browser';
import { repoRoot, SANDBOX, Sandbox, startSandbox } from './sandbox';
import { BackstageApi } from './scaffolder';

// "Act as the user on Bitbucket" end to end (docs/how-to/act-as-user.md): the sandbox app with
// Backstage's Bitbucket Server auth provider against the Bitbucket double's OAuth 2.0
// authorization server (HTTPS, its own CA), driven by headless Chromium like a person. The
// repository step asks the user to sign in to Bitbucket; the person logs in and allows the app
// on the double's own pages (a popup); the steps then act as that person: the double's state
// attributes the repository, the pushes and the access key to them, not to the integration's
// token owner; the decommission template removes the key and the folder as them too. A person
// without the right to create repositories gets Bitbucket's refusal in the first step, before
// anything is created.
jest.setTimeout(10 * 60_000);

const TEMPLATE = 'template:default/flux-bootstrap-bitbucket-server';
const DECOMMISSION_TEMPLATE = 'template:default/flux-decommission';
const TEMPLATE_PAGE =
  '/create/templates/default/flux-bootstrap-bitbucket-server';
/** A person who may create repositories in the project (REPO_CREATE), not the integration's owner. */
const ALICE = {
  name: 'alice',
  displayName: 'Alice Example',
  password: 'alice-e2e-pw-31c7',
};
/** A person who may only write to the project's repositories: no REPO_CREATE, no PROJECT_ADMIN. */
const BOB = {
  name: 'bob',
  displayName: 'Bob Example',
  password: 'bob-e2e-pw-8d02',
};

let sandbox: Sandbox;
let api: BackstageApi;
let browser: Browser;
const sandboxLog: string[] = [];

beforeAll(async () => {
  sandbox = await startSandbox({
    bitbucketSignIn: true,
    extraClusters: ['https-token'],
    log: line => {
      sandboxLog.push(line);
      console.log(line);
    },
  });
  const bb = sandbox.bitbucket;
  bb.addUser({ ...ALICE, email: 'alice@example.com' });
  bb.grantProject(SANDBOX.project, { user: ALICE.name }, 'REPO_CREATE');
  bb.addUser({ ...BOB, email: 'bob@example.com' });
  bb.grantProject(SANDBOX.project, { user: BOB.name }, 'PROJECT_WRITE');
  api = await BackstageApi.asGuest(sandbox.baseUrl);
  // The double serves HTTPS with a certificate of its own test CA. Chromium accepts exactly that
  // certificate (its public key), checked against the CA first; every other certificate error
  // still fails. Trusting the CA itself would need an NSS database (certutil), which the test
  // machine does not have, and --ignore-certificate-errors would accept any server.
  const spki = await serverSpkiHash(bb.baseUrl, bb.caPem!);
  browser = await launchChromium({
    extraArgs: [`--ignore-certificate-errors-spki-list=${spki}`],
  });
}, 8 * 60_000);

afterAll(async () => {
  await browser?.close();
  if (sandbox) {
    fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'actas-backend.log'),
      sandbox.backendLogs().join('\n'),
    );
    fs.writeFileSync(
      path.join(ARTIFACTS_DIR, 'actas-sandbox.log'),
      sandboxLog.join('\n'),
    );
    await sandbox.stop();
  }
}, 2 * 60_000);

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
    const shot = await screenshot(page, `failed-actas-${name}`).catch(
      () => 'none',
    );
    throw new Error(
      `${name}: ${
        (e as Error).message
      }\nscreenshot: ${shot}\nbrowser problems:\n${problems.join('\n')}`,
    );
  }
}

/** A fresh browser profile (no Backstage or Bitbucket session), signed in to the app as guest. */
async function newSignedInPage(): Promise<{
  context: BrowserContext;
  page: Page;
  problems: string[];
}> {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 1000 },
  });
  const page = await context.newPage();
  const problems = recordProblems(page);
  await page.goto(sandbox.baseUrl);
  await page.getByRole('button', { name: 'Enter' }).click();
  // The sign-in page shows the app's title too: wait until it is gone, so the guest session is
  // stored before the next navigation reloads the app.
  await page
    .getByText('Select a sign-in method')
    .waitFor({ state: 'detached' });
  await page.getByText(SANDBOX.title).first().waitFor();
  return { context, page, problems };
}

/**
 * Opens the Bitbucket template, picks the cluster, and on the repository step signs in to
 * Bitbucket as `person`: Backstage's "Login Required" dialog, then in the popup the double's
 * login page and its consent page, "Allow".
 */
async function openTemplateAndSignIn(
  page: Page,
  problems: string[],
  person: typeof ALICE,
  opts: { cluster: string; shots?: boolean; rejectFirst?: boolean },
) {
  await page.goto(`${sandbox.baseUrl}${TEMPLATE_PAGE}`);
  await step(page, 'cluster', problems, async () => {
    await page.getByTestId('flux-cluster-picker').click();
    await page.getByTestId(`cluster-option-${opts.cluster}`).click();
    await page.getByRole('button', { name: 'Next' }).click();
  });
  const dialog = page.getByRole('dialog').filter({ hasText: 'Login Required' });
  await step(page, 'login dialog', problems, async () => {
    await dialog.getByText('Bitbucket Server', { exact: true }).waitFor();
    await page
      .getByText(
        `Sign in to Bitbucket (${sandbox.bitbucket.host}) in the window Backstage offers`,
        { exact: false },
      )
      .waitFor();
    if (opts.shots) {
      await page.waitForTimeout(300); // the dialog's fade-in
      // The viewport only: the dialog's backdrop covers what is on screen.
      await page.screenshot({
        path: path.join(ARTIFACTS_DIR, 'actas-01-login-required.png'),
      });
    }
  });
  if (opts.rejectFirst) {
    // "Reject All": the field says so, the steps would fall back, and the person can still
    // sign in from the field.
    await step(page, 'rejected sign-in', problems, async () => {
      await dialog.getByRole('button', { name: 'Reject All' }).click();
      await page
        .getByRole('alert')
        .filter({ hasText: 'Not signed in to Bitbucket' })
        .waitFor();
      await page.getByRole('button', { name: 'Sign in to Bitbucket' }).click();
      await dialog.getByText('Bitbucket Server', { exact: true }).waitFor();
    });
  }
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    dialog.getByRole('button', { name: 'Log in' }).click(),
  ]);
  await step(popup, 'bitbucket login page', problems, async () => {
    await popup.getByLabel('Username').fill(person.name);
    await popup.getByLabel('Password').fill(person.password);
    if (opts.shots) await screenshot(popup, 'actas-02-bitbucket-login');
    await popup.getByRole('button', { name: 'Log in' }).click();
  });
  const scopes = await step(
    popup,
    'bitbucket consent page',
    problems,
    async () => {
      await popup
        .getByRole('heading', {
          name: `Allow ${SANDBOX.title} to access your account?`,
        })
        .waitFor();
      expect(await popup.locator('#current-user').textContent()).toContain(
        person.name,
      );
      if (opts.shots) await screenshot(popup, 'actas-03-bitbucket-consent');
      return popup.locator('#scopes li').allTextContents();
    },
  );
  await Promise.all([
    popup.waitForEvent('close'),
    popup.getByRole('button', { name: 'Allow' }).click(),
  ]);
  await step(page, 'signed in', problems, () =>
    page
      .getByText(
        `Signed in to Bitbucket as ${person.displayName} (${sandbox.bitbucket.host}): the steps act as you.`,
      )
      .waitFor(),
  );
  return { scopes };
}

/** Types the project and repository as a person does, then goes on to the review and creates. */
async function fillRepositoryAndCreate(
  page: Page,
  problems: string[],
  repo: string,
  opts: { shots?: boolean } = {},
): Promise<string> {
  return step(page, 'form', problems, async () => {
    await page.getByRole('textbox', { name: 'Projects' }).click();
    await page.keyboard.type(SANDBOX.project, { delay: 20 });
    await page.getByRole('textbox', { name: 'Repository' }).click();
    await page.keyboard.type(repo, { delay: 20 });
    if (opts.shots) await screenshot(page, 'actas-04-repository-signed-in');
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText('SSH with a deploy key').first().waitFor();
    await page.getByRole('button', { name: 'Review' }).click();
    await page
      .getByText(
        `${sandbox.bitbucket.host}?repo=${repo}&project=${SANDBOX.project}`,
      )
      .waitFor();
    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/create\/tasks\/[0-9a-f-]+$/);
    return page.url().split('/').pop()!;
  });
}

/** The person's Bitbucket token, as the app's Bitbucket sign-in holds it (its refresh endpoint). */
async function signInToken(page: Page): Promise<string> {
  const refreshed = await page.request.get(
    `${sandbox.baseUrl}/api/auth/bitbucketServer/refresh?optional&env=development`,
    { headers: { 'X-Requested-With': 'XMLHttpRequest' } },
  );
  expect(refreshed.status()).toBe(200);
  const token = (
    (await refreshed.json()) as { providerInfo: { accessToken: string } }
  ).providerInfo.accessToken;
  expect(token.length).toBeGreaterThan(8);
  return token;
}

/** The double's audit entries about one repository. */
function auditOf(slug: string) {
  return sandbox.bitbucket
    .state()
    .audit.filter(a => a.slug === slug)
    .map(a => ({ action: a.action, actor: a.actor, via: a.via }));
}

describe('browser: the Bitbucket template acts on Bitbucket as the signed-in person', () => {
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ context, page, problems } = await newSignedInPage());
  });
  afterAll(async () => context?.close());

  it("signs in to Bitbucket on the double's pages and the repository, Flux's commits and the access key are the person's", async () => {
    const { scopes } = await openTemplateAndSignIn(page, problems, ALICE, {
      cluster: SANDBOX.cluster,
      shots: true,
    });
    // The scopes the app asked for: ScmAuth's and the template's additionalScopes.
    expect(scopes.map(s => s.split(':')[0]).sort()).toEqual(
      [
        'PROJECT_ADMIN',
        'PUBLIC_REPOS',
        'REPO_ADMIN',
        'REPO_READ',
        'REPO_WRITE',
      ].sort(),
    );
    // The token field says it is not needed now.
    await page
      .getByText(
        `You are signed in to Bitbucket (${sandbox.bitbucket.host}): the steps act as you.`,
        { exact: false },
      )
      .waitFor();
    const taskId = await fillRepositoryAndCreate(
      page,
      problems,
      'fleet-alice',
      {
        shots: true,
      },
    );
    await step(page, 'task page', problems, () =>
      page
        .getByRole('link', { name: 'Cluster', exact: true })
        .waitFor({ timeout: 5 * 60_000 }),
    );
    const result = await api.waitForTask(taskId);
    expect(result.status).toBe('completed');

    const state = sandbox.bitbucket.state();
    const clientVia = `oauth:${sandbox.signIn!.clientId}`;
    const repo = state.repos.find(
      r => r.projectKey === SANDBOX.project && r.slug === 'fleet-alice',
    );
    expect(repo?.createdBy).toBe(ALICE.name);
    const keys = state.accessKeys.filter(
      k => k.projectKey === SANDBOX.project && k.slug === 'fleet-alice',
    );
    expect(keys).toHaveLength(1);
    expect(keys[0].createdBy).toBe(ALICE.name);
    // Bitbucket's audit: created, pushed (Flux's manifests) and keyed by alice through the
    // app's OAuth client — nothing by the integration token's owner.
    const audit = auditOf('fleet-alice');
    expect(audit).toEqual(
      expect.arrayContaining([
        { action: 'REPO_CREATED', actor: ALICE.name, via: clientVia },
        { action: 'PUSH', actor: ALICE.name, via: clientVia },
        { action: 'ACCESS_KEY_ADDED', actor: ALICE.name, via: clientVia },
      ]),
    );
    expect(audit.filter(a => a.actor !== ALICE.name)).toEqual([]);
    // The last push: Flux's manifests (the first made the default branch).
    const pushed = state.audit
      .filter(a => a.slug === 'fleet-alice' && a.action === 'PUSH')
      .at(-1)!;
    const head = (pushed.details as { refs: { ref: string; new: string }[] })
      .refs[0];
    expect(head.ref).toBe('refs/heads/main');
    // The pushed commit is the one Flux applied.
    const status = await api.get<{
      state: string;
      sync?: { lastAppliedRevision?: string };
    }>(`/api/flux-bootstrap/clusters/${SANDBOX.cluster}?refresh=true`);
    expect(status.state).toBe('ready');
    expect(status.sync?.lastAppliedRevision).toBe(`main@sha1:${head.new}`);
    // The user's token is in no task event.
    const tokens = state.tokens.filter(
      t => t.kind === 'oauth' && t.user === ALICE.name,
    );
    expect(tokens.length).toBeGreaterThan(0);
    expect(JSON.stringify(result.events)).not.toMatch(/Bearer\s+\S{8,}/);
  });

  it("with HTTPS for Flux, stores the integration's token in the cluster, never the person's short-lived sign-in token", async () => {
    const userToken = await signInToken(page);
    // The form as the browser sends it: the token field empty, the sign-in in the secrets.
    const result = await api.runTemplate(
      TEMPLATE,
      {
        cluster: 'https-token',
        owner: 'group:default/platform-team',
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=fleet-https`,
        private: true,
        branch: 'main',
        authentication: 'token',
        username: SANDBOX.user, // the integration token's owner
        networkPolicy: true,
      },
      { USER_OAUTH_TOKEN: userToken },
    );
    expect(result.status).toBe('completed');
    const repo = sandbox.bitbucket
      .state()
      .repos.find(r => r.slug === 'fleet-https');
    expect(repo?.createdBy).toBe(ALICE.name);
    const kube = new KubeHttp(sandbox.clusters['https-token'].kube);
    const secret = await kube
      .expect<{ data: Record<string, string> }>(
        'GET',
        '/api/v1/namespaces/flux-system/secrets/flux-system',
      )
      .finally(() => kube.close());
    const decoded = (k: string) =>
      Buffer.from(secret.body.data[k] ?? '', 'base64').toString();
    expect(decoded('username')).toBe(SANDBOX.user);
    expect(decoded('password')).toBe(sandbox.token);
    expect(JSON.stringify(secret.body)).not.toContain(
      Buffer.from(userToken).toString('base64'),
    );
    expect(JSON.stringify(result.events)).not.toContain(userToken);
    // Nor in any line the backend logged (the auth provider's and the steps').
    expect(sandbox.backendLogs().join('\n')).not.toContain(userToken);
  });

  it('removes Flux as the person too: the decommission template deletes the key and the folder as them', async () => {
    const userToken = await signInToken(page);
    const seq = Math.max(0, ...sandbox.bitbucket.state().audit.map(a => a.seq));
    const result = await api.runTemplate(
      DECOMMISSION_TEMPLATE,
      {
        cluster: SANDBOX.cluster,
        confirm: SANDBOX.cluster,
        keepNamespace: false,
        prune: false,
        cleanRepository: true,
        repoUrl: `${sandbox.bitbucket.host}?project=${SANDBOX.project}&repo=fleet-alice`,
        branch: 'main',
      },
      { USER_OAUTH_TOKEN: userToken },
    );
    expect(result.status).toBe('completed');
    const state = sandbox.bitbucket.state();
    expect(
      state.accessKeys.filter(
        k => k.projectKey === SANDBOX.project && k.slug === 'fleet-alice',
      ),
    ).toEqual([]);
    const clientVia = `oauth:${sandbox.signIn!.clientId}`;
    const changes = state.audit
      .filter(a => a.seq > seq && a.slug === 'fleet-alice')
      .map(a => ({ action: a.action, actor: a.actor, via: a.via }));
    expect(changes).toEqual(
      expect.arrayContaining([
        { action: 'ACCESS_KEY_REMOVED', actor: ALICE.name, via: clientVia },
        { action: 'PUSH', actor: ALICE.name, via: clientVia },
      ]),
    );
    expect(changes.filter(a => a.actor !== ALICE.name)).toEqual([]);
    expect(JSON.stringify(result.events)).not.toContain(userToken);
  });
});

describe('browser: a person without the right to create repositories', () => {
  let context: BrowserContext;
  let page: Page;
  let problems: string[];

  beforeAll(async () => {
    ({ context, page, problems } = await newSignedInPage());
  });
  afterAll(async () => context?.close());

  it("gets Bitbucket's refusal in the first step, and nothing is created", async () => {
    await openTemplateAndSignIn(page, problems, BOB, {
      cluster: SANDBOX.cluster,
      rejectFirst: true,
    });
    const before = sandbox.bitbucket.state();
    const taskId = await fillRepositoryAndCreate(page, problems, 'fleet-bob');
    const result = await api.waitForTask(taskId);
    expect(result.status).toBe('failed');
    expect(result.steps.createRepo).toBe('failed');
    for (const later of ['pushManifests', 'generateKey', 'install']) {
      expect([undefined, 'skipped']).toContain(result.steps[later]);
    }
    // What the task page shows the person.
    const error = page.getByText(/REPO_CREATE/).first();
    await step(page, 'error on the task page', problems, () =>
      error.waitFor({ timeout: 60_000 }),
    );
    await screenshot(page, 'actas-05-permission-error');
    // Bitbucket's refusal, in words: who, what, and the permission it takes.
    expect(result.log.join('\n')).toContain(
      'The token input may not create repositories in FLEET: it needs the project permission "Create repository" (REPO_CREATE) or PROJECT_ADMIN on project FLEET (HTTP 401). Bitbucket said: You are not permitted to create repositories in project FLEET',
    );

    const after = sandbox.bitbucket.state();
    expect(after.repos.filter(r => r.slug === 'fleet-bob')).toEqual([]);
    expect(after.accessKeys.length).toBe(before.accessKeys.length);
    expect(after.repos.length).toBe(before.repos.length);
    const bobs = after.audit
      .filter(a => a.actor === BOB.name)
      .map(a => a.action);
    // Bob signed in and allowed the app; Bitbucket changed nothing for him.
    expect(bobs).toEqual(
      expect.arrayContaining([
        'LOGIN',
        'OAUTH_AUTHORIZED',
        'OAUTH_TOKEN_ISSUED',
      ]),
    );
    expect(
      bobs.filter(
        a =>
          ![
            'LOGIN',
            'OAUTH_AUTHORIZED',
            'OAUTH_TOKEN_ISSUED',
            'OAUTH_TOKEN_REFRESHED',
          ].includes(a),
      ),
    ).toEqual([]);
  });
});

afterAll(() => {
  if (process.env.UPDATE_DOCS_IMAGES !== '1') return;
  const docsImages = path.join(repoRoot, 'docs', 'images');
  for (const [from, to] of Object.entries({
    'actas-01-login-required.png': 'act-as-user-login-required.png',
    'actas-03-bitbucket-consent.png': 'act-as-user-consent.png',
    'actas-04-repository-signed-in.png': 'act-as-user-signed-in.png',
    'actas-05-permission-error.png': 'act-as-user-permission-error.png',
  })) {
    const src = path.join(ARTIFACTS_DIR, `${from}`);
    if (fs.existsSync(src)) fs.copyFileSync(src, path.join(docsImages, to));
  }
});
