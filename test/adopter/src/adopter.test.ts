/* eslint-disable no-console */
import { spawn, spawnSync, ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import {
  buildFluxBundle,
  freePort,
  getSharedKubeApiserver,
  serveFluxBundles,
  startBitbucketDouble,
  waitFor,
  TEST_GROUND_KUBERNETES_VERSIONS,
} from '@flux-bootstrap/test-peers';
import { buildAndPack, PackedPackage, repoRoot, sh } from './packs';

// The adopter test: what docs/installation.md tells a new adopter to do, done to a fresh
// create-app Backstage app (fixture/), with the packages as `npm pack` makes them (never the
// workspace) and the rest from the registry, on the Node.js an adopter runs (22 by default,
// FLUX_ADOPTER_NODE=24 for the other). It fails when a package would not install, load or build
// in someone else's app.

jest.setTimeout(45 * 60_000);

const { ensureNodeRuntime } = require(path.join(
  repoRoot,
  'scripts/node-runtimes.js',
));

const FLUX_VERSION = 'v2.9.4';
const CLUSTER = 'adopter';
const PROJECT = 'FLEET';
const USER = 'adopter';

/** Steps and their durations, printed at the end: what this test adds to CI. */
const timings: [string, number][] = [];
async function step<T>(name: string, fn: () => T | Promise<T>): Promise<T> {
  const t0 = Date.now();
  console.log(`[adopter] ${name}…`);
  try {
    return await fn();
  } finally {
    const s = Math.round((Date.now() - t0) / 1000);
    timings.push([name, s]);
    console.log(`[adopter] ${name}: ${s} s`);
  }
}

describe('a new Backstage app adopts the Flux bootstrap packages', () => {
  const stops: (() => Promise<void> | void)[] = [];
  let work: string;
  let app: string;
  let packed: PackedPackage[];
  let env: NodeJS.ProcessEnv;
  const t0 = Date.now();

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-adopter-'));
    app = path.join(work, 'app');
    const rt = await step(
      `Node ${process.env.FLUX_ADOPTER_NODE ?? '22'} from the registry`,
      () => ensureNodeRuntime(process.env.FLUX_ADOPTER_NODE ?? '22'),
    );
    console.log(`[adopter] the app runs on Node ${rt.version}`);
    env = {
      ...process.env,
      PATH: `${rt.binDir}:${process.env.PATH}`,
      // Native addons (better-sqlite3) are built against this Node's own headers.
      npm_config_nodedir: rt.dir,
      npm_config_loglevel: 'error',
      npm_config_fund: 'false',
      npm_config_audit: 'false',
      CI: 'true',
    };
    // jest's NODE_ENV=test would select no browserslist environment of the app, and an empty
    // one makes rspack read the development list; the tools set it themselves, as for an adopter.
    delete env.NODE_ENV;
    delete env.NODE_OPTIONS;
    delete env.JEST_WORKER_ID;
    packed = await step('npm pack of the six packages', () =>
      buildAndPack(path.join(work, 'tarballs')),
    );
    await step('copy the fixture app', () =>
      fs.cpSync(path.join(__dirname, '../fixture'), app, {
        recursive: true,
        filter: src => !/[\\/](node_modules|dist|dist-types)$/.test(src),
      }),
    );
  });

  afterAll(async () => {
    for (const stop of stops.reverse()) {
      try {
        await stop();
      } catch (e) {
        console.log(`[adopter] cleanup: ${e}`);
      }
    }
    if (work) fs.rmSync(work, { recursive: true, force: true });
    const total = Math.round((Date.now() - t0) / 1000);
    console.log(
      `[adopter] durations: ${timings
        .map(([n, s]) => `${n} ${s} s`)
        .join('; ')}; total ${total} s`,
    );
  });

  const tarball = (name: string) => {
    const p = packed.find(x => x.name === name);
    if (!p) throw new Error(`${name} was not packed`);
    return p.tarball;
  };

  it('installs, starts, lists the actions, dry-runs the template and builds the frontend', async () => {
    // The app as create-app leaves it: installed.
    await step('npm install (the app as it is)', () =>
      sh('npm', ['install'], { cwd: app, env }),
    );
    // docs/installation.md "Install the packages", from tarballs: the backend's four and the
    // templates, then the frontend's two (common comes with both).
    await step('npm install (backend packages from tarballs)', () =>
      sh(
        'npm',
        [
          'install',
          '-w',
          'packages/backend',
          tarball('@flux-bootstrap/plugin-flux-bootstrap-common'),
          tarball('@flux-bootstrap/plugin-flux-bootstrap-node'),
          tarball('@flux-bootstrap/plugin-flux-bootstrap-backend'),
          tarball(
            '@flux-bootstrap/plugin-scaffolder-backend-module-flux-bootstrap',
          ),
          tarball('@flux-bootstrap/flux-bootstrap-templates'),
        ],
        { cwd: app, env },
      ),
    );
    await step('npm install (frontend packages from tarballs)', () =>
      sh(
        'npm',
        [
          'install',
          '-w',
          'packages/app',
          tarball('@flux-bootstrap/plugin-flux-bootstrap-common'),
          tarball('@flux-bootstrap/plugin-flux-bootstrap'),
        ],
        { cwd: app, env },
      ),
    );

    // One copy of every @backstage/* package our plugins use: no nested duplicates.
    await step('npm ls: no duplicate @backstage/* packages', () => {
      const used = new Set<string>();
      for (const p of packed) {
        for (const dep of Object.keys({
          ...p.manifest.dependencies,
          ...p.manifest.peerDependencies,
        })) {
          if (dep.startsWith('@backstage/')) used.add(dep);
        }
      }
      const versions = new Map<string, Set<string>>(
        [...used].map(dep => [dep, new Set<string>()]),
      );
      // npm ls exits non-zero for problems such as unmet optional peers; the tree is still
      // complete, and duplicates are what this step checks.
      const tree = JSON.parse(
        spawnSync('npm', ['ls', '--all', '--json'], {
          cwd: app,
          env,
          encoding: 'utf8',
          maxBuffer: 512 * 1024 * 1024,
        }).stdout,
      );
      const walk = (node: any) => {
        for (const [name, child] of Object.entries<any>(
          node.dependencies ?? {},
        )) {
          if (versions.has(name) && child.version) {
            versions.get(name)!.add(child.version);
          }
          walk(child);
        }
      };
      walk(tree);
      const duplicated = [...versions]
        .filter(([, v]) => v.size !== 1)
        .map(([dep, v]) => `${dep}: ${[...v].join(', ') || 'missing'}`);
      expect(duplicated).toEqual([]);
      // Nothing nested under our own packages either.
      for (const p of packed) {
        const nested = path.join(app, 'node_modules', p.name, 'node_modules');
        const backstage = fs.existsSync(path.join(nested, '@backstage'))
          ? fs.readdirSync(path.join(nested, '@backstage'))
          : [];
        expect({ pkg: p.name, nested: backstage }).toEqual({
          pkg: p.name,
          nested: [],
        });
      }
    });

    // docs/installation.md "Backend": the two lines in packages/backend/src/index.ts.
    const indexTs = path.join(app, 'packages/backend/src/index.ts');
    const source = fs.readFileSync(indexTs, 'utf8');
    fs.writeFileSync(
      indexTs,
      source.replace(
        'backend.start();',
        [
          `backend.add(`,
          `  import('@flux-bootstrap/plugin-scaffolder-backend-module-flux-bootstrap'),`,
          `);`,
          `backend.add(import('@flux-bootstrap/plugin-flux-bootstrap-backend'));`,
          ``,
          `backend.start();`,
        ].join('\n'),
      ),
    );

    // The peers the configuration points at, all on 127.0.0.1.
    const kube = getSharedKubeApiserver();
    const bitbucket = await startBitbucketDouble({
      ssh: true,
      defaultBranchName: 'main',
    });
    stops.push(() => bitbucket.stop());
    const token = `adopter-${crypto.randomBytes(12).toString('base64url')}`;
    bitbucket.addUser({ name: USER, displayName: 'Adopter' });
    bitbucket.grantGlobal(USER, 'PROJECT_CREATE');
    bitbucket.addProject({ key: PROJECT, name: 'Fleet' });
    bitbucket.grantProject(PROJECT, { user: USER }, 'PROJECT_ADMIN');
    bitbucket.addToken({ token, user: USER, name: 'adopter' });
    const bundle = await buildFluxBundle({ version: FLUX_VERSION });
    const bundles = await serveFluxBundles([bundle]);
    stops.push(() => bundles.stop());

    // docs/installation.md "Configuration" and "Templates", merged into the app's app-config.yaml.
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const apiToken = crypto.randomBytes(24).toString('base64url');
    const configFile = path.join(app, 'app-config.yaml');
    const config = YAML.parse(fs.readFileSync(configFile, 'utf8'));
    const templatesDir =
      '../../node_modules/@flux-bootstrap/flux-bootstrap-templates';
    Object.assign(config, {
      integrations: {
        bitbucketServer: [
          { host: bitbucket.host, apiBaseUrl: bitbucket.apiBaseUrl, token },
        ],
      },
      kubernetes: {
        serviceLocatorMethod: { type: 'multiTenant' },
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [
              {
                name: CLUSTER,
                url: kube.url,
                authProvider: 'serviceAccount',
                serviceAccountToken: kube.adminToken,
                caData: Buffer.from(kube.caPem).toString('base64'),
              },
            ],
          },
        ],
      },
      fluxBootstrap: {
        kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
        bitbucketServer: [
          { host: bitbucket.host, sshHost: bitbucket.ssh!.host },
        ],
        manifests: {
          baseUrl: bundles.baseUrl,
          defaultVersion: FLUX_VERSION,
          sha256: { [FLUX_VERSION]: bundle.sha256 },
        },
      },
    });
    config.catalog.locations.push(
      ...['flux-bootstrap-bitbucket-server', 'flux-bootstrap-git'].map(t => ({
        type: 'file',
        target: `${templatesDir}/${t}/template.yaml`,
        rules: [{ allow: ['Template'] }],
      })),
    );
    config.app.baseUrl = baseUrl;
    Object.assign(config.backend, {
      baseUrl,
      listen: { host: '127.0.0.1', port },
      cors: { ...config.backend.cors, origin: baseUrl },
      auth: {
        externalAccess: [
          {
            type: 'static',
            options: { token: apiToken, subject: 'adopter-test' },
          },
        ],
      },
    });
    fs.writeFileSync(configFile, YAML.stringify(config));

    // docs/installation.md: nothing to add to packages/app with feature discovery; build it.
    await step('backstage-cli package build (frontend)', () =>
      sh('npx', ['backstage-cli', 'package', 'build'], {
        cwd: path.join(app, 'packages/app'),
        env,
      }),
    );
    expect(fs.existsSync(path.join(app, 'packages/app/dist/index.html'))).toBe(
      true,
    );

    const backend = await step('start the backend', async () => {
      const child: ChildProcess = spawn(
        'npx',
        ['backstage-cli', 'package', 'start'],
        {
          cwd: path.join(app, 'packages/backend'),
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let log = '';
      const append = (b: Buffer) => {
        log = (log + b.toString('utf8')).slice(-200_000);
      };
      child.stdout?.on('data', append);
      child.stderr?.on('data', append);
      stops.push(
        () =>
          new Promise<void>(resolve => {
            if (child.exitCode !== null || !child.pid) {
              resolve();
              return;
            }
            child.once('exit', () => resolve());
            process.kill(-child.pid, 'SIGTERM');
            setTimeout(() => {
              try {
                process.kill(-child.pid!, 'SIGKILL');
              } catch {
                // gone
              }
            }, 10_000).unref();
          }),
      );
      const logTail = () => `backend log (tail):\n${log.slice(-6000)}`;
      await waitFor(
        'the backend: GET /api/flux-bootstrap/health',
        async () => {
          if (child.exitCode !== null) {
            throw new Error(`the backend exited (${child.exitCode})`);
          }
          const res = await fetch(`${baseUrl}/api/flux-bootstrap/health`);
          return res.status === 200 ? await res.json() : undefined;
        },
        { timeoutMs: 5 * 60_000, intervalMs: 1000, diagnostics: logTail },
      ).then(health => expect(health).toEqual({ status: 'ok' }));
      return { logTail };
    });

    const api = async (method: string, p: string, body?: unknown) => {
      const res = await fetch(`${baseUrl}${p}`, {
        method,
        headers: {
          authorization: `Bearer ${apiToken}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, text, json: () => JSON.parse(text) };
    };

    await step('the scaffolder lists the actions', async () => {
      const res = await api('GET', '/api/scaffolder/v2/actions');
      expect(res.status).toBe(200);
      const ids = res.json().map((a: { id: string }) => a.id);
      expect(ids).toEqual(
        expect.arrayContaining([
          'bitbucket:create-repo',
          'flux:generate-key',
          'flux:push-manifests',
          'flux:install',
        ]),
      );
    });

    const template = await step(
      'the catalog reads the template from the package',
      () =>
        waitFor(
          'Template flux-bootstrap-bitbucket-server in the catalog',
          async () => {
            const res = await api(
              'GET',
              '/api/catalog/entities/by-name/template/default/flux-bootstrap-bitbucket-server',
            );
            return res.status === 200 ? res.json() : undefined;
          },
          {
            timeoutMs: 3 * 60_000,
            intervalMs: 2000,
            diagnostics: backend.logTail,
          },
        ),
    );

    await step('dry run of the Bitbucket Server template', async () => {
      const slug = 'fleet-adopter';
      const res = await api('POST', '/api/scaffolder/v2/dry-run', {
        template,
        values: {
          cluster: CLUSTER,
          owner: 'group:default/guests',
          repoUrl: `${bitbucket.host}?project=${PROJECT}&repo=${slug}`,
          branch: 'main',
          private: true,
          authentication: 'ssh',
          token: '*'.repeat(token.length),
        },
        secrets: { token },
        directoryContents: [],
      });
      if (res.status !== 200) {
        throw new Error(
          `dry run: ${res.status} ${res.text}\n${backend.logTail()}`,
        );
      }
      const result = res.json();
      const steps: Record<string, string> = {};
      for (const { body } of result.log) {
        if (body.stepId && body.status) steps[body.stepId] = body.status;
      }
      const log = result.log.map((l: any) => l.body.message ?? '').join('\n');
      expect({ steps, log }).toEqual({
        steps: expect.objectContaining({
          createRepo: 'completed',
          pushManifests: 'completed',
          generateKey: 'completed',
          install: 'completed',
        }),
        log,
      });
      expect(result.directoryContents.map((f: any) => f.path)).toEqual(
        expect.arrayContaining([
          `clusters/${CLUSTER}/flux-system/gotk-components.yaml`,
          `clusters/${CLUSTER}/flux-system/gotk-sync.yaml`,
        ]),
      );
      // A dry run changes nothing on Bitbucket.
      expect(bitbucket.state().repos.filter(r => r.slug === slug)).toEqual([]);
    });
  });
});
