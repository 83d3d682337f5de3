import { InputValidationError } from '../util/errors';
import {
  formatGoDuration,
  normalizeRepoPath,
  parseGoDuration,
  validateBranch,
  validateComponents,
  validateFluxVersion,
  validateInterval,
  validateRegistry,
  validateSyncUrl,
  validateTolerationKeys,
} from './validation';

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof InputValidationError) return e.field;
    throw e;
  }
  return undefined;
}

describe('input validation', () => {
  it('normalises clean relative paths', () => {
    expect(normalizeRepoPath('clusters/prod')).toBe('clusters/prod');
    expect(normalizeRepoPath('./clusters/prod/')).toBe('clusters/prod');
    expect(normalizeRepoPath('.')).toBe('');
    expect(normalizeRepoPath('./')).toBe('');
    expect(normalizeRepoPath('a/b.c/d_e-f@1')).toBe('a/b.c/d_e-f@1');
  });

  it.each([
    '../x',
    'clusters/../../etc',
    '/etc/passwd',
    'C:/x',
    '~/x',
    'a//b',
    'a/./b',
    'a\\b',
    '%2e%2e/x',
    'clusters/%2F',
    'a\nb',
    'a\u0000b',
    '.git/hooks',
    'x/.GIT',
    'a b',
    '',
    'a:b',
    'a/$(id)',
  ])('rejects the path %j', p => {
    expect(fieldOf(() => normalizeRepoPath(p))).toBe('path');
  });

  it('accepts git branch names and rejects what git check-ref-format rejects', () => {
    for (const ok of [
      'main',
      'release/v1',
      'feature/#1',
      'a.b',
      'a-b_c',
      'x@y',
    ]) {
      expect(validateBranch(ok)).toBe(ok);
    }
    for (const bad of [
      '',
      'a..b',
      '.hidden',
      'a/.x',
      'x.lock',
      'a/b.lock/c',
      'a b',
      'a~1',
      'a^1',
      'a:b',
      'a?',
      'a*',
      'a[1',
      'a\\b',
      '/a',
      'a/',
      'a//b',
      'a.',
      '@',
      'a@{1}',
      '-delete',
      'HEAD',
      'refs/heads/main',
      'main\n',
      'main\r\nkind: Secret',
      'a\u007f',
      'x'.repeat(201),
    ]) {
      expect(fieldOf(() => validateBranch(bad))).toBe('branch');
    }
  });

  it('accepts only v<semver> of Flux 2', () => {
    expect(validateFluxVersion('v2.9.4')).toBe('v2.9.4');
    expect(validateFluxVersion('v2.10.0-rc.1')).toBe('v2.10.0-rc.1');
    for (const bad of [
      '2.9.4',
      'v2.9',
      'latest',
      'v2.9.4/../x',
      'v2.9.4?x=1',
      'v2.9.4%2F',
      'v1.2.3',
      'v3.0.0',
      ' v2.9.4',
      'v2.9.4 ',
      'v02.9.4',
    ]) {
      expect(fieldOf(() => validateFluxVersion(bad))).toBe('fluxVersion');
    }
  });

  it('checks components, naming the field', () => {
    expect(
      validateComponents(
        ['source-controller', 'kustomize-controller'],
        ['source-watcher'],
      ),
    ).toEqual(['source-controller', 'kustomize-controller', 'source-watcher']);
    expect(
      fieldOf(() =>
        validateComponents(
          ['source-controller', 'kustomize-controller', 'tf-controller'],
          [],
        ),
      ),
    ).toBe('components');
    expect(
      fieldOf(() =>
        validateComponents(
          ['source-controller', 'kustomize-controller'],
          ['weave-gitops'],
        ),
      ),
    ).toBe('componentsExtra');
    expect(() => validateComponents(['source-controller'], [])).toThrow(
      'component kustomize-controller is required',
    );
    expect(
      fieldOf(() =>
        validateComponents(
          ['source-controller', 'kustomize-controller'],
          ['kustomize-controller'],
        ),
      ),
    ).toBe('componentsExtra');
  });

  it('checks registry, taint keys and sync URLs', () => {
    expect(validateRegistry('ghcr.io/fluxcd')).toBe('ghcr.io/fluxcd');
    expect(validateRegistry('registry.local:5000/a/b')).toBe(
      'registry.local:5000/a/b',
    );
    for (const bad of [
      'https://ghcr.io/fluxcd',
      'ghcr.io/fluxcd:v1',
      'a b',
      'ghcr.io/Flux',
      'x\ny',
    ]) {
      expect(fieldOf(() => validateRegistry(bad))).toBe('registry');
    }
    expect(
      validateTolerationKeys(['node-role.kubernetes.io/infra', 'dedicated']),
    ).toHaveLength(2);
    expect(fieldOf(() => validateTolerationKeys(['a b']))).toBe(
      'tolerationKeys',
    );
    expect(fieldOf(() => validateTolerationKeys(['x\n- key: evil']))).toBe(
      'tolerationKeys',
    );
    expect(validateSyncUrl('ssh://git@bb:7999/P/r.git')).toBe(
      'ssh://git@bb:7999/P/r.git',
    );
    expect(validateSyncUrl('https://bb/scm/P/r.git')).toBe(
      'https://bb/scm/P/r.git',
    );
    for (const bad of [
      'ftp://x/y',
      'https://u:p@bb/x',
      'https://user@bb/x',
      'ssh://-oProxyCommand=x/y',
      'https://bb/x\n',
      'not a url',
    ]) {
      expect(fieldOf(() => validateSyncUrl(bad))).toBe('syncUrl');
    }
  });

  it('formats intervals like Go', () => {
    expect(validateInterval('1m')).toBe('1m0s');
    expect(validateInterval('90s')).toBe('1m30s');
    expect(validateInterval('1h')).toBe('1h0m0s');
    expect(validateInterval('2m30s')).toBe('2m30s');
    expect(formatGoDuration(parseGoDuration('10m')!)).toBe('10m0s');
    expect(fieldOf(() => validateInterval('5s'))).toBe('interval');
    expect(fieldOf(() => validateInterval('1 minute'))).toBe('interval');
  });
});
