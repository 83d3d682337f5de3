/* eslint-disable no-console */
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, startTestRedis } from '@flux-bootstrap/test-peers';
import { launchChromium, screenshot } from './browser';
import { startTestPostgres } from './reliability/postgres';
import { connectMcp, FLUX_TOOLS, MCP_PATH, toolText } from './mcp';
import { repoRoot, SANDBOX } from './sandbox';
import { BackstageApi, guestToken, TaskResult } from './scaffolder';

// The README's commands as a newcomer types them: `npm start` (its first command) starts the app
// from app-config.yaml, and `npm run sandbox` starts the peers and the app against them, in which
// a cluster bootstraps end to end. Each is spawned in its own process group and stopped with
// SIGINT to the group, as Ctrl-C in a terminal does.
jest.setTimeout(10 * 60_000);

interface Command {
  child: ChildProcess;
  output: string[];
  /** Resolves with the first output line matching `re` (rejects when the command exits first). */
  waitForLine(re: RegExp): Promise<RegExpExecArray>;
  /**
   * SIGINT to the process group; resolves once npm has exited and no process of the group is
   * left (SIGKILL after 60 s), with how npm ended.
   */
  interrupt(): Promise<{ code: number | null; signal: string | null }>;
}

const running: Command[] = [];

/**
 * The environment of a newcomer's shell: none of the variables app-config.yaml reads
 * (BITBUCKET_*, K8S_CLUSTER_*, FLUX_MANIFESTS_BASE_URL, POSTGRES_*, REDIS_URL, MCP_TOKEN) that this
 * shell may have.
 */
function freshShellEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^(BITBUCKET_|K8S_CLUSTER_|POSTGRES_|FLUX_MANIFESTS_BASE_URL$|REDIS_URL$|MCP_TOKEN$)/.test(
          k,
        ),
    ),
  );
}

function runNpm(args: string[], env: NodeJS.ProcessEnv = {}): Command {
  const child = spawn('npm', args, {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...freshShellEnv(), FORCE_COLOR: '0', NO_COLOR: '1', ...env },
  });
  const output: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const exited = new Promise<{ code: number | null; signal: string | null }>(
    resolve => child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  /** True while any process of the group is alive. */
  const groupAlive = () => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const stream of [child.stdout!, child.stderr!]) {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', chunk => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        for (const w of [...waiters]) {
          const m = w.re.exec(line);
          if (m) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(m);
          }
        }
      }
    });
  }
  const command: Command = {
    child,
    output,
    waitForLine: re => {
      const seen = output.map(l => re.exec(l)).find(Boolean);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ re, resolve });
        exited.then(code =>
          reject(
            new Error(
              `npm ${args.join(' ')} exited (${JSON.stringify(
                code,
              )}) before printing ${re}:\n${output.slice(-40).join('\n')}`,
            ),
          ),
        );
      });
    },
    interrupt: async () => {
      if (groupAlive()) process.kill(-child.pid!, 'SIGINT');
      const timer = setTimeout(() => {
        if (groupAlive()) process.kill(-child.pid!, 'SIGKILL');
      }, 60_000);
      const how = await exited;
      while (groupAlive()) await new Promise(r => setTimeout(r, 200));
      clearTimeout(timer);
      return how;
    },
  };
  running.push(command);
  return command;
}

