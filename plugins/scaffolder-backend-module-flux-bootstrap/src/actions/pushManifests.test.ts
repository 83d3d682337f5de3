import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader } from '@backstage/config';
import {
  BitbucketDouble,
  buildFluxBundle,
  FluxBundleServer,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run,
  serveFluxBundles,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { generateSshKeyPair } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import yaml from 'yaml';
import { runAction as runScaffolderAction } from './__testUtils__/actionHarness';
import { seedProject } from './__testUtils__/peers';
import {
  createFluxPushManifestsAction,
  pushManifestsInput,
} from './pushManifests';
import { examples } from './pushManifests.examples';

// Integration tests of flux:push-manifests against the Bitbucket Server double of
// @flux-bootstrap/test-peers: real git http-backend behind /scm and a real sshd, plus the Flux
// release bundle fixture served on loopback.

jest.setTimeout(90_000);

const INPUT_TOKEN = `canary-input-token-${Math.random().toString(36).slice(2)}`;
const INTEGRATION_TOKEN = `canary-integration-token-${Math.random()
  .toString(36)
  .slice(2)}`;

/** Everything that left the action (log lines, outputs, errors); scanned for canaries. */
const leaked: string[] = [];

// Asynchronous on purpose: the double serves git from this process.
async function gitCli(args: string[], token?: string): Promise<string> {
  const config: [string, string][] = token
    ? [
        ...PEER_GIT_CONFIG,
        ['http.extraHeader', `Authorization: Bearer ${token}`],
      ]
    : PEER_GIT_CONFIG;
  return (await run('git', args, { env: peerGitEnv({}, config) })).stdout;
}

describe('flux:push-manifests', () => {
  let bb: BitbucketDouble;
  let bundles: FluxBundleServer;
  let sha256: string;
  let tmp: string;
  let counter = 0;

  beforeAll(async () => {
    bb = await startBitbucketDouble({ ssh: true, contextPath: '/bitbucket' });
    seedProject(bb, { key: 'FLUX', name: 'Flux Fleet' }, [
      { name: 'alice', permission: 'PROJECT_WRITE', token: INPUT_TOKEN },
      { name: 'ci', permission: 'PROJECT_WRITE', token: INTEGRATION_TOKEN },
    ]);
    const bundle = await buildFluxBundle({ version: 'v2.9.4' });
    sha256 = bundle.sha256;
    bundles = await serveFluxBundles([bundle]);
  }, 90_000);
  afterAll(async () => {
    await bundles?.stop();
    await bb?.stop();
  });
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'push-manifests-action-'));
    bb.clearRequests();
    bundles.clearRequests();
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  function config(
    extra: { sha256?: Record<string, string>; requireUser?: boolean } = {},
  ) {
    return new ConfigReader({
      integrations: {
        bitbucketServer: [
          {
            host: bb.host,
            apiBaseUrl: bb.apiBaseUrl,
            token: INTEGRATION_TOKEN,
          },
        ],
      },
      scaffolder: extra.requireUser ? { requireScmUserCredentials: true } : {},
      fluxBootstrap: {
        bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
        manifests: {
          baseUrl: bundles.baseUrl,
          cacheDir: path.join(tmp, 'bundle-cache'),
          ...(extra.sha256 ? { sha256: extra.sha256 } : {}),
        },
      },
    });
  }

  function newRepo(initialCommit = false) {
    const name = `fleet-${++counter}`;
    const { slug } = bb.createRepo('FLUX', name, {
      defaultBranch: 'main',
      initialCommit,
    });
    return {
      name,
      slug,
      bare: bb.repoPath('FLUX', slug),
      urls: bb.cloneUrls('FLUX', slug),
    };
  }

  async function runAction(
    input: Record<string, unknown>,
    opts: {
      secrets?: Record<string, string>;
      isDryRun?: boolean;
      cfg?: ConfigReader;
    } = {},
  ) {
    const r = await runScaffolderAction(createFluxPushManifestsAction, input, {
      factoryOptions: { config: opts.cfg ?? config() },
      workspacePath: fs.mkdtempSync(path.join(tmp, 'ws-')),
      secrets: opts.secrets,
      dryRun: opts.isDryRun,
      produced: leaked,
    });
    return {
      lines: r.logs,
      outputs: r.outputs,
      // Every checkpoint entered, in order.
      checkpoints: r.checkpoints.map(c => c.key),
      workspacePath: r.workspacePath,
      error: r.error as any,
    };
  }

  async function commits(bare: string, branch = 'main') {
    return (
      await gitCli([
        '--git-dir',
        bare,
        'log',
        '--format=%H%x1f%an%x1f%s',
        branch,
      ])
    )
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(l => {
        const [id, author, subject] = l.split('\x1f');
        return { id, author, subject };
      });
  }

  it('pushes the three files to a Bitbucket repository in two checkpointed commits, then converges', async () => {
    const repo = newRepo();
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
      token: INPUT_TOKEN,
      cluster: 'prod-eu',
    };
    const first = await runAction(input);
    expect(first.error).toBeUndefined();
    const log = await commits(repo.bare);
    expect(log.map(c => c.subject)).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
    ]);
    expect(log.every(c => c.author === 'Flux')).toBe(true);
    expect(first.checkpoints).toEqual(['push-components', 'push-sync']);
    const dir = 'clusters/prod-eu/flux-system';
    expect(first.outputs).toEqual({
      commitHash: log[0].id,
      componentsCommit: log[1].id,
      syncCommit: log[0].id,
      changed: true,
      manifestsPath: dir,
      revision: `main@sha1:${log[0].id}`,
      syncUrl: `ssh://git@${bb.ssh!.host}/flux/${repo.slug}.git`,
      files: [
        `${dir}/gotk-components.yaml`,
        `${dir}/gotk-sync.yaml`,
        `${dir}/kustomization.yaml`,
      ],
    });
    for (const f of first.outputs.files as string[]) {
      expect(fs.readFileSync(path.join(first.workspacePath, f), 'utf8')).toBe(
        await gitCli(['--git-dir', repo.bare, 'show', `main:${f}`]),
      );
    }
    const sync = yaml
      .parseAllDocuments(
        await gitCli([
          '--git-dir',
          repo.bare,
          'show',
          `main:${dir}/gotk-sync.yaml`,
        ]),
      )
      .map(d => d.toJS());
    expect(sync[0].spec).toEqual({
      interval: '1m0s',
      ref: { branch: 'main' },
      secretRef: { name: 'flux-system' },
      url: `ssh://git@${bb.ssh!.host}/flux/${repo.slug}.git`,
    });
    expect(sync[1].spec.path).toBe('./clusters/prod-eu');
    // git over HTTPS carried the input token as a Bearer header
    const gitRequests = bb.requests().filter(r => r.path.startsWith('/scm/'));
    expect(gitRequests.length).toBeGreaterThan(0);
    expect(
      gitRequests.every(
        r => r.headers.authorization === `Bearer ${INPUT_TOKEN}`,
      ),
    ).toBe(true);

    const again = await runAction(input);
    expect(again.error).toBeUndefined();
    expect(again.outputs).toMatchObject({
      changed: false,
      commitHash: log[0].id,
      revision: `main@sha1:${log[0].id}`,
    });
    expect(again.outputs.componentsCommit).toBeUndefined();
    expect(await commits(repo.bare)).toHaveLength(2);
    expect(again.lines.join('\n')).toMatch(
      /component manifests are up to date/,
    );

    const changed = await runAction({
      ...input,
      componentsExtra: ['source-watcher'],
    });
    const log2 = await commits(repo.bare);
    expect(log2).toHaveLength(3);
    expect(log2[0].subject).toBe('Add Flux v2.9.4 component manifests');
    expect(changed.outputs).toMatchObject({
      changed: true,
      componentsCommit: log2[0].id,
      commitHash: log2[0].id,
    });
  });

  it('applies non-default options, HTTPS sync with tokenAuth and the integration credentials', async () => {
    const repo = newRepo(true);
    const r = await runAction({
      repoUrl: `${bb.host}?project=Flux%20Fleet&repo=${repo.name}`,
      path: './clusters/staging/',
      branch: 'staging',
      namespace: 'flux',
      secretName: 'fleet-https',
      tokenAuth: true,
      logLevel: 'debug',
      networkPolicy: false,
      registry: 'registry.example.com/fluxcd',
      imagePullSecret: 'regcred',
      tolerationKeys: ['dedicated'],
      recurseSubmodules: true,
      interval: '5m',
      authorName: 'Backstage',
      authorEmail: 'backstage@example.com',
      commitMessageAppendix: 'Requested in Backstage',
    });
    expect(r.error).toBeUndefined();
    const log = await commits(repo.bare, 'staging');
    expect(log.map(c => [c.subject, c.author])).toEqual([
      ['Add Flux sync manifests', 'Backstage'],
      ['Add Flux v2.9.4 component manifests', 'Backstage'],
      ['Initial commit', expect.any(String)],
    ]);
    const body = await gitCli([
      '--git-dir',
      repo.bare,
      'log',
      '-1',
      '--format=%B',
      'staging',
    ]);
    expect(body.trim()).toBe(
      'Add Flux sync manifests\n\nRequested in Backstage',
    );
    const sync = yaml
      .parseAllDocuments(
        await gitCli([
          '--git-dir',
          repo.bare,
          'show',
          'staging:clusters/staging/flux/gotk-sync.yaml',
        ]),
      )
      .map(d => d.toJS());
    expect(sync[0]).toMatchObject({
      metadata: { name: 'flux', namespace: 'flux' },
      spec: {
        interval: '5m0s',
        recurseSubmodules: true,
        ref: { branch: 'staging' },
        secretRef: { name: 'fleet-https' },
        url: `${bb.baseUrl}/scm/flux/${repo.slug}.git`,
      },
    });
    const components = await gitCli([
      '--git-dir',
      repo.bare,
      'show',
      'staging:clusters/staging/flux/gotk-components.yaml',
    ]);
    expect(components).toContain(
      'image: registry.example.com/fluxcd/source-controller:v1.9.4',
    );
    expect(components).toContain('- --log-level=debug');
    expect(components).toContain('- name: regcred');
    expect(components).not.toContain('kind: NetworkPolicy');
    expect(
      bb
        .requests()
        .filter(x => x.path.startsWith('/scm/'))
        .every(x => x.headers.authorization === `Bearer ${INTEGRATION_TOKEN}`),
    ).toBe(true);
    expect(r.outputs.manifestsPath).toBe('clusters/staging/flux');
  });

  it('pushes with Basic auth when the integration has a username and password', async () => {
    const repo = newRepo();
    const cfg = new ConfigReader({
      integrations: {
        bitbucketServer: [
          {
            host: bb.host,
            apiBaseUrl: bb.apiBaseUrl,
            username: 'ci',
            password: INTEGRATION_TOKEN,
          },
        ],
      },
      fluxBootstrap: {
        bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
        manifests: {
          baseUrl: bundles.baseUrl,
          cacheDir: path.join(tmp, 'bundle-cache'),
        },
      },
    });
    const r = await runAction(
      {
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        cluster: 'basic',
      },
      { cfg },
    );
    expect(r.error).toBeUndefined();
    const basic = `Basic ${Buffer.from(`ci:${INTEGRATION_TOKEN}`).toString(
      'base64',
    )}`;
    const git = bb.requests().filter(x => x.path.startsWith('/scm/'));
    expect(git.length).toBeGreaterThan(0);
    expect(git.every(x => x.headers.authorization === basic)).toBe(true);
    expect(r.lines.join('\n')).not.toContain(
      Buffer.from(`ci:${INTEGRATION_TOKEN}`).toString('base64'),
    );
  });

  it.each([
    ['branch', { branch: 'main\nkind: Secret' }],
    ['branch', { branch: '--upload-pack=touch /tmp/x' }],
    ['branch', { branch: 'a..b' }],
    ['path', { path: '../../etc' }],
    ['path', { path: '/abs' }],
    ['path', { path: 'clusters/%2e%2e/x' }],
    ['path', { path: 'clusters/x\n' }],
    ['fluxVersion', { fluxVersion: 'v2.9.4/../../evil' }],
    ['fluxVersion', { fluxVersion: 'latest' }],
    ['componentsExtra', { componentsExtra: ['tf-controller'] }],
    ['components', { components: ['source-controller'] }],
    ['namespace', { namespace: 'Flux_System' }],
    ['syncUrl', { syncUrl: 'https://user:pw@h/x.git' }],
    ['authorName', { authorName: 'Flux\nSigned-off-by: x' }],
    ['authorEmail', { authorEmail: 'a@b> evil' }],
  ])(
    'rejects a malicious or invalid %s before any request',
    async (field, bad) => {
      const repo = newRepo();
      const r = await runAction({
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        token: INPUT_TOKEN,
        cluster: 'c1',
        ...bad,
      });
      expect(r.error?.name).toBe('InputError');
      expect(r.error.field).toBe(field);
      expect(r.error.message).toContain(`"${field}"`);
      expect(bb.requests()).toEqual([]);
      expect(bundles.requests()).toEqual([]);
      expect(await gitCli(['--git-dir', repo.bare, 'for-each-ref'])).toBe('');
    },
  );

  it('refuses a bundle with a wrong sha256 and pushes nothing', async () => {
    const repo = newRepo();
    const r = await runAction(
      {
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        token: INPUT_TOKEN,
        cluster: 'c1',
      },
      { cfg: config({ sha256: { 'v2.9.4': 'f'.repeat(64) } }) },
    );
    expect(r.error?.message).toMatch(
      /has sha256 [0-9a-f]{64}, but fluxBootstrap\.manifests\.sha256 expects f{64}; refusing to use it/,
    );
    expect(bundles.requests()).toHaveLength(1);
    expect(bb.requests()).toEqual([]);

    const ok = await runAction(
      {
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        token: INPUT_TOKEN,
        cluster: 'c1',
      },
      { cfg: config({ sha256: { 'v2.9.4': sha256 } }) },
    );
    expect(ok.error).toBeUndefined();
    expect(ok.lines.join('\n')).toMatch(/verified/);
  });

  it('dry run: writes the files into the workspace and sends no request to Bitbucket', async () => {
    const repo = newRepo();
    const r = await runAction(
      {
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        token: INPUT_TOKEN,
        path: 'clusters/dev',
      },
      { isDryRun: true },
    );
    expect(r.error).toBeUndefined();
    expect(r.outputs).toMatchObject({
      commitHash: '',
      // no commit in a dry run; flux:install's dry run accepts this revision
      revision: 'main@sha1:',
      manifestsPath: 'clusters/dev/flux-system',
      syncUrl: `ssh://git@${bb.ssh!.host}/flux/${repo.slug}.git`,
    });
    expect(
      fs
        .readdirSync(path.join(r.workspacePath, 'clusters/dev/flux-system'))
        .sort(),
    ).toEqual(['gotk-components.yaml', 'gotk-sync.yaml', 'kustomization.yaml']);
    expect(bb.requests()).toEqual([]);
    expect(r.checkpoints).toEqual([]);
    expect(await gitCli(['--git-dir', repo.bare, 'for-each-ref'])).toBe('');
  });

  it('dry run over SSH does without knownHosts (flux:generate-key scans none in a dry run), and still checks given ones', async () => {
    const repo = newRepo();
    const pair = await generateSshKeyPair({ algorithm: 'ed25519' });
    const secrets = { sshPrivateKey: pair.privateKeyPem };
    const r = await runAction(
      { url: repo.urls.ssh, cluster: 'edge', knownHosts: '' },
      { secrets, isDryRun: true },
    );
    expect(r.error).toBeUndefined();
    expect(r.outputs).toMatchObject({
      commitHash: '',
      revision: 'main@sha1:',
      syncUrl: repo.urls.ssh,
    });
    expect(r.lines.join('\n')).toContain(
      'Dry run: no knownHosts given (flux:generate-key outputs them from its host key scan, which a dry run does not do); a real run requires them',
    );
    const bad = await runAction(
      { url: repo.urls.ssh, cluster: 'edge', knownHosts: 'not a host key' },
      { secrets, isDryRun: true },
    );
    expect(bad.error?.field).toBe('knownHosts');
    // A real run still requires them.
    const real = await runAction(
      { url: repo.urls.ssh, cluster: 'edge' },
      { secrets },
    );
    expect(real.error?.field).toBe('knownHosts');
    expect(bb.requests()).toEqual([]);
    expect(await gitCli(['--git-dir', repo.bare, 'for-each-ref'])).toBe('');
  });

  describe('over SSH with a key from the task secrets', () => {
    it('pushes with a passphrase-protected key, and the key appears nowhere', async () => {
      const repo = newRepo(true);
      const keyFile = path.join(tmp, 'id');
      const passphrase = `canary-passphrase-${Math.random()
        .toString(36)
        .slice(2)}`;
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ecdsa',
        '-b',
        '384',
        '-N',
        passphrase,
        '-C',
        '',
        '-f',
        keyFile,
      ]);
      const privateKey = fs.readFileSync(keyFile, 'utf8');
      bb.addAccessKey(
        'FLUX',
        repo.slug,
        {
          text: fs.readFileSync(`${keyFile}.pub`, 'utf8').trim(),
          label: 'supplied',
        },
        'REPO_WRITE',
      );
      const r = await runAction(
        {
          url: repo.urls.ssh,
          sshPrivateKeySecret: 'deployKey',
          sshPassphraseSecret: 'deployKeyPassphrase',
          knownHosts: bb.ssh!.knownHosts,
          path: 'clusters/edge',
        },
        { secrets: { deployKey: privateKey, deployKeyPassphrase: passphrase } },
      );
      expect(r.error).toBeUndefined();
      expect(r.outputs).toMatchObject({
        changed: true,
        syncUrl: repo.urls.ssh,
      });
      expect((await commits(repo.bare)).map(c => c.subject)).toEqual([
        'Add Flux sync manifests',
        'Add Flux v2.9.4 component manifests',
        'Initial commit',
      ]);
      const history = await gitCli([
        '--git-dir',
        repo.bare,
        'log',
        '-p',
        '--all',
      ]);
      const keyLines = privateKey
        .split('\n')
        .filter(l => l.length > 20 && !l.startsWith('-----'));
      for (const text of [history, leaked.join('\n')]) {
        for (const l of keyLines) expect(text).not.toContain(l);
        expect(text).not.toContain(passphrase);
      }
      // no request went to the Bitbucket REST API: only git over SSH
      expect(bb.requests().filter(x => x.path.startsWith('/rest/'))).toEqual(
        [],
      );
    });

    it('works with a key generated like flux:generate-key (PKCS#8)', async () => {
      const repo = newRepo();
      const pair = await generateSshKeyPair({ algorithm: 'ecdsa' });
      bb.addAccessKey(
        'FLUX',
        repo.slug,
        { text: pair.publicKey.trim() },
        'REPO_WRITE',
      );
      const r = await runAction(
        {
          url: repo.urls.ssh,
          knownHosts: bb.ssh!.knownHosts,
          cluster: 'edge-2',
        },
        { secrets: { sshPrivateKey: pair.privateKeyPem } },
      );
      expect(r.error).toBeUndefined();
      expect(r.outputs.manifestsPath).toBe('clusters/edge-2/flux-system');
    });

    it('requires the key in the task secrets and a known_hosts entry', async () => {
      const repo = newRepo();
      const missing = await runAction({
        url: repo.urls.ssh,
        knownHosts: bb.ssh!.knownHosts,
        cluster: 'x',
      });
      expect(missing.error?.field).toBe('sshPrivateKeySecret');
      const pair = await generateSshKeyPair({ algorithm: 'ed25519' });
      const noHosts = await runAction(
        { url: repo.urls.ssh, cluster: 'x' },
        { secrets: { sshPrivateKey: pair.privateKeyPem } },
      );
      expect(noHosts.error?.field).toBe('knownHosts');
      const both = await runAction({
        url: repo.urls.ssh,
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        cluster: 'x',
      });
      expect(both.error?.field).toBe('url');
      const badUrl = await runAction(
        {
          url: 'ssh://-oProxyCommand=touch%20x/r',
          knownHosts: bb.ssh!.knownHosts,
          cluster: 'x',
        },
        { secrets: { sshPrivateKey: pair.privateKeyPem } },
      );
      expect(badUrl.error?.field).toBe('url');
      expect(bb.requests()).toEqual([]);
    });
  });

  it("signs both commits with the integration's commitSigningKey when signCommits is on", async () => {
    const repo = newRepo();
    const input = {
      repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
      token: INPUT_TOKEN,
      cluster: 'signed',
      signCommits: true,
    };
    // No key configured: refused, naming the field, before any request.
    const unsigned = await runAction(input);
    expect(unsigned.error?.name).toBe('InputError');
    expect(unsigned.error.field).toBe('signCommits');
    expect(unsigned.error.message).toContain('has no commitSigningKey');
    expect(bb.requests()).toEqual([]);
    expect(bundles.requests()).toEqual([]);

    const gnupg = fs.mkdtempSync(path.join(tmp, 'gnupg-'));
    const gpgEnv = { ...process.env, GNUPGHOME: gnupg };
    const gpg = (args: string[]) =>
      execFileSync(
        'gpg',
        ['--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args],
        { env: gpgEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    let signingKey: string;
    try {
      gpg([
        '--quick-gen-key',
        'Flux Signer <signer@example.com>',
        'rsa2048',
        'sign',
        'never',
      ]);
      signingKey = gpg(['--armor', '--export-secret-keys']);
    } finally {
      // gpg started an agent for this GNUPGHOME; it must not outlive the test.
      execFileSync('gpgconf', ['--kill', 'gpg-agent'], {
        env: gpgEnv,
        stdio: 'ignore',
      });
    }
    const cfg = config();
    const data = cfg.get() as any;
    data.integrations.bitbucketServer[0].commitSigningKey = signingKey;
    const signed = await runAction(input, { cfg: new ConfigReader(data) });
    expect(signed.error).toBeUndefined();
    const { componentsCommit, syncCommit } = signed.outputs as Record<
      string,
      string
    >;
    expect(componentsCommit).toMatch(/^[0-9a-f]{40}$/);
    expect(syncCommit).toMatch(/^[0-9a-f]{40}$/);
    for (const commit of [componentsCommit, syncCommit]) {
      // Exits non-zero (and throws) unless the signature verifies against the signer's key.
      execFileSync('git', ['--git-dir', repo.bare, 'verify-commit', commit], {
        env: { ...peerGitEnv(), GNUPGHOME: gnupg },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    }
    const keyLines = signingKey
      .split('\n')
      .filter(l => l.length > 40 && !l.startsWith('-----'));
    expect(keyLines.length).toBeGreaterThan(0);
    const text = `${leaked.join('\n')}\n${await gitCli([
      '--git-dir',
      repo.bare,
      'log',
      '-p',
      '--all',
    ])}`;
    for (const l of keyLines) expect(text).not.toContain(l);
  });

  it('gives an omitted input its documented default: the schema the scaffolder documents is the one parsed', () => {
    const action = createFluxPushManifestsAction({ config: config() });
    const documented = (action.schema!.input as any).properties as Record<
      string,
      { default?: unknown }
    >;
    const minimal = { repoUrl: `${bb.host}?project=FLUX&repo=x`, cluster: 'c' };
    const parsed = pushManifestsInput.parse(minimal) as Record<string, unknown>;
    const withDefaults = Object.entries(documented).filter(
      ([, p]) => p.default !== undefined,
    );
    expect(withDefaults.map(([name]) => name)).toEqual(
      expect.arrayContaining(['branch', 'namespace', 'interval', 'authorName']),
    );
    for (const [name, { default: value }] of withDefaults) {
      // Omitting an input is the same as passing its documented default.
      expect([name, parsed[name]]).toEqual([
        name,
        (pushManifestsInput.parse({ ...minimal, [name]: value }) as any)[name],
      ]);
    }
    expect(parsed).toMatchObject({
      branch: 'main',
      path: 'clusters/c',
      namespace: 'flux-system',
      secretName: 'flux-system',
      interval: '1m0s',
      tokenAuth: false,
      registry: 'ghcr.io/fluxcd',
      logLevel: 'info',
      authorName: 'Flux',
      authorEmail: '',
      sshPrivateKeySecret: 'sshPrivateKey',
    });
  });

  it.each([
    ['url', { url: 'ssh://git@h:7999/flux/x.git' }],
    ['repoUrl', { repoUrl: undefined }],
    ['path', { cluster: undefined }],
    ['cluster', { cluster: 'a/../../b' }],
    ['componentsExtra', { componentsExtra: ['helm-controller'] }],
    [
      'tokenAuth',
      {
        repoUrl: undefined,
        url: 'ssh://git@h:7999/flux/x.git',
        tokenAuth: true,
      },
    ],
    [
      'signCommits',
      {
        repoUrl: undefined,
        url: 'ssh://git@h:7999/flux/x.git',
        signCommits: true,
      },
    ],
  ])(
    'refuses a cross-field violation naming %s, with no request sent',
    async (field, over) => {
      const repo = newRepo();
      const r = await runAction({
        repoUrl: `${bb.host}?project=FLUX&repo=${repo.name}`,
        token: INPUT_TOKEN,
        cluster: 'c1',
        ...over,
      });
      expect(r.error?.name).toBe('InputError');
      expect(r.error.field).toBe(field);
      expect(r.error.message).toMatch(
        new RegExp(`^Invalid input "${field}": `),
      );
      expect(bb.requests()).toEqual([]);
      expect(bundles.requests()).toEqual([]);
      expect(r.checkpoints).toEqual([]);
    },
  );

  it('has examples that use only inputs of the schema', () => {
    const action = createFluxPushManifestsAction({ config: config() });
    const input = action.schema?.input as any;
    const known = Object.keys(input?.properties ?? input ?? {});
    expect(known).toContain('repoUrl');
    for (const ex of examples) {
      const step = yaml.parse(ex.example).steps[0];
      expect(step.action).toBe('flux:push-manifests');
      for (const key of Object.keys(step.input)) expect(known).toContain(key);
    }
  });

  it('never leaked a token into logs, outputs, errors or commits', async () => {
    const text = leaked.join('\n');
    expect(text).not.toContain(INPUT_TOKEN);
    expect(text).not.toContain(INTEGRATION_TOKEN);
    for (const project of fs.readdirSync(bb.reposRoot)) {
      for (const repo of fs.readdirSync(path.join(bb.reposRoot, project))) {
        const history = await gitCli([
          '--git-dir',
          path.join(bb.reposRoot, project, repo),
          'log',
          '-p',
          '--all',
        ]);
        expect(history).not.toContain(INPUT_TOKEN);
        expect(history).not.toContain(INTEGRATION_TOKEN);
      }
    }
  });
});
