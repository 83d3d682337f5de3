import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildFluxBundle,
  BitbucketDouble,
  peerGitEnv,
  PEER_GIT_CONFIG,
  run,
  startBitbucketDouble,
} from '@flux-bootstrap/test-peers';
import { gitHttpAuthHeaders } from '../bitbucket';
import { generateSshKeyPair } from '../keys';
import {
  resolveFluxManifestOptions,
  FluxManifestInput,
} from '../manifests/options';
import { Redactor } from '../util/redact';
import { GitTransport, HttpsGitTransport } from './transport';
import { SshGitTransport } from './ssh';
import {
  commitFluxManifests,
  CommitFluxManifestsInput,
  renderFluxManifests,
} from './pushFluxManifests';

// Real git, sshd and ssh-keygen on a shared 2-core machine: generous per-test limits.
jest.setTimeout(90_000);

const TOKEN = `canary-token-${Math.random().toString(36).slice(2)}`;
const READ_TOKEN = `canary-read-${Math.random().toString(36).slice(2)}`;

// Asynchronous on purpose: the double serves git from this process, a sync child would deadlock.
async function gitCli(
  args: string[],
  cwd?: string,
  token?: string,
): Promise<string> {
  const config: [string, string][] = token
    ? [
        ...PEER_GIT_CONFIG,
        ['http.extraHeader', `Authorization: Bearer ${token}`],
      ]
    : PEER_GIT_CONFIG;
  const r = await run('git', args, { cwd, env: peerGitEnv({}, config) });
  return r.stdout;
}

function collectingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (m: string, meta?: unknown) =>
    lines.push(
      `${level} ${m}${
        meta
          ? ` ${meta instanceof Error ? meta.stack : JSON.stringify(meta)}`
          : ''
      }`,
    );
  return {
    lines,
    logger: {
      info: log('info'),
      warn: log('warn'),
      error: log('error'),
      debug: log('debug'),
    },
  };
}

