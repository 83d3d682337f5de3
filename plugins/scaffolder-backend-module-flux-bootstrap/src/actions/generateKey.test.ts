import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ConfigReader } from '@backstage/config';
import { InputError } from '@backstage/errors';
import {
  BitbucketDouble,
  getSharedKubeApiserver,
  mintToken,
  startBitbucketDouble,
  uniqueName,
} from '@flux-bootstrap/test-peers';
import { KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  actionConfig,
  configCluster,
  runAction,
  withCompletedCheckpoints,
  type CompletedCheckpointsRun,
} from './__testUtils__/actionHarness';
import {
  readSecret as readSecretOf,
  adminKubeClient,
  seedProject,
} from './__testUtils__/peers';
import { createFluxGenerateKeyAction } from './generateKey';

const execFileAsync = promisify(execFile);

// Real peers: OpenSSH sshd + Bitbucket double, kube-apiserver + etcd. Generous timeouts only.
jest.setTimeout(180_000);

const TOKEN = 'canary-bb-token-8c1f0e7a2d';
const READER_TOKEN = 'canary-bb-reader-token-41a9';
const PROJECT = 'FLUX';
const REPO = 'fleet-infra';

let bb: BitbucketDouble;
let slug: string;
let admin: KubeClient;
let work: string;
let restrictedToken: string;
const kubeInfo = () => getSharedKubeApiserver();

/** Everything the action produced that must not hold a private key: logs, outputs, errors, checkpoint values. */
const produced: string[] = [];
/** Every private key the action wrote into a Secret (read back by the test). */
const identities: { pem: string; pub: string }[] = [];

function config(extra: Record<string, unknown> = {}) {
  const kube = kubeInfo();
  return actionConfig({
    bitbucket: { host: bb.host, apiBaseUrl: bb.apiBaseUrl },
    fluxBootstrap: {
      bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
    },
    clusters: [
      configCluster('test', kube),
      {
        ...configCluster('restricted', kube),
        serviceAccountToken: restrictedToken,
      },
    ],
    extra: extra as Record<string, any>,
  });
}

type Run = CompletedCheckpointsRun;

async function run(
  input: Record<string, unknown>,
  opts: {
    dryRun?: boolean;
    /** Task state of checkpoints (as with scaffolder task recovery): completed keys are replayed. */
    checkpointStore?: Map<string, unknown>;
    /** Simulates a crash right after this checkpoint completed. */
    crashAfter?: string;
    config?: ConfigReader;
  } = {},
): Promise<Run> {
  const r = await runAction(
    createFluxGenerateKeyAction,
    {
      repoUrl: `${bb.host}?project=${PROJECT}&repo=${REPO}`,
      token: TOKEN,
      cluster: 'test',
      ...input,
    },
    {
      factoryOptions: { config: opts.config ?? config() },
      secrets: { bitbucketToken: TOKEN },
      dryRun: opts.dryRun,
      checkpointStore: opts.checkpointStore,
      crashAfter: opts.crashAfter,
      produced,
    },
  );
  return withCompletedCheckpoints(r);
}

async function succeed(input: Record<string, unknown>): Promise<Run> {
  const r = await run(input);
  if (r.error)
    throw new Error(`action failed: ${r.error.message}\n${r.logs.join('\n')}`);
  return r;
}

async function readSecret(namespace: string, name = 'flux-system') {
  const read = await readSecretOf(admin, namespace, name);
  if (read?.data.identity)
    identities.push({
      pem: read.data.identity,
      pub: read.data['identity.pub'],
    });
  return read;
}

/** Every request the double saw, kept across clearRequests() for the final scan. */
const traffic: unknown[] = [];
function clearRequests() {
  traffic.push(...bb.requests());
  bb.clearRequests();
}

interface KeyState {
  id: number;
  text: string;
  label: string;
  permission: string;
  projectKey?: string;
  slug?: string;
}
function accessKeys(): KeyState[] {
  return (bb.state().accessKeys as KeyState[]).filter(k => k.slug === slug);
}
function keyOf(publicKey: string): KeyState | undefined {
  const blob = publicKey.trim().split(' ')[1];
  return accessKeys().find(k => k.text.split(' ')[1] === blob);
}

