import { InputValidationError } from '../util/errors';
import {
  accessKeyRequest,
  fluxAccessKeyLabel,
  fluxLabelPath,
} from './accessKey';

const PUB =
  'ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE/2Ve1oWUaQ/vZ3GLLG4VSkwOgRNbDYB8d6G7FCDHfS+UD3aFlvOf4HUWrb7mDkxLDQmuPS+Vq4nPe/d9wDnUM=';

describe('fluxAccessKeyLabel', () => {
  it('joins namespace, branch, secret name and path like flux', () => {
    expect(
      fluxAccessKeyLabel({
        namespace: 'flux-system',
        branch: 'main',
        secretName: 'flux-system',
        path: 'clusters/my-cluster',
      }),
    ).toBe('flux-system-main-flux-system-./clusters/my-cluster');
  });

  it('normalises the path as flux does', () => {
    for (const p of [
      'clusters/my-cluster',
      './clusters/my-cluster',
      './clusters/my-cluster/',
      ' clusters/my-cluster ',
    ]) {
      expect(fluxLabelPath(p)).toBe('./clusters/my-cluster');
    }
  });

  it('leaves out empty parts', () => {
    const base = {
      namespace: 'flux-system',
      branch: 'main',
      secretName: 'flux-system',
    };
    expect(fluxAccessKeyLabel(base)).toBe('flux-system-main-flux-system');
    expect(fluxAccessKeyLabel({ ...base, path: '' })).toBe(
      'flux-system-main-flux-system',
    );
    expect(fluxAccessKeyLabel({ ...base, path: '.' })).toBe(
      'flux-system-main-flux-system',
    );
    expect(
      fluxAccessKeyLabel({
        namespace: 'apps',
        branch: 'release/1.0',
        secretName: 'git',
        path: 'c/x',
      }),
    ).toBe('apps-release/1.0-git-./c/x');
  });

  it('refuses a path leaving the repository, naming the field', () => {
    expect(() => fluxLabelPath('../other')).toThrow(InputValidationError);
    expect(() => fluxLabelPath('clusters/../../x')).toThrow(
      expect.objectContaining({ field: 'path' }),
    );
  });
});

describe('accessKeyRequest', () => {
  it('builds "<type> <b64> <label>" from the trimmed key (no newline before the label)', () => {
    const req = accessKeyRequest(
      `${PUB}\n`,
      'flux-system-main-flux-system-./clusters/a',
      false,
    );
    expect(req).toEqual({
      text: `${PUB} flux-system-main-flux-system-./clusters/a`,
      label: 'flux-system-main-flux-system-./clusters/a',
      permission: 'REPO_READ',
    });
    expect(req.text).not.toContain('\n');
    expect(accessKeyRequest(PUB, 'x-y', true).permission).toBe('REPO_WRITE');
  });

  it('drops a comment the public key carried', () => {
    expect(accessKeyRequest(`${PUB} someone@laptop`, 'lbl', false).text).toBe(
      `${PUB} lbl`,
    );
  });
});
