import { InputValidationError } from '../util/errors';
import {
  normalizeRepoPath,
  validateBranch,
  validateFluxVersion,
} from './validation';

// The actions' schemas check their inputs (scaffolder module, actions/shared/refinements.test.ts);
// these are the checks the engine keeps for its own boundaries and for callers with raw input.

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
});