/** Writes the Secret's identity and known_hosts to files and builds GIT_SSH_COMMAND from exactly those. */
function sshEnvFor(data: Record<string, string>, name: string) {
  const dir = fs.mkdtempSync(path.join(work, `${name}-`));
  const identity = path.join(dir, 'identity');
  const knownHosts = path.join(dir, 'known_hosts');
  fs.writeFileSync(identity, data.identity, { mode: 0o600 });
  fs.writeFileSync(knownHosts, data.known_hosts, { mode: 0o600 });
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0' } as NodeJS.ProcessEnv;
  delete env.SSH_AUTH_SOCK;
  env.GIT_SSH_COMMAND = [
    'ssh',
    '-F /dev/null',
    `-i ${identity}`,
    '-o IdentitiesOnly=yes',
    '-o IdentityAgent=none',
    '-o StrictHostKeyChecking=yes',
    `-o UserKnownHostsFile=${knownHosts}`,
    '-o GlobalKnownHostsFile=/dev/null',
    '-o BatchMode=yes',
    '-o PasswordAuthentication=no',
  ].join(' ');
  return { dir, env, identity, knownHosts };
}

async function git(args: string[], env: NodeJS.ProcessEnv, cwd?: string) {
  return execFileAsync('git', args, { env, cwd, encoding: 'utf8' });
}

async function cloneWith(data: Record<string, string>, name: string) {
  const { dir, env } = sshEnvFor(data, name);
  const target = path.join(dir, 'clone');
  const url = bb.cloneUrls(PROJECT, slug).ssh!;
  try {
    await git(['clone', '--quiet', url, target], env);
    return { ok: true as const, target, env };
  } catch (e) {
    return {
      ok: false as const,
      error: String((e as { stderr?: string }).stderr ?? e),
      target,
      env,
    };
  }
}

async function pushFrom(
  clone: { target: string; env: NodeJS.ProcessEnv },
  file: string,
) {
  fs.writeFileSync(path.join(clone.target, file), `${file}\n`);
  await git(['add', file], clone.env, clone.target);
  await git(
    [
      '-c',
      'user.name=Test',
      '-c',
      'user.email=t@example.com',
      'commit',
      '--quiet',
      '-m',
      file,
    ],
    clone.env,
    clone.target,
  );
  try {
    await git(
      ['push', '--quiet', 'origin', 'HEAD:main'],
      clone.env,
      clone.target,
    );
    return { ok: true as const };
  } catch (e) {
    return {
      ok: false as const,
      error: String((e as { stderr?: string }).stderr ?? e),
    };
  }
}

/**
 * What of a private key must never appear outside the Secret: the private scalars (base64url,
 * base64, hex), the PEM base64-encoded, and every PEM line that carries private bytes. (PKCS#8 and
 * OpenSSH containers also embed the public key; lines encoding only public bytes are public.)
 */
function privateParts(pem: string, publicKey: string): string[] {
  const parts: string[] = [Buffer.from(pem).toString('base64').slice(0, 60)];
  const pub = publicKey.trim().split(' ')[1];
  for (const line of pem.split('\n')) {
    if (line.length >= 16 && !line.startsWith('-----') && !pub.includes(line))
      parts.push(line);
  }
  let scalars: Buffer[];
  if (pem.startsWith('-----BEGIN PRIVATE KEY-----')) {
    const jwk = createPrivateKey(pem).export({ format: 'jwk' }) as Record<
      string,
      string | undefined
    >;
    scalars = ['d', 'p', 'q', 'dp', 'dq', 'qi'].flatMap(k =>
      jwk[k] ? [Buffer.from(jwk[k]!, 'base64url')] : [],
    );
  } else {
    // openssh-key-v1: the private section ends with string(seed || public key), string(comment).
    const body = Buffer.from(
      pem
        .split('\n')
        .filter(l => !l.startsWith('-----'))
        .join(''),
      'base64',
    );
    const idx = body.lastIndexOf(Buffer.from([0, 0, 0, 64]));
    scalars = [body.subarray(idx + 4, idx + 4 + 32)];
  }
  expect(scalars.length).toBeGreaterThan(0);
  for (const scalar of scalars) {
    parts.push(
      scalar.toString('base64url').slice(0, 24),
      scalar.toString('base64').slice(0, 24),
      scalar.toString('hex').slice(0, 32),
    );
  }
  return parts;
}

