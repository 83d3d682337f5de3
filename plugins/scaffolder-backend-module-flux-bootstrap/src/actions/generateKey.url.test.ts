import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { InputError } from '@backstage/errors';
import {
  BitbucketDouble,
  getSharedKubeApiserver,
  startBitbucketDouble,
  uniqueName,
  withGitAuth,
} from '@flux-bootstrap/test-peers';
import { KubeClient } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  readSecret as readSecretOf,
  adminKubeClient,
} from './__testUtils__/peers';
import {
  actionConfig,
  configCluster,
  runAction,
  withCompletedCheckpoints,
  type CompletedCheckpointsRun,
} from './__testUtils__/actionHarness';
import { createFluxGenerateKeyAction } from './generateKey';

// flux:generate-key with url: bootstrap without a Bitbucket token (flux bootstrap git
// --private-key-file --password). Real peers: OpenSSH sshd (through the Bitbucket double, which
// authorises repository access keys), kube-apiserver + etcd.
jest.setTimeout(180_000);

const execFileAsync = promisify(execFile);
const PROJECT = 'PLAT';
const PASSPHRASE = 'canary-passphrase-51d0c9e2';
const WRONG_PASSPHRASE = 'canary-wrong-passphrase-0b7a';

let bb: BitbucketDouble;
let slug: string;
let sshUrl: string;
let admin: KubeClient;
let work: string;
const kubeInfo = () => getSharedKubeApiserver();

interface UserKey {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}
let encryptedKey: UserKey;
let plainKey: UserKey;
let unregisteredKey: UserKey;

/** Everything the action produced: logs, outputs, errors, checkpoint values. */
const produced: string[] = [];

function keygen(name: string, args: string[], passphrase: string): UserKey {
  const file = path.join(work, name);
  execFileSync('ssh-keygen', [
    '-q',
    ...args,
    '-N',
    passphrase,
    '-C',
    'alice@laptop',
    '-f',
    file,
  ]);
  return {
    privateKey: fs.readFileSync(file, 'utf8'),
    publicKey: fs
      .readFileSync(`${file}.pub`, 'utf8')
      .trim()
      .split(' ')
      .slice(0, 2)
      .join(' '),
    fingerprint: execFileSync('ssh-keygen', ['-lf', `${file}.pub`], {
      encoding: 'utf8',
    }).split(' ')[1],
  };
}

function config() {
  return actionConfig({ clusters: [configCluster('edge', kubeInfo())] });
}

type Run = CompletedCheckpointsRun;

async function run(
  input: Record<string, unknown>,
  secrets: Record<string, string>,
  opts: { dryRun?: boolean } = {},
): Promise<Run> {
  const r = await runAction(
    createFluxGenerateKeyAction,
    { cluster: 'edge', url: sshUrl, ...input },
    {
      factoryOptions: { config: config() },
      secrets,
      dryRun: opts.dryRun,
      produced,
    },
  );
  return withCompletedCheckpoints(r);
}

async function succeed(
  input: Record<string, unknown>,
  secrets: Record<string, string>,
): Promise<Run> {
  const r = await run(input, secrets);
  if (r.error)
    throw new Error(`action failed: ${r.error.message}\n${r.logs.join('\n')}`);
  return r;
}

const encryptedSecrets = () => ({
  sshPrivateKey: encryptedKey.privateKey,
  sshPassphrase: PASSPHRASE,
});
const withPassphrase = { sshPassphraseSecret: 'sshPassphrase' };

const readSecret = (namespace: string) => readSecretOf(admin, namespace);

async function namespaceExists(name: string) {
  return !!(await admin.get({ apiVersion: 'v1', kind: 'Namespace', name }));
}

/**
 * Clones the repository with exactly the Secret's identity, known_hosts and password, as
 * source-controller would: strict host key checking against known_hosts only, no agent, no
 * configuration, and the key decrypted with `password` through SSH_ASKPASS (0600 files in a 0700
 * folder, removed afterwards).
 */
