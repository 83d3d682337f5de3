import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mockCredentials, mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import {
  BitbucketDouble,
  KubeApiserver,
  KubeHttp,
  startBitbucketDouble,
  startKubeApiserver,
} from '@flux-bootstrap/test-peers';
import { createFluxGitSecretAction } from './fluxGitSecret';

// fleet:flux-git-secret against a real sshd (host key scan) and a real kube-apiserver.
jest.setTimeout(120_000);

let bitbucket: BitbucketDouble;
let kube: KubeApiserver;
let api: KubeHttp;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-git-secret-peers-'));
const passphrase = 'canary-passphrase-8c1f';

beforeAll(async () => {
  bitbucket = await startBitbucketDouble({ ssh: true });
  kube = await startKubeApiserver();
  api = new KubeHttp(kube);
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
    path.join(dir, 'id'),
  ]);
});
afterAll(async () => {
  api?.close();
  await bitbucket?.stop();
  await kube?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(input: Record<string, unknown>) {
  const config = new ConfigReader({
    kubernetes: {
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: [
            {
              name: 'edge',
              url: kube.url,
              serviceAccountToken: kube.adminToken,
              caData: Buffer.from(kube.caPem).toString('base64'),
            },
          ],
        },
      ],
    },
  });
  const logger = mockServices.logger.mock();
  const outputs: Record<string, unknown> = {};
  const ctx = {
    input: {
      cluster: 'edge',
      url: `ssh://git@${bitbucket.ssh!.host}/fleet/fleet.git`,
      ...input,
    },
    secrets: {
      sshPrivateKey: fs.readFileSync(path.join(dir, 'id'), 'utf8'),
      sshPassphrase: passphrase,
    },
    logger,
    output: (k: string, v: unknown) => {
      outputs[k] = v;
    },
    checkpoint: async ({ fn }: any) => fn(),
    getInitiatorCredentials: async () => mockCredentials.user(),
    workspacePath: dir,
    task: { id: 't' },
  } as any;
  return createFluxGitSecretAction({ config })
    .handler(ctx)
    .then(() => ({ outputs, logs: JSON.stringify(logger.info.mock.calls) }));
}

async function secretData(): Promise<Record<string, string>> {
  const res = await api.expect(
    'GET',
    '/api/v1/namespaces/flux-system/secrets/flux-system',
  );
  return Object.fromEntries(
    Object.entries(res.body.data as Record<string, string>).map(([k, v]) => [
      k,
      Buffer.from(v, 'base64').toString('utf8'),
    ]),
  );
}

describe('fleet:flux-git-secret with a real sshd and kube-apiserver', () => {
  it('writes identity, identity.pub, known_hosts (scanned) and password, as flux bootstrap git does', async () => {
    const { outputs, logs } = await run({
      sshPassphraseSecret: 'sshPassphrase',
    });
    const data = await secretData();
    expect(Object.keys(data).sort()).toEqual([
      'identity',
      'identity.pub',
      'known_hosts',
      'password',
    ]);
    expect(data.identity).toBe(fs.readFileSync(path.join(dir, 'id'), 'utf8'));
    expect(data['identity.pub'].trim()).toBe(
      fs
        .readFileSync(path.join(dir, 'id.pub'), 'utf8')
        .trim()
        .split(' ')
        .slice(0, 2)
        .join(' '),
    );
    expect(data.password).toBe(passphrase);
    // The scanned host key is one of the sshd's, in [host]:port form.
    const hostKeys = bitbucket.ssh!.hostKeys.map(k => k.publicKey);
    const [hostField, type, b64] = data.known_hosts.trim().split(' ');
    expect(hostField).toBe(`[127.0.0.1]:${bitbucket.ssh!.port}`);
    expect(hostKeys).toContain(`${type} ${b64}`);
    expect(outputs.knownHosts).toBe(data.known_hosts);
    expect(outputs.changed).toBe(true);
    // Nothing secret in what the action said.
    expect(`${logs}${JSON.stringify(outputs)}`).not.toContain(passphrase);
    expect(`${logs}${JSON.stringify(outputs)}`).not.toContain(
      data.identity.split('\n')[1],
    );
  });

  it('changes nothing on a re-run', async () => {
    const before = await api.expect(
      'GET',
      '/api/v1/namespaces/flux-system/secrets/flux-system',
    );
    const { outputs } = await run({ sshPassphraseSecret: 'sshPassphrase' });
    const after = await api.expect(
      'GET',
      '/api/v1/namespaces/flux-system/secrets/flux-system',
    );
    expect(outputs.changed).toBe(false);
    expect(after.body.metadata.resourceVersion).toBe(
      before.body.metadata.resourceVersion,
    );
  });

  it('refuses a changed server host key and writes nothing; a pinned new fingerprint is accepted', async () => {
    const before = await secretData();
    const info = await bitbucket.rotateSshHostKeys();
    await expect(run({ sshPassphraseSecret: 'sshPassphrase' })).rejects.toThrow(
      /SSH host key of 127\.0\.0\.1:\d+ changed.*Nothing was written/,
    );
    expect(await secretData()).toEqual(before);

    const fingerprints = info.hostKeys.map(k => k.fingerprint);
    const { outputs } = await run({
      sshPassphraseSecret: 'sshPassphrase',
      hostKeyFingerprint: fingerprints[0],
    });
    expect(outputs.changed).toBe(true);
    const after = await secretData();
    expect(info.hostKeys.map(k => k.publicKey)).toContain(
      after.known_hosts.trim().split(' ').slice(1).join(' '),
    );
  });
});