async function keygen(args: string[]) {
  return (
    await execFileAsync('ssh-keygen', args, { encoding: 'utf8' })
  ).stdout.trim();
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'generate-key-test-'));
  bb = await startBitbucketDouble({ ssh: true, contextPath: '/bitbucket' });
  seedProject(bb, { key: PROJECT, name: 'Flux fleet' }, [
    { name: 'alice', permission: 'PROJECT_ADMIN', token: TOKEN },
    { name: 'bob' },
  ]);
  slug = bb.createRepo(PROJECT, REPO, {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  bb.grantRepo(PROJECT, slug, { user: 'bob' }, 'REPO_READ');
  bb.addToken({ token: READER_TOKEN, user: 'bob' });
  admin = await adminKubeClient(kubeInfo());
  // A cluster identity that may only read Secrets in one namespace.
  restrictedToken = await mintToken(kubeInfo(), {
    name: uniqueName('gk-readonly'),
    clusterRules: [
      {
        apiGroups: [''],
        resources: ['secrets', 'namespaces'],
        verbs: ['get', 'list'],
      },
    ],
  });
});

afterAll(async () => {
  admin?.close();
  await bb?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('flux:generate-key', () => {
  it.each([
    [
      'ecdsa p256',
      { algorithm: 'ecdsa', ecdsaCurve: 'p256' },
      'ecdsa-sha2-nistp256',
      256,
    ],
    ['ecdsa p384 (default)', {}, 'ecdsa-sha2-nistp384', 384],
    [
      'ecdsa p521',
      { algorithm: 'ecdsa', ecdsaCurve: 'p521' },
      'ecdsa-sha2-nistp521',
      521,
    ],
    ['rsa 2048 (default)', { algorithm: 'rsa' }, 'ssh-rsa', 2048],
    ['rsa 4096', { algorithm: 'rsa', rsaBits: 4096 }, 'ssh-rsa', 4096],
    ['ed25519', { algorithm: 'ed25519' }, 'ssh-ed25519', 256],
  ])(
    '%s: the Secret holds a key OpenSSH reads, registered read-only, that clones over the real sshd',
    async (_n, keyInput, type, bits) => {
      const namespace = uniqueName('gk-alg');
      const r = await succeed({
        namespace,
        path: `clusters/${namespace}`,
        ...keyInput,
      });

      const { secret, data } = (await readSecret(namespace))!;
      expect(Object.keys(data).sort()).toEqual([
        'identity',
        'identity.pub',
        'known_hosts',
      ]);
      expect(secret.type).toBe('Opaque');
      // Written by server-side apply with flux's field manager, in a namespace the action created.
      expect(secret.metadata.managedFields).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ manager: 'flux', operation: 'Apply' }),
        ]),
      );
      expect(data['identity.pub']).toBe(`${r.outputs.publicKey}\n`);
      expect(r.outputs.publicKey.startsWith(`${type} `)).toBe(true);
      expect(data.identity).toMatch(
        type === 'ssh-ed25519'
          ? /^-----BEGIN OPENSSH PRIVATE KEY-----\n/
          : /^-----BEGIN PRIVATE KEY-----\n/,
      );

      // ssh-keygen derives identity.pub from identity, and prints our fingerprint.
      const { identity } = sshEnvFor(data, 'keygen');
      expect(await keygen(['-y', '-f', identity])).toBe(
        data['identity.pub'].trim(),
      );
      const [printedBits, printedFp] = (
        await keygen(['-l', '-E', 'sha256', '-f', identity])
      ).split(/\s+/);
      expect(Number(printedBits)).toBe(bits);
      expect(printedFp).toBe(r.outputs.fingerprint);

      // known_hosts: one line for the configured SSH host, a key the real sshd holds.
      expect(r.outputs.knownHosts).toBe(data.known_hosts);
      const [hostField, khType, khKey] = data.known_hosts.split(' ');
      expect(hostField).toBe(`[127.0.0.1]:${bb.ssh!.port}`);
      expect(bb.ssh!.hostKeys.map(k => k.publicKey)).toContain(
        `${khType} ${khKey}`,
      );

      // The access key: flux's label, REPO_READ, the id we output, text without newline.
      const label = `${namespace}-main-flux-system-./clusters/${namespace}`;
      expect(r.outputs.accessKeyLabel).toBe(label);
      const post = bb
        .requests()
        .filter(
          q =>
            q.method === 'POST' &&
            q.path.startsWith('/rest/keys/1.0/') &&
            q.body?.includes(label),
        );
      expect(post).toHaveLength(1);
      expect(JSON.parse(post[0].body!)).toEqual({
        key: { text: `${r.outputs.publicKey} ${label}`, label },
        permission: 'REPO_READ',
      });
      expect(r.outputs.changed).toBe(true);
      expect(typeof r.outputs.accessKeyId).toBe('number');

      const clone = await cloneWith(data, `clone-${type}`);
      expect(clone).toMatchObject({ ok: true });
    },
  );

  it('a read key clones but cannot push; readWrite can push', async () => {
    const nsRead = uniqueName('gk-read');
    await succeed({ namespace: nsRead, path: 'clusters/read' });
    const read = (await readSecret(nsRead))!.data;
    expect(keyOf(read['identity.pub'])).toMatchObject({
      permission: 'REPO_READ',
    });
    const c1 = await cloneWith(read, 'read');
    expect(c1.ok).toBe(true);
    const denied = await pushFrom(c1, 'from-read-key.txt');
    expect(denied.ok).toBe(false);
    // refused for the key's permission, not for any other reason
    expect((denied as { error: string }).error).toMatch(
      /not permitted to push.*read-only/,
    );

    const nsWrite = uniqueName('gk-write');
    const w = await succeed({
      namespace: nsWrite,
      path: 'clusters/write',
      readWrite: true,
    });
    expect(keyOf(w.outputs.publicKey)).toMatchObject({
      id: w.outputs.accessKeyId,
      permission: 'REPO_WRITE',
    });
    const write = (await readSecret(nsWrite))!.data;
    const c2 = await cloneWith(write, 'write');
    expect(c2.ok).toBe(true);
    const pushed = await pushFrom(c2, 'from-write-key.txt');
    expect(pushed).toEqual({ ok: true });
    const head = (
      await execFileAsync('git', [
        '--git-dir',
        bb.repoPath(PROJECT, slug),
        'log',
        '-1',
        '--format=%s',
        'main',
      ])
    ).stdout.trim();
    expect(head).toBe('from-write-key.txt');
  });

  it('a wrong pinned host key fingerprint fails before anything is written', async () => {
    const namespace = uniqueName('gk-pin');
    const keysBefore = accessKeys().length;
    clearRequests();
    const wrong = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    const r = await run({ namespace, hostKeyFingerprint: wrong });
    expect(r.error).toBeDefined();
    expect(r.error!.message).toContain(wrong);
    expect(r.error!.message).toMatch(/does not match the pinned fingerprint/);
    expect(await readSecret(namespace)).toBeUndefined();
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace }),
    ).toBeUndefined();
    expect(accessKeys()).toHaveLength(keysBefore);
    expect(bb.requests().filter(q => q.method !== 'GET')).toEqual([]);
  });

  it('a pinned fingerprint of another host key type is found and trusted', async () => {
    const namespace = uniqueName('gk-pin-ok');
    const rsa = bb.ssh!.hostKeys.find(k => k.type === 'ssh-rsa')!;
    const r = await succeed({ namespace, hostKeyFingerprint: rsa.fingerprint });
    expect(r.outputs.knownHosts).toBe(
      `[127.0.0.1]:${bb.ssh!.port} ${rsa.publicKey}`,
    );
    const data = (await readSecret(namespace))!.data;
    // OpenSSH negotiates the host key type it knows from known_hosts.
    expect((await cloneWith(data, 'pinned-rsa')).ok).toBe(true);
  });

  it('re-runs converge: the second run changes nothing and sends no write', async () => {
    const namespace = uniqueName('gk-rerun');
    const first = await succeed({ namespace, path: 'clusters/rerun' });
    const rv = (await readSecret(namespace))!.secret.metadata.resourceVersion;
    clearRequests();
    const second = await succeed({ namespace, path: 'clusters/rerun' });
    expect(second.outputs).toEqual({ ...first.outputs, changed: false });
    expect((await readSecret(namespace))!.secret.metadata.resourceVersion).toBe(
      rv,
    );
    expect(bb.requests().filter(q => q.method !== 'GET')).toEqual([]);
    expect(
      accessKeys().filter(k => k.label === first.outputs.accessKeyLabel),
    ).toEqual([
      expect.objectContaining({
        id: first.outputs.accessKeyId,
        permission: 'REPO_READ',
      }),
    ]);
  });

  it("re-registers the Secret's key when it was removed from Bitbucket, and fixes its permission", async () => {
    const namespace = uniqueName('gk-rereg');
    const first = await succeed({ namespace, path: 'clusters/rereg' });
    const del = await fetch(
      `${bb.baseUrl}/rest/keys/1.0/projects/${PROJECT}/repos/${slug}/ssh/${first.outputs.accessKeyId}`,
      {
        method: 'DELETE',
        headers: { Authorization: `Bearer ${TOKEN}` },
      },
    );
    expect(del.status).toBe(204);
    const data = (await readSecret(namespace))!.data;
    expect((await cloneWith(data, 'rereg-before')).ok).toBe(false);

    const again = await succeed({ namespace, path: 'clusters/rereg' });
    expect(again.outputs.changed).toBe(true);
    expect(again.outputs.publicKey).toBe(first.outputs.publicKey);
    expect(again.outputs.accessKeyId).not.toBe(first.outputs.accessKeyId);
    expect((await readSecret(namespace))!.data.identity).toBe(data.identity);
    expect((await cloneWith(data, 'rereg-after')).ok).toBe(true);

    // Asking for write access on an existing key updates its permission in place.
    clearRequests();
    const rw = await succeed({
      namespace,
      path: 'clusters/rereg',
      readWrite: true,
    });
    expect(rw.outputs.accessKeyId).toBe(again.outputs.accessKeyId);
    expect(rw.outputs.changed).toBe(true);
    expect(
      bb
        .requests()
        .filter(q => q.method === 'PUT')
        .map(q => q.path),
    ).toEqual([
      `/rest/keys/1.0/projects/${PROJECT}/repos/${slug}/ssh/${again.outputs.accessKeyId}/permission/REPO_WRITE`,
    ]);
    const c = await cloneWith(data, 'rereg-rw');
    expect(await pushFrom(c, 'after-permission-change.txt')).toEqual({
      ok: true,
    });
  });

  it('rotate: new key and Secret, the old access key removed by its id', async () => {
    const namespace = uniqueName('gk-rotate');
    const first = await succeed({ namespace, path: 'clusters/rotate' });
    const oldData = (await readSecret(namespace))!.data;
    clearRequests();
    const rotated = await succeed({
      namespace,
      path: 'clusters/rotate',
      rotate: true,
      algorithm: 'ed25519',
    });
    expect(rotated.outputs.changed).toBe(true);
    expect(rotated.outputs.publicKey).not.toBe(first.outputs.publicKey);
    expect(rotated.outputs.publicKey.startsWith('ssh-ed25519 ')).toBe(true);
    expect(rotated.outputs.removedAccessKeyIds).toEqual([
      first.outputs.accessKeyId,
    ]);
    expect(
      bb
        .requests()
        .filter(q => q.method === 'DELETE')
        .map(q => q.path),
    ).toEqual([
      `/rest/keys/1.0/projects/${PROJECT}/repos/${slug}/ssh/${first.outputs.accessKeyId}`,
    ]);
    expect(keyOf(first.outputs.publicKey)).toBeUndefined();
    expect(
      accessKeys().filter(k => k.label === rotated.outputs.accessKeyLabel),
    ).toEqual([expect.objectContaining({ id: rotated.outputs.accessKeyId })]);
    expect(rotated.logs.join('\n')).toContain(
      `Removed access key ${first.outputs.accessKeyId}`,
    );

    const newData = (await readSecret(namespace))!.data;
    expect(newData.identity).not.toBe(oldData.identity);
    expect((await cloneWith(oldData, 'rotate-old')).ok).toBe(false);
    expect((await cloneWith(newData, 'rotate-new')).ok).toBe(true);

    // And it converges afterwards.
    const after = await succeed({ namespace, path: 'clusters/rotate' });
    expect(after.outputs.changed).toBe(false);
    expect(after.outputs.publicKey).toBe(rotated.outputs.publicKey);
  });

  it('a crash between the Secret and the access key converges on a plain re-run', async () => {
    const namespace = uniqueName('gk-crash');
    const crashed = await run(
      { namespace, path: 'clusters/crash' },
      { crashAfter: 'secret' },
    );
    expect(crashed.error?.message).toContain('simulated crash');
    const data = (await readSecret(namespace))!.data;
    expect(keyOf(data['identity.pub'])).toBeUndefined();

    const rerun = await succeed({ namespace, path: 'clusters/crash' });
    expect(rerun.outputs.publicKey).toBe(data['identity.pub'].trim());
    expect(rerun.outputs.changed).toBe(true);
    expect(keyOf(data['identity.pub'])).toMatchObject({
      id: rerun.outputs.accessKeyId,
    });
    expect((await cloneWith(data, 'crash')).ok).toBe(true);
  });

  it('task recovery of an interrupted rotation finishes it instead of rotating again', async () => {
    const namespace = uniqueName('gk-recover');
    const first = await succeed({ namespace, path: 'clusters/recover' });
    const store = new Map<string, unknown>();
    const crashed = await run(
      { namespace, path: 'clusters/recover', rotate: true },
      { checkpointStore: store, crashAfter: 'secret' },
    );
    expect(crashed.error?.message).toContain('simulated crash');
    const rotatedData = (await readSecret(namespace))!.data;
    expect(rotatedData['identity.pub'].trim()).not.toBe(
      first.outputs.publicKey,
    );
    // The stored checkpoint values are public data only.
    expect(JSON.stringify([...store.values()])).not.toMatch(/PRIVATE KEY/);

    // The scaffolder resumes the task with the same input and its checkpoint state.
    const resumed = await run(
      { namespace, path: 'clusters/recover', rotate: true },
      { checkpointStore: store },
    );
    expect(resumed.error).toBeUndefined();
    expect(resumed.checkpoints.map(c => c.key)).toEqual([
      'access-key',
      'access-key-cleanup',
    ]);
    expect(resumed.outputs.publicKey).toBe(rotatedData['identity.pub'].trim());
    expect(resumed.outputs.removedAccessKeyIds).toEqual([
      first.outputs.accessKeyId,
    ]);
    expect((await readSecret(namespace))!.data.identity).toBe(
      rotatedData.identity,
    );
    expect(keyOf(first.outputs.publicKey)).toBeUndefined();
    expect((await cloneWith(rotatedData, 'recovered')).ok).toBe(true);
  });

  it('repairs a known_hosts without the SSH host, keeping the identity', async () => {
    const namespace = uniqueName('gk-kh');
    const first = await succeed({ namespace });
    const before = (await readSecret(namespace))!.data;
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'flux-system', namespace },
        data: {
          known_hosts: Buffer.from(
            `[elsewhere.example]:7999 ${bb.ssh!.hostKeys[0].publicKey}`,
          ).toString('base64'),
        },
      },
      { fieldManager: 'someone-else', force: true },
    );
    expect(
      (await cloneWith((await readSecret(namespace))!.data, 'kh-broken')).ok,
    ).toBe(false);
    const fixed = await succeed({ namespace });
    expect(fixed.outputs.changed).toBe(true);
    expect(fixed.outputs.publicKey).toBe(first.outputs.publicKey);
    const after = (await readSecret(namespace))!.data;
    expect(after.identity).toBe(before.identity);
    expect(after.known_hosts).toBe(first.outputs.knownHosts);
    expect((await cloneWith(after, 'kh-fixed')).ok).toBe(true);
  });

  it('a host key that changed since the Secret was written is reported, not accepted; pinning the new one accepts it', async () => {
    const namespace = uniqueName('gk-hkchg');
    const first = await succeed({ namespace, path: 'clusters/hkchg' });
    const trusted = first.outputs.knownHosts as string;
    const hostField = trusted.split(' ')[0];
    // The Secret trusts a key the server does not hold (as if the server was re-keyed since):
    // another ed25519 key for the same [host]:port.
    const other = await execFileAsync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-f',
      path.join(work, `hkchg-${namespace}`),
    ]).then(() =>
      fs
        .readFileSync(path.join(work, `hkchg-${namespace}.pub`), 'utf8')
        .trim()
        .split(' ')
        .slice(0, 2)
        .join(' '),
    );
    const stale = `${hostField} ${other}`;
    await admin.apply(
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'flux-system', namespace },
        data: { known_hosts: Buffer.from(stale).toString('base64') },
      },
      { fieldManager: 'flux-bootstrap-known-hosts', force: true },
    );
    const before = (await readSecret(namespace))!.secret;
    clearRequests();
    const r = await run({ namespace, path: 'clusters/hkchg' });
    expect(r.error?.message).toMatch(
      /SSH host key of 127\.0\.0\.1:\d+ changed/,
    );
    expect(r.error?.message).toContain(
      bb
        .ssh!.hostKeys.map(k => k.fingerprint)
        .find(f => r.error!.message.includes(f)) ?? 'a presented fingerprint',
    );
    expect(r.error?.message).toMatch(/hostKeyFingerprint/);
    expect(r.error?.message).toMatch(/Nothing was changed/);
    const after = (await readSecret(namespace))!;
    expect(after.secret.metadata.resourceVersion).toBe(
      before.metadata.resourceVersion,
    );
    expect(after.data.known_hosts).toBe(stale);
    expect(bb.requests().filter(q => q.method !== 'GET')).toEqual([]);

    // The operator checked the new fingerprint and pins it: known_hosts is updated, the key kept.
    const real = bb.ssh!.hostKeys.find(k => k.type === 'ssh-ed25519')!;
    const pinned = await succeed({
      namespace,
      path: 'clusters/hkchg',
      hostKeyFingerprint: real.fingerprint,
    });
    expect(pinned.outputs.publicKey).toBe(first.outputs.publicKey);
    expect((await readSecret(namespace))!.data.known_hosts).toBe(
      `${hostField} ${real.publicKey}`,
    );
    // And an unchanged host key passes the check on a plain re-run.
    const again = await succeed({ namespace, path: 'clusters/hkchg' });
    expect(again.outputs.changed).toBe(false);
    expect(again.logs.join('\n')).toMatch(
      /SSH host key of 127\.0\.0\.1:\d+ is still/,
    );
  });

  it('stops before any change when the Bitbucket credentials cannot manage access keys', async () => {
    const namespace = uniqueName('gk-noadmin');
    clearRequests();
    const r = await run({ namespace, token: READER_TOKEN });
    expect(r.error?.message).toMatch(/REPO_ADMIN/);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace }),
    ).toBeUndefined();
    expect(bb.requests().filter(q => q.method !== 'GET')).toEqual([]);
    expect(r.logs.join('\n') + r.error!.message).not.toContain(READER_TOKEN);
  });

  it('stops before any change when the cluster credentials cannot write Secrets', async () => {
    const namespace = uniqueName('gk-nokube');
    const keysBefore = accessKeys().length;
    clearRequests();
    const r = await run({ namespace, cluster: 'restricted' });
    expect(r.error?.message).toMatch(
      /may not create, patch Secrets in namespace/,
    );
    expect(accessKeys()).toHaveLength(keysBefore);
    expect(bb.requests().filter(q => q.method !== 'GET')).toEqual([]);
  });

  it.each([
    [{ namespace: 'Not_A_Namespace' }, 'namespace'],
    [{ secretName: 'UPPER' }, 'secretName'],
    [{ algorithm: 'dsa' }, 'algorithm'],
    [{ ecdsaCurve: 'p999' }, 'ecdsaCurve'],
    [{ algorithm: 'rsa', rsaBits: 1024 }, 'rsaBits'],
    [{ algorithm: 'rsa', rsaBits: 2049 }, 'rsaBits'],
    [{ branch: 'a..b' }, 'branch'],
    [{ path: '../outside' }, 'path'],
    [{ sshHost: 'ssh://host:7999' }, 'sshHost'],
    [{ hostKeyFingerprint: 'MD5:12:34' }, 'hostKeyFingerprint'],
    [{ readWrite: 'yes' }, 'readWrite'],
    [{ rotate: 'true' }, 'rotate'],
    [{ repoUrl: 'other.example.com?project=FLUX&repo=x' }, 'repoUrl'],
    [{ cluster: 'nope' }, 'cluster'],
    // moved with the key options' checks from the engine (normaliseSshKeyOptions)
    [{ algorithm: 'ECDSA' }, 'algorithm'],
    [{ ecdsaCurve: 'p224' }, 'ecdsaCurve'],
    [{ algorithm: 'rsa', rsaBits: 2048.5 }, 'rsaBits'],
    [{ algorithm: 'rsa', rsaBits: 16384 }, 'rsaBits'],
    [{ algorithm: 'rsa', rsaBits: '4096' }, 'rsaBits'],
    // cross-field: exactly one of repoUrl and url, and each mode's own inputs
    [{ repoUrl: undefined }, 'repoUrl'],
    [{ url: 'ssh://git@bitbucket.example.com:7999/flux/x.git' }, 'url'],
    [{ sshPrivateKeySecret: 'myKey' }, 'sshPrivateKeySecret'],
    [{ sshPassphraseSecret: 'myPassphrase' }, 'sshPassphraseSecret'],
  ])('refuses %j naming the field, sending nothing', async (input, field) => {
    clearRequests();
    const namespace = uniqueName('gk-bad');
    const r = await run({ namespace, ...input });
    expect(r.error).toBeInstanceOf(InputError);
    expect(r.error!.message).toContain(`"${field}"`);
    expect(bb.requests()).toEqual([]);
    expect(r.checkpoints).toEqual([]);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace }),
    ).toBeUndefined();
  });

  it('fails clearly when the repository does not exist', async () => {
    const namespace = uniqueName('gk-norepo');
    const r = await run({
      namespace,
      repoUrl: `${bb.host}?project=${PROJECT}&repo=missing-repo`,
    });
    expect(r.error?.message).toMatch(/does not exist.*bitbucket:create-repo/);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace }),
    ).toBeUndefined();
  });

  it('dry run sends nothing and says what it would do', async () => {
    clearRequests();
    const namespace = uniqueName('gk-dry');
    const r = await run(
      { namespace, path: 'clusters/dry', readWrite: true },
      { dryRun: true },
    );
    expect(r.error).toBeUndefined();
    expect(bb.requests()).toEqual([]);
    expect(
      await admin.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace }),
    ).toBeUndefined();
    const text = r.logs.join('\n');
    expect(text).toContain(
      `would read Secret ${namespace}/flux-system in cluster test`,
    );
    expect(text).toContain(`would scan the SSH host key of ${bb.ssh!.host}`);
    expect(text).toContain(
      `"${namespace}-main-flux-system-./clusters/dry" (REPO_WRITE)`,
    );
    expect(r.outputs).toEqual({
      secretName: 'flux-system',
      accessKeyLabel: `${namespace}-main-flux-system-./clusters/dry`,
      removedAccessKeyIds: [],
      changed: false,
    });
  });

  it('gives every omitted input its documented default (inputs a template left empty count as omitted)', async () => {
    clearRequests();
    for (const empty of [{}, { namespace: '', secretName: null, path: '' }]) {
      const r = await run(
        {
          cluster: 'test',
          repoUrl: `${bb.host}?project=${PROJECT}&repo=${REPO}`,
          ...empty,
        },
        { dryRun: true },
      );
      expect(r.error).toBeUndefined();
      const text = r.logs.join('\n');
      // namespace and secretName flux-system; ecdsa p384; no rotation
      expect(text).toContain(
        'would read Secret flux-system/flux-system in cluster test',
      );
      expect(text).toContain(
        'when the Secret holds no key: generate a ecdsa p384 key; otherwise keep it',
      );
      // sshHost: the host's configured SSH endpoint; no pinned fingerprint
      expect(text).toContain(
        `would scan the SSH host key of ${bb.ssh!.host} for known_hosts\n`,
      );
      // branch main, no path, read-only
      expect(text).toContain(
        'access key "flux-system-main-flux-system" (REPO_READ)',
      );
      expect(r.outputs).toEqual({
        secretName: 'flux-system',
        accessKeyLabel: 'flux-system-main-flux-system',
        removedAccessKeyIds: [],
        changed: false,
      });
    }
    expect(bb.requests()).toEqual([]);
  });

  it('defaults sshHost to the Bitbucket host name on port 7999 when none is configured or given', async () => {
    clearRequests();
    const namespace = uniqueName('gk-dry-port');
    const r = await run(
      { namespace },
      { dryRun: true, config: config({ fluxBootstrap: {} }) },
    );
    expect(r.error).toBeUndefined();
    expect(bb.requests()).toEqual([]);
    expect(r.logs.join('\n')).toContain(
      'would scan the SSH host key of 127.0.0.1:7999 for known_hosts',
    );
  });

  it('never lets a private key or token out: only the Secret holds the key', async () => {
    // Runs last: scans everything the runs above produced, and every Bitbucket request.
    expect(identities.length).toBeGreaterThanOrEqual(8);
    const bitbucketTraffic = JSON.stringify([...traffic, ...bb.requests()]);
    expect(bitbucketTraffic).toContain('/rest/keys/1.0/');
    const all = [...produced, bitbucketTraffic].join('\n');
    for (const { pem, pub } of identities) {
      for (const secret of privateParts(pem, pub))
        expect(all).not.toContain(secret);
    }
    expect(all).not.toMatch(/PRIVATE KEY-----/);
    expect(produced.join('\n')).not.toContain(TOKEN);
  });
});