describe('pushFluxManifests against the Bitbucket double (real git http-backend and sshd)', () => {
  let bb: BitbucketDouble;
  let bundle: Record<string, string>;
  let tmp: string;
  let repoCounter = 0;

  beforeAll(async () => {
    bb = await startBitbucketDouble({ ssh: true });
    bb.addUser({ name: 'alice', email: 'alice@example.com' });
    bb.addUser({ name: 'bob' });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_WRITE');
    bb.grantProject('FLUX', { user: 'bob' }, 'PROJECT_READ');
    bb.addToken({ token: TOKEN, user: 'alice' });
    bb.addToken({ token: READ_TOKEN, user: 'bob' });
    bundle = (await buildFluxBundle({ version: 'v2.9.4' })).files;
  }, 60_000);
  afterAll(async () => {
    await bb?.stop();
  });
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'push-manifests-test-'));
  });
  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  function newRepo(
    opts: { initialCommit?: boolean; defaultBranch?: string } = {},
  ) {
    const name = `fleet-${++repoCounter}`;
    const { slug } = bb.createRepo('FLUX', name, {
      defaultBranch: opts.defaultBranch ?? 'main',
      initialCommit: opts.initialCommit,
    });
    return {
      slug,
      bare: bb.repoPath('FLUX', slug),
      urls: bb.cloneUrls('FLUX', slug),
    };
  }

  const author = { name: 'Flux', email: '' };

  function options(extra: Partial<FluxManifestInput> = {}) {
    return resolveFluxManifestOptions(
      {
        path: 'clusters/my-cluster',
        syncUrl: 'ssh://git@bitbucket.example.com:7999/FLUX/fleet.git',
        ...extra,
      },
      { fluxVersion: 'v2.9.4' },
    );
  }

  /** commitFluxManifests' input: the files rendered from the bundle fixture with `opts`. */
  function input(
    transport: GitTransport,
    opts = options(),
    extra: Partial<CommitFluxManifestsInput> = {},
  ): CommitFluxManifestsInput {
    return {
      transport,
      files: renderFluxManifests(bundle, opts),
      version: opts.components.version,
      branch: opts.branch,
      author,
      ...extra,
    };
  }

  function https(url: string, token = TOKEN): HttpsGitTransport {
    return new HttpsGitTransport({
      url,
      headers: gitHttpAuthHeaders({ token }),
    });
  }

  async function commits(bare: string, branch = 'main') {
    return (
      await gitCli([
        '--git-dir',
        bare,
        'log',
        '--format=%H%x1f%P%x1f%an%x1f%ae%x1f%B%x1e',
        branch,
      ])
    )
      .split('\x1e')
      .map(s => s.trim())
      .filter(Boolean)
      .map(s => {
        const [id, parents, name, email, message] = s.split('\x1f');
        return {
          id,
          parents: parents ? parents.split(' ') : [],
          name,
          email,
          message: message.trim(),
        };
      });
  }

  it('pushes the three files in two commits to an empty repository, as flux does', async () => {
    const repo = newRepo();
    const { logger, lines } = collectingLogger();
    const opts = options();
    const result = await commitFluxManifests(
      input(https(repo.urls.http), opts),
      { logger: new Redactor([TOKEN]).wrapLogger(logger) },
    );
    const rendered = renderFluxManifests(bundle, opts);

    // What landed, read with the git CLI through a real clone over HTTP.
    const clone = path.join(tmp, 'clone');
    await gitCli(['clone', '--quiet', repo.urls.http, clone], undefined, TOKEN);
    const dir = path.join(clone, 'clusters/my-cluster/flux-system');
    expect(fs.readdirSync(dir).sort()).toEqual([
      'gotk-components.yaml',
      'gotk-sync.yaml',
      'kustomization.yaml',
    ]);
    expect(
      fs.readFileSync(path.join(dir, 'gotk-components.yaml'), 'utf8'),
    ).toBe(rendered.components.content);
    expect(fs.readFileSync(path.join(dir, 'gotk-sync.yaml'), 'utf8')).toBe(
      rendered.sync.content,
    );
    expect(fs.readFileSync(path.join(dir, 'kustomization.yaml'), 'utf8')).toBe(
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n',
    );
    expect((await gitCli(['ls-files'], clone)).trim().split('\n')).toHaveLength(
      3,
    );

    const log = await commits(repo.bare);
    expect(log.map(c => c.message)).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
    ]);
    expect(log.map(c => [c.name, c.email])).toEqual([
      ['Flux', ''],
      ['Flux', ''],
    ]);
    expect(log[1].parents).toEqual([]);
    expect(log[0].parents).toEqual([log[1].id]);
    expect(
      (
        await gitCli([
          '--git-dir',
          repo.bare,
          'show',
          '--name-only',
          '--format=',
          log[1].id,
        ])
      ).trim(),
    ).toBe('clusters/my-cluster/flux-system/gotk-components.yaml');
    expect(
      (
        await gitCli([
          '--git-dir',
          repo.bare,
          'show',
          '--name-only',
          '--format=',
          log[0].id,
        ])
      )
        .trim()
        .split('\n')
        .sort(),
    ).toEqual([
      'clusters/my-cluster/flux-system/gotk-sync.yaml',
      'clusters/my-cluster/flux-system/kustomization.yaml',
    ]);
    expect(result).toMatchObject({
      commitHash: log[0].id,
      componentsCommit: log[1].id,
      syncCommit: log[0].id,
      changed: true,
      manifestsPath: 'clusters/my-cluster/flux-system',
      revision: `main@sha1:${log[0].id}`,
      kustomizationGenerated: true,
    });
    expect(lines.join('\n')).toMatch(
      /The repository is empty; the first commit creates branch main/,
    );
    expect(lines.join('\n')).not.toContain(TOKEN);
  });

  it('makes no commit on a re-run and exactly one for a changed option', async () => {
    const repo = newRepo({ initialCommit: true });
    const { logger } = collectingLogger();
    const first = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger },
    );
    expect(first.changed).toBe(true);
    const head = (await commits(repo.bare))[0].id;

    const again = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger },
    );
    expect(again).toMatchObject({
      changed: false,
      commitHash: head,
      componentsCommit: undefined,
      syncCommit: undefined,
    });
    expect((await commits(repo.bare))[0].id).toBe(head);

    const debug = await commitFluxManifests(
      input(https(repo.urls.http), options({ logLevel: 'debug' })),
      { logger },
    );
    const log = await commits(repo.bare);
    expect(log[1].id).toBe(head);
    expect(log[0].message).toBe('Add Flux v2.9.4 component manifests');
    expect(debug).toMatchObject({
      changed: true,
      componentsCommit: log[0].id,
      syncCommit: undefined,
      commitHash: log[0].id,
    });
    expect(
      await gitCli([
        '--git-dir',
        repo.bare,
        'show',
        'main:clusters/my-cluster/flux-system/gotk-components.yaml',
      ]),
    ).toContain('--log-level=debug');

    const newUrl = await commitFluxManifests(
      input(
        https(repo.urls.http),
        options({
          logLevel: 'debug',
          syncUrl: 'https://bitbucket.example.com/scm/FLUX/fleet.git',
        }),
        { commitMessageAppendix: 'Requested by alice in Backstage' },
      ),
      { logger },
    );
    const log2 = await commits(repo.bare);
    expect(log2[1].id).toBe(log[0].id);
    expect(log2[0].message).toBe(
      'Add Flux sync manifests\n\nRequested by alice in Backstage',
    );
    expect(newUrl.syncCommit).toBe(log2[0].id);
    expect(newUrl.componentsCommit).toBeUndefined();
  });

  it('keeps an existing kustomization.yaml and the rest of the repository', async () => {
    const repo = newRepo({ initialCommit: true });
    const work = path.join(tmp, 'w');
    await gitCli(['clone', '--quiet', repo.urls.http, work], undefined, TOKEN);
    const dir = path.join(work, 'clusters/my-cluster/flux-system');
    fs.mkdirSync(dir, { recursive: true });
    const custom =
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\npatches:\n- path: patch.yaml\n';
    fs.writeFileSync(path.join(dir, 'kustomization.yaml'), custom);
    fs.writeFileSync(path.join(work, 'apps.yaml'), 'kind: Nothing\n');
    await gitCli(['add', '.'], work);
    await gitCli(
      [
        '-c',
        'user.name=U',
        '-c',
        'user.email=u@x',
        'commit',
        '--quiet',
        '-m',
        'user patches',
      ],
      work,
    );
    await gitCli(['push', '--quiet', 'origin', 'HEAD:main'], work, TOKEN);

    const { logger } = collectingLogger();
    const r = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger },
    );
    expect(r.kustomizationGenerated).toBe(false);
    expect(r.files['clusters/my-cluster/flux-system/kustomization.yaml']).toBe(
      custom,
    );
    expect(
      await gitCli([
        '--git-dir',
        repo.bare,
        'show',
        'main:clusters/my-cluster/flux-system/kustomization.yaml',
      ]),
    ).toBe(custom);
    expect(
      await gitCli(['--git-dir', repo.bare, 'show', 'main:apps.yaml']),
    ).toBe('kind: Nothing\n');
    expect(
      await gitCli(['--git-dir', repo.bare, 'show', 'main:README.md']),
    ).toBeTruthy();
  });

  it('redoes the change on top when the branch moves during the push (non-fast-forward)', async () => {
    const repo = newRepo({ initialCommit: true });
    const inner = https(repo.urls.http);
    let raced = 0;
    const racing: GitTransport = {
      displayUrl: inner.displayUrl,
      listRefs: s => inner.listRefs(s),
      fetch: (g, b, s) => inner.fetch(g, b, s),
      close: () => inner.close(),
      async push(gitdir, oid, branch, signal) {
        if (raced++ === 0) {
          // Another engineer pushes to main between our fetch and our push.
          const other = path.join(tmp, 'other');
          await gitCli(
            ['clone', '--quiet', repo.urls.http, other],
            undefined,
            TOKEN,
          );
          fs.mkdirSync(path.join(other, 'apps'), { recursive: true });
          fs.writeFileSync(
            path.join(other, 'apps', 'podinfo.yaml'),
            'kind: HelmRelease\n',
          );
          await gitCli(['add', '.'], other);
          await gitCli(
            [
              '-c',
              'user.name=Other',
              '-c',
              'user.email=o@x',
              'commit',
              '--quiet',
              '-m',
              'concurrent change',
            ],
            other,
          );
          await gitCli(
            ['push', '--quiet', 'origin', 'HEAD:main'],
            other,
            TOKEN,
          );
        }
        return inner.push(gitdir, oid, branch, signal);
      },
    };
    const { logger, lines } = collectingLogger();
    const r = await commitFluxManifests(input(racing, options()), { logger });
    const log = await commits(repo.bare);
    expect(log.map(c => c.message)).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
      'concurrent change',
      'Initial commit',
    ]);
    expect(r.commitHash).toBe(log[0].id);
    expect(
      await gitCli(['--git-dir', repo.bare, 'show', 'main:apps/podinfo.yaml']),
    ).toBe('kind: HelmRelease\n');
    expect(
      lines.some(l =>
        /^warn Git conflict: main of .* moved while pushing \(non-fast-forward\); fetching it again and redoing the change \(attempt 2 of 5\)$/.test(
          l,
        ),
      ),
    ).toBe(true);
  });

  it('gives up, bounded, when the branch moves before every push, and pushes nothing of its own', async () => {
    const repo = newRepo({ initialCommit: true });
    const inner = https(repo.urls.http);
    const other = path.join(tmp, 'other');
    await gitCli(['clone', '--quiet', repo.urls.http, other], undefined, TOKEN);
    let pushes = 0;
    const racing: GitTransport = {
      displayUrl: inner.displayUrl,
      listRefs: s => inner.listRefs(s),
      fetch: (g, b, s) => inner.fetch(g, b, s),
      close: () => inner.close(),
      async push(gitdir, oid, branch, signal) {
        // Someone else pushes to main right before each of our pushes.
        pushes++;
        fs.writeFileSync(path.join(other, `change-${pushes}.txt`), `${pushes}`);
        await gitCli(['add', '.'], other);
        await gitCli(
          [
            '-c',
            'user.name=Other',
            '-c',
            'user.email=o@x',
            'commit',
            '--quiet',
            '-m',
            `concurrent change ${pushes}`,
          ],
          other,
        );
        await gitCli(['push', '--quiet', 'origin', 'HEAD:main'], other, TOKEN);
        return inner.push(gitdir, oid, branch, signal);
      },
    };
    const { logger, lines } = collectingLogger();
    const err = await commitFluxManifests(
      input(racing, options(), { maxAttempts: 3 }),
      { logger },
    ).catch(e => e);
    expect(err.name).toBe('ConflictError'); // GitPushConflictError
    expect(err.message).toBe(
      'the branch main kept changing while pushing: 3 attempts were rejected as non-fast-forward',
    );
    expect(pushes).toBe(3);
    expect(
      lines.filter(l => l.startsWith('warn Git conflict: main of ')),
    ).toHaveLength(2);
    // Only the other pushes landed; no Flux commit.
    expect((await commits(repo.bare)).map(c => c.message)).toEqual([
      'concurrent change 3',
      'concurrent change 2',
      'concurrent change 1',
      'Initial commit',
    ]);
  });

  it('talks to the git server no more than the git CLI: the fetch reuses the listed refs, commit 2 starts from the pushed commit', async () => {
    const repo = newRepo({ initialCommit: true });
    const from = bb.requests().length;
    const r = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger: collectingLogger().logger },
    );
    expect(r.componentsCommit).toBeDefined();
    expect(r.syncCommit).toBeDefined();
    const git = bb
      .requests()
      .slice(from)
      .filter(q => q.path.includes(`/scm/flux/${repo.slug}.git/`))
      .map(
        q =>
          `${q.method} ${q.path.replace(/^.*\.git\//, '')}${
            q.query.service ? `?service=${q.query.service}` : ''
          }`,
      );
    expect(git).toEqual([
      // commit 1: list the branch and fetch it (one advertisement for both), push
      'GET info/refs?service=git-upload-pack',
      'POST git-upload-pack',
      'GET info/refs?service=git-receive-pack',
      'POST git-receive-pack',
      // commit 2: on top of the commit just pushed, no listing or fetch
      'GET info/refs?service=git-receive-pack',
      'POST git-receive-pack',
    ]);
  });

  it('when someone pushes between the two commits, commit 2 is refused, fetched again and redone; a gotk-components.yaml changed by them is parsed again', async () => {
    const repo = newRepo({ initialCommit: true });
    const inner = https(repo.urls.http);
    let pushes = 0;
    const racing: GitTransport = {
      displayUrl: inner.displayUrl,
      listRefs: s => inner.listRefs(s),
      fetch: (g, b, s) => inner.fetch(g, b, s),
      close: () => inner.close(),
      async push(gitdir, oid, branch, signal) {
        if (pushes++ === 1) {
          // Between commit 1 and commit 2, someone replaces gotk-components.yaml.
          const other = path.join(tmp, 'other');
          await gitCli(
            ['clone', '--quiet', repo.urls.http, other],
            undefined,
            TOKEN,
          );
          fs.writeFileSync(
            path.join(
              other,
              'clusters/my-cluster/flux-system/gotk-components.yaml',
            ),
            'not: a Kubernetes object\n',
          );
          await gitCli(['add', '.'], other);
          await gitCli(
            [
              '-c',
              'user.name=Other',
              '-c',
              'user.email=o@x',
              'commit',
              '--quiet',
              '-m',
              'concurrent change',
            ],
            other,
          );
          await gitCli(
            ['push', '--quiet', 'origin', 'HEAD:main'],
            other,
            TOKEN,
          );
        }
        return inner.push(gitdir, oid, branch, signal);
      },
    };
    const { logger, lines } = collectingLogger();
    const r = await commitFluxManifests(input(racing, options()), { logger });
    const log = await commits(repo.bare);
    expect(log.map(c => c.message)).toEqual([
      'Add Flux sync manifests',
      'concurrent change',
      'Add Flux v2.9.4 component manifests',
      'Initial commit',
    ]);
    expect(r.commitHash).toBe(log[0].id);
    expect(
      lines.some(l =>
        /^warn Git conflict: main of .* moved while pushing/.test(l),
      ),
    ).toBe(true);
    // Their file is not the blob this session pushed: it was read and found not to be Kubernetes YAML.
    expect(
      await gitCli([
        '--git-dir',
        repo.bare,
        'show',
        'main:clusters/my-cluster/flux-system/kustomization.yaml',
      ]),
    ).toBe(
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-sync.yaml\n',
    );
  });

  it('lists the gotk-components.yaml it has just pushed without parsing it again (the session knows the blob)', async () => {
    const repo = newRepo({ initialCommit: true });
    const files = renderFluxManifests(bundle, options({ path: 'clusters/x' }));
    // Content the parser would refuse: listed anyway, so it was not parsed.
    files.components.content = 'kind: [unterminated\n';
    const r = await commitFluxManifests(
      { ...input(https(repo.urls.http)), files, workDir: tmp },
      { logger: collectingLogger().logger },
    );
    expect(r.kustomizationGenerated).toBe(true);
    expect(
      await gitCli([
        '--git-dir',
        repo.bare,
        'show',
        'main:clusters/x/flux-system/kustomization.yaml',
      ]),
    ).toBe(
      'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n',
    );
  });

  it('creates a missing branch from the default branch', async () => {
    const repo = newRepo({ initialCommit: true });
    const { logger, lines } = collectingLogger();
    const r = await commitFluxManifests(
      input(https(repo.urls.http), options({ branch: 'clusters/staging' })),
      { logger },
    );
    const log = await commits(repo.bare, 'clusters/staging');
    expect(log.map(c => c.message)).toEqual([
      'Add Flux sync manifests',
      'Add Flux v2.9.4 component manifests',
      'Initial commit',
    ]);
    expect(await commits(repo.bare, 'main')).toHaveLength(1);
    expect(r.revision).toBe(`clusters/staging@sha1:${log[0].id}`);
    expect(
      await gitCli([
        '--git-dir',
        repo.bare,
        'show',
        'clusters/staging:clusters/my-cluster/flux-system/gotk-sync.yaml',
      ]),
    ).toContain('branch: clusters/staging');
    expect(lines.join('\n')).toContain(
      'Branch clusters/staging does not exist',
    );
  });

  it('fails clearly, without the token, when the token may not push', async () => {
    const repo = newRepo({ initialCommit: true });
    const { logger, lines } = collectingLogger();
    const err = await commitFluxManifests(
      input(https(repo.urls.http, READ_TOKEN), options()),
      { logger: new Redactor([READ_TOKEN]).wrapLogger(logger) },
    ).catch(e => e);
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('AuthenticationError'); // GitAuthError
    expect(err.message).toMatch(/refused the credentials .* \(HTTP 403\)/);
    expect(`${err.message}\n${err.stack}\n${lines.join('\n')}`).not.toContain(
      READ_TOKEN,
    );
    expect(await commits(repo.bare)).toHaveLength(1);
  });

  it('signs both commits with an OpenPGP key when given one', async () => {
    const gnupg = fs.mkdtempSync(path.join(os.tmpdir(), 'gnupg-'));
    try {
      const env = { ...process.env, GNUPGHOME: gnupg };
      execFileSync(
        'gpg',
        [
          '--batch',
          '--pinentry-mode',
          'loopback',
          '--passphrase',
          '',
          '--quick-gen-key',
          'Flux Signer <signer@example.com>',
          'rsa2048',
          'sign',
          'never',
        ],
        { env, stdio: 'pipe' },
      );
      const secretKey = execFileSync(
        'gpg',
        [
          '--batch',
          '--pinentry-mode',
          'loopback',
          '--passphrase',
          '',
          '--armor',
          '--export-secret-keys',
        ],
        { env, encoding: 'utf8' },
      );
      const repo = newRepo();
      const { logger, lines } = collectingLogger();
      const r = await commitFluxManifests(
        input(https(repo.urls.http), options(), { signingKey: secretKey }),
        { logger: new Redactor([secretKey]).wrapLogger(logger) },
      );
      for (const commit of [r.componentsCommit!, r.syncCommit!]) {
        const out = execFileSync(
          'git',
          ['--git-dir', repo.bare, 'verify-commit', '--raw', commit],
          {
            env: { ...peerGitEnv(), GNUPGHOME: gnupg },
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'pipe'],
          },
        );
        expect(out).toBe('');
      }
      const raw = await gitCli([
        '--git-dir',
        repo.bare,
        'cat-file',
        'commit',
        r.syncCommit!,
      ]);
      expect(raw).toContain('gpgsig -----BEGIN PGP SIGNATURE-----');
      expect(lines.join('\n')).not.toContain(secretKey.split('\n')[3]);
    } finally {
      fs.rmSync(gnupg, { recursive: true, force: true });
    }
  });

  it('retries a transient server error and a dropped connection, logging why', async () => {
    const repo = newRepo({ initialCommit: true });
    bb.injectFault({
      method: 'POST',
      path: /git-receive-pack$/,
      status: 503,
      times: 1,
    });
    bb.injectFault({
      method: 'GET',
      path: /info\/refs$/,
      drop: true,
      times: 1,
    });
    const { logger, lines } = collectingLogger();
    const r = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger },
    );
    expect(r.changed).toBe(true);
    expect((await commits(repo.bare)).map(c => c.message)[0]).toBe(
      'Add Flux sync manifests',
    );
    expect(lines.filter(l => l.startsWith('warn Talking to'))).toHaveLength(2);
  });

  it('gives up after the bounded attempts, saying where, why and what to do', async () => {
    const repo = newRepo({ initialCommit: true });
    bb.injectFault({
      method: 'GET',
      path: /info\/refs$/,
      status: 502,
      times: 50,
    });
    const { logger } = collectingLogger();
    const err = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger },
    ).catch(e => e);
    bb.clearFaults();
    expect(err.name).toBe('ServiceUnavailableError'); // GitServerUnavailableError
    expect(err.message).toMatch(
      /^Talking to https?:\/\/\S+ failed 5 times, the last time with HTTP Error: 502/,
    );
    expect(err.message).toContain('Try again later; re-running is safe');
    expect(await commits(repo.bare)).toHaveLength(1);
  });

  it('stops when the signal aborts, leaving the branch alone', async () => {
    const repo = newRepo({ initialCommit: true });
    const controller = new AbortController();
    bb.injectFault({
      method: 'GET',
      path: /info\/refs$/,
      delayMs: 2_000,
      times: 1,
    });
    setTimeout(() => controller.abort(), 200);
    const { logger } = collectingLogger();
    const err = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger, signal: controller.signal },
    ).catch(e => e);
    expect(err.name).toBe('OperationAbortedError');
    expect(await commits(repo.bare)).toHaveLength(1);
  });

  it('skips pushes restored from checkpoints (task recovery) and pushes nothing', async () => {
    const repo = newRepo();
    const stored = new Map<string, unknown>();
    const recording = async <T>(key: string, fn: () => Promise<T>) => {
      const v = await fn();
      stored.set(key, JSON.parse(JSON.stringify(v)));
      return v;
    };
    const { logger } = collectingLogger();
    const first = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger, checkpoint: recording },
    );
    expect([...stored.keys()]).toEqual(['push-components', 'push-sync']);
    bb.clearRequests();
    const restoring = async <T>(key: string, _fn: () => Promise<T>) =>
      stored.get(key) as T;
    const again = await commitFluxManifests(
      input(https(repo.urls.http), options()),
      { logger, checkpoint: restoring },
    );
    expect(again).toEqual(first);
    expect(bb.requests()).toEqual([]);
  });

  it('trusts the configured CA over HTTPS and fails without it', async () => {
    const tlsBb = await startBitbucketDouble({ tls: true });
    try {
      tlsBb.addUser({ name: 'alice' });
      tlsBb.addProject({ key: 'FLUX', name: 'Flux' });
      tlsBb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_WRITE');
      tlsBb.addToken({ token: TOKEN, user: 'alice' });
      const { slug } = tlsBb.createRepo('FLUX', 'tls-fleet', {
        defaultBranch: 'main',
      });
      const url = tlsBb.cloneUrls('FLUX', slug).http;
      expect(url.startsWith('https://')).toBe(true);
      const { logger } = collectingLogger();
      const untrusted = await commitFluxManifests(
        input(
          new HttpsGitTransport({
            url,
            headers: gitHttpAuthHeaders({ token: TOKEN }),
          }),
          options(),
        ),
        { logger },
      ).catch(e => e);
      expect(untrusted.message).toMatch(/certificate/i);
      const r = await commitFluxManifests(
        input(
          new HttpsGitTransport({
            url,
            headers: gitHttpAuthHeaders({ token: TOKEN }),
            caPem: tlsBb.caPem,
          }),
          options(),
        ),
        { logger },
      );
      expect(r.changed).toBe(true);
      expect(
        (await commits(tlsBb.repoPath('FLUX', slug))).map(c => c.message),
      ).toEqual([
        'Add Flux sync manifests',
        'Add Flux v2.9.4 component manifests',
      ]);
    } finally {
      await tlsBb.stop();
    }
  });

  describe('over SSH with a supplied key (bootstrap without a Bitbucket token)', () => {
    it('pushes with a PKCS#8 key registered as an access key, and deletes the key file afterwards', async () => {
      const repo = newRepo({ initialCommit: true });
      const pair = await generateSshKeyPair({ algorithm: 'ecdsa' });
      bb.addAccessKey(
        'FLUX',
        repo.slug,
        { text: pair.publicKey.trim(), label: 'flux' },
        'REPO_WRITE',
      );
      const transport = new SshGitTransport({
        url: repo.urls.ssh!,
        privateKey: pair.privateKeyPem,
        knownHosts: bb.ssh!.knownHosts,
      });
      const seen: string[] = [];
      const spy: GitTransport = {
        displayUrl: transport.displayUrl,
        listRefs: async s => {
          const refs = await transport.listRefs(s);
          const keyFile = path.join(transport.keyDirectory!, 'identity');
          seen.push(keyFile, (fs.statSync(keyFile).mode & 0o777).toString(8));
          return refs;
        },
        fetch: (g, b, s) => transport.fetch(g, b, s),
        push: (g, o, b, s) => transport.push(g, o, b, s),
        close: () => transport.close(),
      };
      const { logger, lines } = collectingLogger();
      const redactor = new Redactor([pair.privateKeyPem]);
      const r = await commitFluxManifests(input(spy, options()), {
        logger: redactor.wrapLogger(logger),
      });
      expect(r.changed).toBe(true);
      expect((await commits(repo.bare)).map(c => c.message)).toEqual([
        'Add Flux sync manifests',
        'Add Flux v2.9.4 component manifests',
        'Initial commit',
      ]);
      expect(seen[1]).toBe('600');
      expect(fs.existsSync(seen[0])).toBe(false);
      expect(transport.keyDirectory).toBeUndefined();

      const keyLine = pair.privateKeyPem.split('\n')[1];
      const history = await gitCli([
        '--git-dir',
        repo.bare,
        'log',
        '-p',
        '--all',
      ]);
      expect(history).not.toContain(keyLine);
      expect(lines.join('\n')).not.toContain(keyLine);
      expect(JSON.stringify(r)).not.toContain(keyLine);
    });

    it('pushes with a passphrase-protected OpenSSH key (passphrase via SSH_ASKPASS), and refuses a wrong passphrase clearly', async () => {
      const repo = newRepo({ initialCommit: true });
      const keyFile = path.join(tmp, 'id_ed25519');
      const passphrase = `canary pass ${Math.random().toString(36).slice(2)}`;
      execFileSync('ssh-keygen', [
        '-q',
        '-t',
        'ed25519',
        '-N',
        passphrase,
        '-C',
        '',
        '-f',
        keyFile,
      ]);
      const privateKey = fs.readFileSync(keyFile, 'utf8');
      const publicKey = fs.readFileSync(`${keyFile}.pub`, 'utf8').trim();
      fs.rmSync(keyFile);
      bb.addAccessKey(
        'FLUX',
        repo.slug,
        { text: publicKey, label: 'supplied' },
        'REPO_WRITE',
      );
      const { logger, lines } = collectingLogger();
      const redactor = new Redactor([privateKey, passphrase]);

      const wrong = new SshGitTransport({
        url: repo.urls.ssh!,
        privateKey,
        passphrase: 'not it',
        knownHosts: bb.ssh!.knownHosts,
        timeoutMs: 30_000,
      });
      const err = await commitFluxManifests(input(wrong, options()), {
        logger: redactor.wrapLogger(logger),
      }).catch(e => e);
      expect(err.message).toMatch(
        /private key could not be loaded|refused the SSH key/,
      );
      expect(wrong.keyDirectory).toBeUndefined();

      const noPassphrase = new SshGitTransport({
        url: repo.urls.ssh!,
        privateKey,
        knownHosts: bb.ssh!.knownHosts,
        timeoutMs: 30_000,
      });
      await expect(
        commitFluxManifests(input(noPassphrase, options()), {
          logger: redactor.wrapLogger(logger),
        }),
      ).rejects.toThrow(/git over SSH failed/);

      const transport = new SshGitTransport({
        url: repo.urls.ssh!,
        privateKey,
        passphrase,
        knownHosts: bb.ssh!.knownHosts,
      });
      const r = await commitFluxManifests(input(transport, options()), {
        logger: redactor.wrapLogger(logger),
      });
      expect(r.changed).toBe(true);
      expect((await commits(repo.bare))[0].message).toBe(
        'Add Flux sync manifests',
      );
      const all = `${lines.join('\n')}\n${err.message}\n${
        err.stack
      }\n${await gitCli(['--git-dir', repo.bare, 'log', '-p', '--all'])}`;
      expect(all).not.toContain(passphrase);
      expect(all).not.toContain(privateKey.split('\n')[2]);
    });

    it('checks the host key strictly', async () => {
      const repo = newRepo({ initialCommit: true });
      const pair = await generateSshKeyPair({ algorithm: 'ed25519' });
      bb.addAccessKey(
        'FLUX',
        repo.slug,
        { text: pair.publicKey.trim() },
        'REPO_WRITE',
      );
      const other = await generateSshKeyPair({ algorithm: 'ed25519' });
      const port = bb.ssh!.port;
      const transport = new SshGitTransport({
        url: repo.urls.ssh!,
        privateKey: pair.privateKeyPem,
        knownHosts: `[127.0.0.1]:${port} ${other.publicKey.trim()}`,
        timeoutMs: 30_000,
      });
      const { logger } = collectingLogger();
      await expect(
        commitFluxManifests(input(transport, options()), { logger }),
      ).rejects.toThrow(
        /host key of \[127\.0\.0\.1\]:\d+ does not match knownHosts/,
      );
      expect(await commits(repo.bare)).toHaveLength(1);
    });
  });

  it('never puts the token in a commit', async () => {
    for (const { path: p } of [{ path: bb.reposRoot }]) {
      for (const project of fs.readdirSync(p)) {
        for (const repo of fs.readdirSync(path.join(p, project))) {
          const bare = path.join(p, project, repo);
          const history = await gitCli([
            '--git-dir',
            bare,
            'log',
            '-p',
            '--all',
          ]);
          expect(history).not.toContain(TOKEN);
          expect(history).not.toContain(READ_TOKEN);
        }
      }
    }
  });
});