/** True when something accepts TCP connections at the host and port of `url`. */
function listening(url: string): Promise<boolean> {
  const { hostname, port, protocol } = new URL(url);
  return new Promise(resolve => {
    const socket = net.connect({
      host: hostname.replace(/^\[|\]$/g, ''),
      port: Number(port || (protocol === 'https:' ? 443 : 80)),
    });
    socket.setTimeout(5000);
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

/** The titles of the templates in the templates list. */
const TEMPLATE_TITLES = {
  bitbucket: 'Bootstrap Flux on a cluster (Bitbucket Server)',
  git: 'Bootstrap Flux on a cluster (existing repository over SSH, no token)',
};

/** How npm ends on Ctrl-C: it exits on the signal itself once its script has ended. */
const CTRL_C = { code: null, signal: 'SIGINT' };

afterAll(async () => {
  for (const c of running) await c.interrupt();
});

describe('npm start (the README’s first command)', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-start-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('starts the app from app-config.yaml: the frontend, guest sign-in, catalog with both templates, the actions and the status API; Ctrl-C stops it', async () => {
    // Only the port differs from app-config.yaml (7007 may be taken on a shared machine).
    const port = await freePort();
    const portConfig = path.join(tmp, 'port.yaml');
    fs.writeFileSync(
      portConfig,
      JSON.stringify({
        app: { baseUrl: `http://127.0.0.1:${port}` },
        backend: {
          baseUrl: `http://127.0.0.1:${port}`,
          listen: { port },
        },
      }),
    );
    const start = runNpm(['start', '--', '--config', portConfig]);
    const [, url] = await start.waitForLine(
      /Flux Bootstrap Backstage is running: (\S+)/,
    );
    expect(url).toBe(`http://127.0.0.1:${port}`);

    const html = await (await fetch(url)).text();
    expect(html).toMatch(/<title>\s*Flux Bootstrap\s*<\/title>/);
    const api = await BackstageApi.asGuest(url);
    for (const name of [
      'flux-bootstrap-bitbucket-server',
      'flux-bootstrap-git',
    ]) {
      const template = await api.waitForEntity({ kind: 'Template', name });
      expect(template.metadata.name).toBe(name);
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
      ]),
    );
    // The cluster of app-config.yaml's placeholders (K8S_CLUSTER_NAME unset).
    const clusters = await api.get<{ items: { name: string }[] }>(
      '/api/flux-bootstrap/clusters',
    );
    // (An app-config.local.yaml of this checkout may configure its own clusters instead.)
    const localConfig = fs.existsSync(
      path.join(repoRoot, 'app-config.local.yaml'),
    );
    const names = clusters.items.map(c => c.name);
    expect(names).toEqual(localConfig ? names : ['my-cluster']);
    // In-memory SQLite and the in-memory cache by default.
    expect(start.output.join('\n')).not.toContain('Database: PostgreSQL');
    expect(start.output.join('\n')).not.toContain('Cache: Redis');

    // MCP for AI agents: the signed-in user's token works; no static token without MCP_TOKEN.
    const agent = await connectMcp(url, await guestToken(url));
    try {
      const { tools } = await agent.listTools();
      expect(tools.map(t => t.name).sort()).toEqual([...FLUX_TOOLS]);
      const listed = await agent.callTool({
        name: 'flux-bootstrap.list-clusters',
        arguments: {},
      });
      expect(listed.isError).toBeFalsy();
      expect(listed.structuredContent).toEqual(clusters);
    } finally {
      await agent.close();
    }
    expect(start.output.join('\n')).not.toContain('MCP: agents may call');
    const anonymous = await fetch(`${url}${MCP_PATH}`, { method: 'POST' });
    expect(anonymous.status).toBe(401);

    // npm ends as Ctrl-C ends it, after the script stopped the backend; nothing is left behind
    // (interrupt() waits until no process of the group is alive).
    expect(await start.interrupt()).toEqual(CTRL_C);
    expect(start.output).toContain('SIGINT: stopping the backend…');
    expect(await listening(url)).toBe(false);
  });
});