async function cloneWithSecret(
  data: Record<string, string>,
): Promise<{ ok: true; head: string } | { ok: false; error: string }> {
  const dir = fs.mkdtempSync(path.join(work, 'clone-'));
  fs.chmodSync(dir, 0o700);
  try {
    fs.writeFileSync(path.join(dir, 'identity'), data.identity, {
      mode: 0o600,
    });
    fs.writeFileSync(path.join(dir, 'known_hosts'), data.known_hosts, {
      mode: 0o600,
    });
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: dir,
      GIT_TERMINAL_PROMPT: '0',
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_CONFIG_GLOBAL: '/dev/null',
    };
    if (data.password !== undefined) {
      fs.writeFileSync(path.join(dir, 'password'), data.password, {
        mode: 0o600,
      });
      fs.writeFileSync(
        path.join(dir, 'askpass'),
        `#!/bin/sh\ncat '${path.join(dir, 'password')}'\n`,
        { mode: 0o700 },
      );
      Object.assign(env, {
        SSH_ASKPASS: path.join(dir, 'askpass'),
        SSH_ASKPASS_REQUIRE: 'force',
        DISPLAY: ':0',
      });
    }
    env.GIT_SSH_COMMAND = [
      'ssh -F /dev/null',
      `-i '${path.join(dir, 'identity')}'`,
      '-o IdentitiesOnly=yes -o IdentityAgent=none',
      `-o BatchMode=${data.password !== undefined ? 'no' : 'yes'}`,
      '-o PasswordAuthentication=no -o KbdInteractiveAuthentication=no',
      '-o NumberOfPasswordPrompts=1',
      '-o StrictHostKeyChecking=yes',
      `-o UserKnownHostsFile='${path.join(dir, 'known_hosts')}'`,
      '-o GlobalKnownHostsFile=/dev/null',
    ].join(' ');
    const target = path.join(dir, 'repo');
    try {
      await execFileAsync('git', ['clone', '--quiet', sshUrl, target], {
        env,
      });
      const head = (
        await execFileAsync('git', ['rev-parse', 'HEAD'], { cwd: target, env })
      ).stdout.trim();
      return { ok: true, head };
    } catch (e) {
      return { ok: false, error: String((e as { stderr?: string }).stderr) };
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function restRequests() {
  return bb.requests().filter(r => r.path.startsWith('/rest/'));
}

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'generate-key-url-'));
  bb = await startBitbucketDouble({ ssh: true });
  bb.addUser({ name: 'alice' });
  bb.addProject({ key: PROJECT, name: 'Platform' });
  slug = bb.createRepo(PROJECT, 'fleet-infra', {
    defaultBranch: 'main',
    initialCommit: true,
  }).slug;
  sshUrl = bb.cloneUrls(PROJECT, slug).ssh!;
  encryptedKey = keygen('encrypted', ['-t', 'ed25519'], PASSPHRASE);
  plainKey = keygen('plain', ['-t', 'rsa', '-b', '2048', '-m', 'PEM'], '');
  unregisteredKey = keygen('unregistered', ['-t', 'ecdsa'], '');
  // Registered in advance by the user, as the Flux guide asks.
  for (const [key, label] of [
    [encryptedKey, 'alice-laptop'],
    [plainKey, 'alice-ci'],
  ] as const) {
    bb.addAccessKey(
      PROJECT,
      slug,
      { text: `${key.publicKey} alice@laptop`, label },
      'REPO_READ',
    );
  }
  admin = await adminKubeClient(kubeInfo());
});

