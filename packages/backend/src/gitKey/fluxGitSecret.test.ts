import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mockCredentials, mockServices } from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { createFluxGitSecretAction, readSuppliedSshKey } from './fluxGitSecret';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-git-secret-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function keygen(name: string, passphrase: string) {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    passphrase,
    '-C',
    'x',
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

const names = { key: 'sshPrivateKey', passphrase: 'sshPassphrase' };

describe('readSuppliedSshKey', () => {
  const plain = keygen('plain', '');
  const encrypted = keygen('encrypted', 'canary-passphrase');

  it('derives the public key and the fingerprint ssh-keygen prints', () => {
    expect(readSuppliedSshKey(plain.privateKey, undefined, names)).toEqual({
      publicKey: plain.publicKey,
      fingerprint: plain.fingerprint,
    });
    expect(
      readSuppliedSshKey(encrypted.privateKey, 'canary-passphrase', names)
        .publicKey,
    ).toBe(encrypted.publicKey);
  });

  it('names the passphrase secret when it is missing or wrong, without echoing anything secret', () => {
    expect(() =>
      readSuppliedSshKey(encrypted.privateKey, undefined, names),
    ).toThrow(
      /"sshPassphrase".*is needed: the private key in the task secret "sshPrivateKey" is encrypted/,
    );
    let message = '';
    try {
      readSuppliedSshKey(encrypted.privateKey, 'wrong-passphrase', names);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/wrong passphrase/);
    expect(message).not.toContain('wrong-passphrase');
  });

  it('refuses something that is not a private key', () => {
    expect(() => readSuppliedSshKey('not a key', undefined, names)).toThrow(
      /"sshPrivateKeySecret".*is not an SSH private key/,
    );
    expect(() => readSuppliedSshKey(plain.publicKey, undefined, names)).toThrow(
      /holds a public key, not a private key|is not an SSH private key/,
    );
  });
});

describe('fleet:flux-git-secret', () => {
  const key = keygen('action', '');
  // A cluster nothing listens on: any request would fail loudly, so passing tests prove none was sent.
  const config = new ConfigReader({
    kubernetes: {
      clusterLocatorMethods: [
        {
          type: 'config',
          clusters: [
            {
              name: 'edge',
              url: 'https://127.0.0.1:1',
              serviceAccountToken: 't',
            },
          ],
        },
      ],
    },
  });
  const action = createFluxGitSecretAction({ config });
  const ctx = (
    input: Record<string, unknown>,
    secrets: Record<string, string>,
    extra = {},
  ) =>
    ({
      input,
      secrets,
      logger: mockServices.logger.mock(),
      output: jest.fn(),
      checkpoint: async ({ fn }: any) => fn(),
      getInitiatorCredentials: async () => mockCredentials.user(),
      workspacePath: dir,
      task: { id: 't' },
      ...extra,
    } as any);
  const input = {
    cluster: 'edge',
    url: 'ssh://git@127.0.0.1:7999/fleet/fleet-git.git',
  };

  it.each([
    [
      { ...input },
      {},
      /"sshPrivateKeySecret".*names the task secret "sshPrivateKey", which is empty/,
    ],
    [
      { ...input, url: 'https://example.com/x.git' },
      { sshPrivateKey: key.privateKey },
      /"url"/,
    ],
    [
      { ...input, cluster: 'nope' },
      { sshPrivateKey: key.privateKey },
      /"cluster"/,
    ],
    [
      { ...input, namespace: 'Flux_System' },
      { sshPrivateKey: key.privateKey },
      /"namespace"/,
    ],
  ])(
    'rejects bad input %# before any request, naming the field',
    async (i, secrets, message) => {
      await expect(action.handler(ctx(i, secrets))).rejects.toThrow(message);
    },
  );

  it('describes what it would do in a dry run, and sends nothing', async () => {
    const c = ctx(input, { sshPrivateKey: key.privateKey }, { isDryRun: true });
    await action.handler(c);
    expect(c.output).toHaveBeenCalledWith('publicKey', key.publicKey);
    expect(c.output).toHaveBeenCalledWith('fingerprint', key.fingerprint);
    expect(c.output).toHaveBeenCalledWith('changed', false);
    const logged = JSON.stringify(c.logger.info.mock.calls);
    expect(logged).not.toContain(key.privateKey.split('\n')[1]);
  });
});