describe('npm start with POSTGRES_* and REDIS_URL (the production-like variant of the README)', () => {
  it('stores its data in that PostgreSQL and its cache entries in that Redis, and says so without the passwords', async () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-start-pg-'));
    const pg = await startTestPostgres();
    const redisPassword = `canary-redis-${Date.now().toString(36)}`;
    const redis = await startTestRedis({ password: redisPassword });
    try {
      const port = await freePort();
      const portConfig = path.join(tmp, 'port.yaml');
      fs.writeFileSync(
        portConfig,
        JSON.stringify({
          app: { baseUrl: `http://127.0.0.1:${port}` },
          backend: {
            baseUrl: `http://127.0.0.1:${port}`,
            listen: { port },
          },
        }),
      );
      const start = runNpm(['start', '--', '--config', portConfig], {
        POSTGRES_HOST: pg.host,
        POSTGRES_PORT: String(pg.port),
        POSTGRES_USER: pg.user,
        POSTGRES_PASSWORD: pg.password,
        REDIS_URL: redis.url,
      });
      const [, url] = await start.waitForLine(
        /Flux Bootstrap Backstage is running: (\S+)/,
      );
      const said = start.output.join('\n');
      expect(said).toContain(
        `Database: PostgreSQL at ${pg.host}:${pg.port} (POSTGRES_* variables)`,
      );
      expect(said).toContain(
        `Cache: Redis at redis://127.0.0.1:${redis.port} (REDIS_URL)`,
      );

      // The plugins' databases are in that PostgreSQL …
      expect(await pg.databases()).toEqual(
        expect.arrayContaining([
          'backstage_plugin_catalog',
          'backstage_plugin_scaffolder',
          'backstage_plugin_auth',
        ]),
      );
      // … and the status API's cache entry for the configured cluster is in that Redis.
      const api = await BackstageApi.asGuest(url);
      const status = await api.get<{ cluster: string; state: string }>(
        '/api/flux-bootstrap/clusters/my-cluster',
      );
      expect(status.cluster).toBe('my-cluster');
      expect((await redis.keys('flux-bootstrap:*')).length).toBeGreaterThan(0);

      expect(await start.interrupt()).toEqual(CTRL_C);
      const all = start.output.join('\n');
      expect(all).not.toContain(redisPassword);
      expect(all).not.toContain(pg.password);
    } finally {
      await redis.stop();
      await pg.stop();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('npm start with MCP_TOKEN (docs/how-to/mcp.md)', () => {
  let tmp: string;
  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-start-mcp-'));
  });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('lets an agent with the static token list and call the tools, and nothing else; Ctrl-C stops it', async () => {
    const port = await freePort();
    const portConfig = path.join(tmp, 'port.yaml');
    fs.writeFileSync(
      portConfig,
      JSON.stringify({
        app: { baseUrl: `http://127.0.0.1:${port}` },
        backend: { baseUrl: `http://127.0.0.1:${port}`, listen: { port } },
      }),
    );
    const token = `e2e-mcp-${Date.now().toString(36)}-4b9d1f7a03c2`;
    const start = runNpm(['start', '--', '--config', portConfig], {
      MCP_TOKEN: token,
    });
    const [, url] = await start.waitForLine(
      /Flux Bootstrap Backstage is running: (\S+)/,
    );
    expect(start.output.join('\n')).toContain(
      'MCP: agents may call /api/mcp-actions/v1 with the static token of MCP_TOKEN',
    );

    const agent = await connectMcp(url, token);
    try {
      expect(agent.getServerVersion()?.name).toBe('flux-bootstrap-backstage');
      const { tools } = await agent.listTools();
      expect(tools.map(t => t.name).sort()).toEqual([...FLUX_TOOLS]);
      const listed = await agent.callTool({
        name: 'flux-bootstrap.list-clusters',
        arguments: {},
      });
      const [first] = (
        listed.structuredContent as { items: { name: string }[] }
      ).items;
      const status = await agent.callTool({
        name: 'flux-bootstrap.get-cluster-status',
        arguments: { cluster: first.name },
      });
      expect(status.isError).toBeFalsy();
      // app-config.yaml's placeholder cluster (unless an app-config.local.yaml of this checkout
      // configures its own): nothing listens there, and the reason says so.
      const localConfig = fs.existsSync(
        path.join(repoRoot, 'app-config.local.yaml'),
      );
      const placeholder = {
        cluster: 'my-cluster',
        state: 'unreachable',
        reason: expect.stringContaining('127.0.0.1:6443'),
      };
      expect(status.structuredContent).toMatchObject(
        localConfig ? { cluster: first.name } : placeholder,
      );
      const unknown = await agent.callTool({
        name: 'flux-bootstrap.get-cluster-status',
        arguments: { cluster: 'nope' },
      });
      expect(unknown.isError).toBe(true);
      expect(toolText(unknown)).toMatch(/^NotFoundError: No cluster named/);
      // The static token is a service: it may read, never operate.
      const suspend = await agent.callTool({
        name: 'flux-bootstrap.suspend-cluster',
        arguments: { cluster: first.name, reason: 'agent with a static token' },
      });
      expect(suspend.isError).toBe(true);
      expect(toolText(suspend)).toMatch(
        /^NotAllowedError: .*requires a signed-in user/,
      );
    } finally {
      await agent.close();
    }

    // The token is limited to the MCP endpoint and flux-bootstrap (accessRestrictions) …
    const catalog = await fetch(`${url}/api/catalog/entities`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(catalog.status).toBe(403);
    // … a wrong one is refused …
    const wrong = await fetch(`${url}${MCP_PATH}`, {
      method: 'POST',
      headers: {
        Authorization: 'Bearer not-the-token-0000',
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(wrong.status).toBe(401);
    // … and it never shows up in the app's output.
    expect(start.output.join('\n')).not.toContain(token);

    expect(await start.interrupt()).toEqual(CTRL_C);
    expect(await listening(url)).toBe(false);
  });
});

describe('npm run sandbox', () => {
  it('starts the peers and the labelled app; a cluster bootstraps end to end through it; Ctrl-C stops everything', async () => {
    const port = await freePort();
    const sandbox = runNpm(['run', 'sandbox', '--', '--port', String(port)]);
    const [, url] = await sandbox.waitForLine(
      new RegExp(`\\[sandbox\\]\\s+${SANDBOX.title} is running: (\\S+)`),
    );
    expect(url).toBe(`http://127.0.0.1:${port}`);
    const [, bitbucketUrl, token] = await sandbox.waitForLine(
      /\[sandbox\]\s+Bitbucket double: (\S+) \(user "[^"]+", token (\S+)\)/,
    );
    const [, kubeUrl] = await sandbox.waitForLine(
      /\[sandbox\]\s+Kubernetes:\s+(\S+)/,
    );
    // Everything the sandbox says is labelled as the sandbox.
    expect(
      sandbox.output.filter(l => l.trim() && !/^\s*(>|\[sandbox\])/.test(l)),
    ).toEqual([]);
    expect(await (await fetch(url)).text()).toMatch(
      new RegExp(`<title>\\s*${SANDBOX.title}\\s*</title>`),
    );

    // The printed steps in a browser: open it, sign in as guest, Create, the templates list,
    // choose "Bootstrap Flux on a cluster (Bitbucket Server)", its form.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({
        viewport: { width: 1400, height: 1000 },
      });
      await page.goto(url);
      await page.getByRole('button', { name: 'Enter' }).click();
      await page.getByText(SANDBOX.title).first().waitFor();
      await page.getByRole('link', { name: 'Create' }).first().click();
      await page.waitForURL(/\/create(\/templates)?\/?$/);
      const card = (title: string) =>
        page
          .locator('.MuiCard-root')
          .filter({ has: page.getByText(title, { exact: true }) });
      await card(TEMPLATE_TITLES.git).waitFor();
      await card(TEMPLATE_TITLES.bitbucket).waitFor();
      await screenshot(page, 'commands-sandbox-templates');
      await card(TEMPLATE_TITLES.bitbucket)
        .getByRole('button', { name: 'Choose' })
        .click();
      await page.waitForURL(
        /\/create\/templates\/default\/flux-bootstrap-bitbucket-server$/,
      );
      await page.getByTestId('flux-cluster-picker').waitFor();
    } finally {
      await browser.close();
    }

    // What the printed instructions say: the Bitbucket Server template, cluster "sandbox",
    // project FLEET, any repository name, SSH.
    const api = await BackstageApi.asGuest(url);
    const host = new URL(bitbucketUrl).host;
    const result: TaskResult = await api.runTemplate(
      'template:default/flux-bootstrap-bitbucket-server',
      {
        cluster: SANDBOX.cluster,
        owner: 'group:default/platform-team',
        repoUrl: `${host}?project=${SANDBOX.project}&repo=fleet-from-command`,
        private: true,
        branch: 'main',
        authentication: 'ssh',
        networkPolicy: true,
        token: '*'.repeat(token.length),
      },
      { token },
    );
    if (result.status !== 'completed') {
      throw new Error(
        `task ${result.status}: ${JSON.stringify(result.steps)}\n${result.log
          .slice(-30)
          .join('\n')}`,
      );
    }
    // Every step completed, but the template's Flux Operator migration steps, which only run
    // with distribution operator over a flux bootstrap folder.
    expect(
      Object.entries(result.steps).filter(
        ([id, s]) =>
          s !== 'completed' &&
          !(['migrate', 'installMigrated'].includes(id) && s === 'skipped'),
      ),
    ).toEqual([]);
    const status = await api.get<{
      state: string;
      sync?: { lastAppliedRevision?: string };
      inSync: boolean | null;
    }>(`/api/flux-bootstrap/clusters/${SANDBOX.cluster}?refresh=true`);
    expect(status.state).toBe('ready');
    expect(status.inSync).toBe(true);
    expect(result.output?.text?.[0].content).toContain(
      status.sync!.lastAppliedRevision!,
    );
    const cluster = await api.waitForEntity({
      kind: 'Resource',
      name: SANDBOX.cluster,
    });
    expect(cluster.spec.type).toBe('kubernetes-cluster');

    for (const u of [url, bitbucketUrl, kubeUrl]) {
      expect(await listening(u)).toBe(true);
    }
    expect(await sandbox.interrupt()).toEqual(CTRL_C);
    expect(sandbox.output).toContain('[sandbox] stopped');
    for (const u of [url, bitbucketUrl, kubeUrl]) {
      expect(await listening(u)).toBe(false);
    }
  });
});
