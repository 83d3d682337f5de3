import fs from 'node:fs';
import http from 'node:http';
import { chromium, Browser } from 'playwright-core';
import { closeServer, listenLoopback, trackSockets } from '../common/net';
import { BitbucketDouble, startBitbucketDouble } from './double';

jest.setTimeout(90_000);

const chromiumPath = () =>
  [
    process.env.CHROMIUM_PATH,
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
  ].find(p => p && fs.existsSync(p));

/**
 * The consent flow as a person does it in a real browser (headless Chromium): the double's
 * login page, then its consent page, clicking "Allow"; the application receives the code.
 */
describe('Bitbucket double: OAuth consent in a real browser', () => {
  let bb: BitbucketDouble;
  let browser: Browser;
  let app: http.Server;
  let appSockets: ReturnType<typeof trackSockets>;
  let callbackUrl: string;
  const received: URL[] = [];

  beforeAll(async () => {
    const exe = chromiumPath();
    if (!exe)
      throw new Error(
        'Chromium is not installed (Debian package "chromium"; test/peers/scripts/install-system-deps.sh installs it)',
      );
    bb = await startBitbucketDouble({ contextPath: '/bitbucket' });
    bb.addUser({
      name: 'alice',
      displayName: 'Alice Liddell',
      password: 'alice-pw',
    });
    app = http.createServer((req, res) => {
      received.push(new URL(req.url ?? '/', callbackUrl));
      res
        .writeHead(200, { 'Content-Type': 'text/html' })
        .end('<p id="done">signed in</p>');
    });
    appSockets = trackSockets(app);
    const port = await listenLoopback(app);
    callbackUrl = `http://127.0.0.1:${port}/api/auth/bitbucketServer/handler/frame`;
    browser = await chromium.launch({
      executablePath: exe,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'],
    });
  });
  afterAll(async () => {
    await browser?.close();
    if (app) await closeServer(app, appSockets);
    await bb?.stop();
  });

  it('signs in on the login page, clicks Allow, and the application gets a code that yields a token of that user', async () => {
    const client = bb.registerOAuthClient({
      name: 'Backstage',
      redirectUri: callbackUrl,
    });
    const page = await browser.newPage();
    const params = new URLSearchParams({
      client_id: client.clientId,
      redirect_uri: callbackUrl,
      response_type: 'code',
      scope: 'PUBLIC_REPOS REPO_READ REPO_WRITE',
      state: 'browser-state',
    });
    await page.goto(`${client.authorizeUrl}?${params}`);
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('alice-pw');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page
      .getByRole('heading', { name: 'Allow Backstage to access your account?' })
      .waitFor();
    const scopes = await page.locator('#scopes li').allTextContents();
    expect(scopes).toEqual([
      'PUBLIC_REPOS: View public projects and repositories',
      'REPO_READ: View projects and repositories',
      'REPO_WRITE: Update projects and repositories',
    ]);
    await Promise.all([
      page.waitForURL(u => u.toString().startsWith(callbackUrl)),
      page.getByRole('button', { name: 'Allow' }).click(),
    ]);
    expect(await page.locator('#done').textContent()).toBe('signed in');
    // (Chromium also asks the application for /favicon.ico)
    const back = received.find(u => u.searchParams.has('code'))!;
    expect(back.searchParams.get('state')).toBe('browser-state');
    const code = back.searchParams.get('code')!;
    const t = await fetch(client.tokenUrl, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: callbackUrl,
        client_id: client.clientId,
        client_secret: client.clientSecret,
      }).toString(),
    }).then(r => r.json());
    const who = await fetch(`${bb.baseUrl}/plugins/servlet/applinks/whoami`, {
      headers: { Authorization: `Bearer ${t.access_token}` },
    });
    expect(await who.text()).toBe('alice');
    expect(bb.state().audit.map(a => [a.action, a.actor])).toEqual([
      ['LOGIN', 'alice'],
      ['OAUTH_AUTHORIZED', 'alice'],
      ['OAUTH_TOKEN_ISSUED', 'alice'],
    ]);
    await page.close();
  });
});
