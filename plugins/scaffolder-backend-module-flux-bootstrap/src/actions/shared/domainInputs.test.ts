import { InputError } from '@backstage/errors';
import {
  gitBranch,
  hostKeyFingerprint,
  kubeNamespace,
  repoPath,
  sshEndpoint,
} from './domainInputs';
import { actionInput } from './io';

// The shared input rules and the input parsing every action starts with (no network: these
// checks run before any request).

const input = actionInput(z =>
  z.object({
    defaultBranch: gitBranch(z).default('main'),
    path: repoPath(z).optional(),
    namespace: kubeNamespace(z).default('flux-system'),
    sshHost: sshEndpoint(z).optional(),
    hostKeyFingerprint: hostKeyFingerprint(z).optional(),
    groups: z
      .array(z.object({ name: z.string(), permission: z.enum(['A', 'B']) }))
      .default([]),
  }),
);

function errorOf(value: unknown): InputError & { field: string } {
  try {
    input.parse(value);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError & { field: string };
  }
  throw new Error('expected an InputError');
}

describe('actionInput', () => {
  it('applies the defaults, and counts what a template left empty as not set', () => {
    const defaults = {
      defaultBranch: 'main',
      namespace: 'flux-system',
      groups: [],
    };
    expect(input.parse({})).toEqual(defaults);
    expect(
      input.parse({ defaultBranch: '', namespace: null, path: '' }),
    ).toEqual(defaults);
  });

  it('names the field of the first problem, nested fields with their index', () => {
    const e = errorOf({
      groups: [{ name: 'g', permission: 'A' }, { name: 'h' }],
    });
    expect(e.field).toBe('groups[1].permission');
    expect(e.message).toBe('Invalid input "groups[1].permission": is required');
    expect(errorOf({ groups: [{ name: 'g', permission: 'C' }] }).message).toBe(
      'Invalid input "groups[0].permission": must be one of A, B',
    );
    expect(errorOf({ namespace: 7 }).message).toBe(
      'Invalid input "namespace": must be of type string (got number)',
    );
  });
});

describe('gitBranch', () => {
  it.each(['main', 'release/2024', 'feature_x-1.2'])('accepts %s', b => {
    expect(input.parse({ defaultBranch: b }).defaultBranch).toBe(b);
  });

  it.each([
    'a b',
    'x..y',
    '-x',
    'x/',
    'x.lock',
    'a~1',
    'a^',
    'a:b',
    '@',
    'x@{1}',
    'refs/heads/main',
    '.hidden',
  ])('rejects %j naming the field', b => {
    const e = errorOf({ defaultBranch: b });
    expect(e.field).toBe('defaultBranch');
    expect(e.message).toMatch(
      /^Invalid input "defaultBranch": is not a valid git branch name/,
    );
  });
});

describe('repoPath, kubeNamespace, sshEndpoint', () => {
  it('normalises a path and refuses one leaving the repository', () => {
    expect(input.parse({ path: './clusters/a/' }).path).toBe('clusters/a');
    expect(input.parse({ path: '.' }).path).toBe('');
    expect(errorOf({ path: 'clusters/../../x' }).field).toBe('path');
  });

  it('checks a namespace and parses host:port', () => {
    expect(errorOf({ namespace: 'Not_A_Label' }).message).toMatch(
      /^Invalid input "namespace": must be a DNS-1123 label/,
    );
    expect(input.parse({ sshHost: 'bb.example.com:7999' }).sshHost).toEqual({
      host: 'bb.example.com',
      port: 7999,
    });
    expect(errorOf({ sshHost: 'ssh://bb:7999' }).field).toBe('sshHost');
  });
});

describe('hostKeyFingerprint', () => {
  it('normalises a pinned fingerprint and refuses anything else', () => {
    const fp = 'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s';
    expect(input.parse({ hostKeyFingerprint: fp }).hostKeyFingerprint).toBe(fp);
    expect(
      input.parse({ hostKeyFingerprint: `${fp}=` }).hostKeyFingerprint,
    ).toBe(fp);
    for (const bad of [
      'MD5:aa:bb',
      'uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
      'SHA256:short',
    ]) {
      expect(errorOf({ hostKeyFingerprint: bad }).message).toMatch(
        /^Invalid input "hostKeyFingerprint": must be an OpenSSH SHA256 fingerprint/,
      );
    }
  });
});