afterAll(async () => {
  admin?.close();
  await bb?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

describe('flux:generate-key with url (your own key, no Bitbucket token)', () => {
  let namespace: string;

  it('stores the encrypted key as supplied, its public key, the scanned host key and the passphrase; a clone with exactly those works', async () => {
    namespace = uniqueName('gk-url');
    bb.clearRequests();
    const accessKeysBefore = JSON.stringify(bb.state().accessKeys);
    const { outputs, logs, checkpoints } = await succeed(
      { namespace, ...withPassphrase },
      encryptedSecrets(),
    );
    const { data } = (await readSecret(namespace))!;
    expect(Object.keys(data).sort()).toEqual([
      'identity',
      'identity.pub',
      'known_hosts',
      'password',
    ]);
    expect(data.identity).toBe(encryptedKey.privateKey);
    expect(data['identity.pub']).toBe(`${encryptedKey.publicKey}\n`);
    expect(data.password).toBe(PASSPHRASE);
    const [hostField, type, b64] = data.known_hosts.split(' ');
    expect(hostField).toBe(`[127.0.0.1]:${bb.ssh!.port}`);
    expect(bb.ssh!.hostKeys.map(k => k.publicKey)).toContain(`${type} ${b64}`);
    expect(outputs).toMatchObject({
      publicKey: encryptedKey.publicKey,
      fingerprint: encryptedKey.fingerprint,
      knownHosts: data.known_hosts,
      secretName: 'flux-system',
      changed: true,
      removedAccessKeyIds: [],
    });
    expect(outputs.accessKeyId).toBeUndefined();
    // No key generated, nothing registered, no Bitbucket call at all.
    expect(restRequests()).toEqual([]);
    expect(JSON.stringify(bb.state().accessKeys)).toBe(accessKeysBefore);
    expect(logs.join('\n')).toMatch(/Bitbucket is not called/);
    expect(checkpoints.map(c => c.key)).toEqual([
      'git-secret.inspect',
      'git-secret.host-key',
      'git-secret.write',
    ]);

    const clone = await cloneWithSecret(data);
    expect(clone).toMatchObject({ ok: true });
    // Without the password the same identity is useless (the key really is encrypted).
    const { password: _dropped, ...withoutPassword } = data;
    expect(await cloneWithSecret(withoutPassword)).toMatchObject({
      ok: false,
    });
    // And the simulator's source-controller auth (the sandbox's Flux) reads the Secret too.
    await withGitAuth(sshUrl, data, async env => {
      const { stdout } = await execFileAsync(
        'git',
        ['ls-remote', sshUrl, 'refs/heads/main'],
        { env },
      );
      expect(stdout.split('\t')[0]).toBe((clone as { head: string }).head);
    });
  });

  it('changes nothing on a re-run: same Secret, same resourceVersion, no scan needed beyond verifying the trusted key', async () => {
    const before = (await readSecret(namespace))!;
    const { outputs, logs } = await succeed(
      { namespace, ...withPassphrase },
      encryptedSecrets(),
    );
    const after = (await readSecret(namespace))!;
    expect(outputs.changed).toBe(false);
    expect(after.secret.metadata.resourceVersion).toBe(
      before.secret.metadata.resourceVersion,
    );
    expect(logs.join('\n')).toMatch(/is still .* as known_hosts of .* says/);
    expect(logs.join('\n')).toMatch(/is up to date/);
    expect(restRequests()).toEqual([]);
  });

  it('switching to an unencrypted key replaces identity and drops password', async () => {
    const { outputs } = await succeed(
      { namespace },
      { sshPrivateKey: plainKey.privateKey },
    );
    expect(outputs.changed).toBe(true);
    const { data } = (await readSecret(namespace))!;
    expect(Object.keys(data).sort()).toEqual([
      'identity',
      'identity.pub',
      'known_hosts',
    ]);
    expect(data.identity).toBe(plainKey.privateKey);
    expect(data['identity.pub']).toBe(`${plainKey.publicKey}\n`);
    expect(await cloneWithSecret(data)).toMatchObject({ ok: true });
  });

  it('does not store a passphrase the key does not need, and says so', async () => {
    const ns = uniqueName('gk-url-nopass');
    const { logs } = await succeed(
      { namespace: ns, ...withPassphrase },
      { sshPrivateKey: plainKey.privateKey, sshPassphrase: PASSPHRASE },
    );
    const { data } = (await readSecret(ns))!;
    expect(data.password).toBeUndefined();
    expect(logs.join('\n')).toMatch(
      /warn A passphrase was given, but the private key is not encrypted/,
    );
  });

  it('stores a key that is not registered on the repository (the user registers it), and Flux then cannot clone', async () => {
    const ns = uniqueName('gk-url-unreg');
    await succeed(
      { namespace: ns },
      { sshPrivateKey: unregisteredKey.privateKey },
    );
    const { data } = (await readSecret(ns))!;
    const clone = await cloneWithSecret(data);
    expect(clone).toMatchObject({ ok: false });
    expect(restRequests()).toEqual([]);
  });

  it.each([
    [
      'a wrong passphrase',
      { ...withPassphrase },
      () => ({
        sshPrivateKey: encryptedKey.privateKey,
        sshPassphrase: WRONG_PASSPHRASE,
      }),
      'sshPassphraseSecret',
      /does not decrypt the private key in the task secret "sshPrivateKey" \(wrong passphrase\)/,
    ],
    [
      'an encrypted key without passphrase',
      {},
      () => ({ sshPrivateKey: encryptedKey.privateKey }),
      'sshPassphraseSecret',
      /is needed: the private key in the task secret "sshPrivateKey" is encrypted/,
    ],
    [
      'a passphrase secret that is missing',
      { sshPassphraseSecret: 'keyPassphrase' },
      () => ({ sshPrivateKey: encryptedKey.privateKey }),
      'sshPassphraseSecret',
      /no task secret named "keyPassphrase"/,
    ],
    [
      'no key in the task secrets',
      {},
      () => ({}),
      'sshPrivateKeySecret',
      /"sshPrivateKey" is empty or missing/,
    ],
    [
      'a public key instead of the private key',
      {},
      () => ({ sshPrivateKey: `${encryptedKey.publicKey} alice@laptop` }),
      'sshPrivateKeySecret',
      /holds a public key/,
    ],
    [
      'an https URL',
      { url: 'https://bitbucket.example.com/scm/plat/fleet.git' },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'url',
      /must be an ssh:\/\/ URL/,
    ],
    [
      'both url and repoUrl',
      { repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet' },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'url',
      /either repoUrl .* or url/,
    ],
    [
      'a Bitbucket token with url',
      { token: 'canary-token-ffe1' },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'token',
      /only applies with repoUrl/,
    ],
    [
      'rotate with url',
      { rotate: true },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'rotate',
      /only applies with repoUrl/,
    ],
    [
      'a bad pinned fingerprint',
      { hostKeyFingerprint: 'MD5:aa:bb' },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'hostKeyFingerprint',
      /must be an OpenSSH SHA256 fingerprint/,
    ],
    [
      'an unknown cluster',
      { cluster: 'nowhere' },
      () => ({ sshPrivateKey: plainKey.privateKey }),
      'cluster',
      /nowhere/,
    ],
  ])(
    'refuses %s before any request, naming the field, and writes nothing',
    async (_label, input, secrets, field, message) => {
      const ns = uniqueName('gk-url-bad');
      bb.clearRequests();
      const { error, logs } = await run({ namespace: ns, ...input }, secrets());
      expect(error).toBeInstanceOf(InputError);
      expect((error as any).field).toBe(field);
      expect(error!.message).toContain(`"${field}"`);
      expect(error!.message).toMatch(message);
      expect(await namespaceExists(ns)).toBe(false);
      expect(await readSecret(ns)).toBeUndefined();
      expect(bb.requests()).toEqual([]);
      expect(logs).toEqual([]);
    },
  );

  it('dry run: derives the public key, says what it would do, sends nothing', async () => {
    const ns = uniqueName('gk-url-dry');
    bb.clearRequests();
    const { outputs, logs, error } = await run(
      { namespace: ns, ...withPassphrase },
      encryptedSecrets(),
      { dryRun: true },
    );
    expect(error).toBeUndefined();
    expect(outputs).toMatchObject({
      publicKey: encryptedKey.publicKey,
      fingerprint: encryptedKey.fingerprint,
      changed: false,
    });
    expect(logs.join('\n')).toMatch(
      /would not generate a key nor call Bitbucket/,
    );
    expect(await namespaceExists(ns)).toBe(false);
    expect(bb.requests()).toEqual([]);
  });

  it('refuses a host key that changed since the Secret was written, writing nothing; the pinned new key is accepted', async () => {
    const ns = uniqueName('gk-url-rekey');
    await succeed({ namespace: ns, ...withPassphrase }, encryptedSecrets());
    const before = (await readSecret(ns))!;
    const rotated = await bb.rotateSshHostKeys();
    const refused = await run(
      { namespace: ns, ...withPassphrase },
      encryptedSecrets(),
    );
    expect(refused.error?.message).toMatch(
      /The SSH host key of 127\.0\.0\.1:\d+ changed: .*Nothing was changed\. Check the new fingerprint with the Git server's administrators; if it is right, run again with hostKeyFingerprint set to it\./,
    );
    expect(refused.error?.message).not.toMatch(/rotate the key/);
    const unchanged = (await readSecret(ns))!;
    expect(unchanged.secret.metadata.resourceVersion).toBe(
      before.secret.metadata.resourceVersion,
    );
    // Flux would refuse the new key too: the stored known_hosts no longer matches.
    expect(await cloneWithSecret(unchanged.data)).toMatchObject({ ok: false });

    const pinned = rotated.hostKeys[rotated.hostKeys.length - 1];
    const { outputs } = await succeed(
      {
        namespace: ns,
        ...withPassphrase,
        hostKeyFingerprint: pinned.fingerprint,
      },
      encryptedSecrets(),
    );
    expect(outputs.changed).toBe(true);
    const after = (await readSecret(ns))!;
    expect(after.data.known_hosts.split(' ').slice(1).join(' ')).toBe(
      pinned.publicKey,
    );
    expect(after.data.identity).toBe(encryptedKey.privateKey);
    expect(await cloneWithSecret(after.data)).toMatchObject({ ok: true });
  });

  it('never lets the key or the passphrase out: logs, outputs, errors and checkpoint values', () => {
    expect(produced.length).toBeGreaterThan(20);
    const all = produced.join('\n');
    const canaries = [PASSPHRASE, WRONG_PASSPHRASE, 'canary-token-ffe1'];
    for (const key of [encryptedKey, plainKey, unregisteredKey]) {
      const pub = key.publicKey.split(' ')[1];
      canaries.push(
        Buffer.from(key.privateKey).toString('base64').slice(0, 40),
      );
      for (const line of key.privateKey.split('\n')) {
        if (
          line.length >= 16 &&
          !line.startsWith('-----') &&
          !pub.includes(line)
        )
          canaries.push(line);
      }
    }
    for (const canary of canaries) expect(all).not.toContain(canary);
  });
});
