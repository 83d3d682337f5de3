import { InputValidationError } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { actionInput } from './actionInput';
import { fluxComponentOptionsInput, refineComponents } from './fluxOptions';
import {
  branchName,
  clusterPath,
  fluxVersion,
  formatGoDuration,
  goDuration,
  parseGoDuration,
  registry,
  syncUrl,
  taintKey,
} from './refinements';

/** The field a parse failed on (undefined when it parsed). */
function fieldOf(parse: () => unknown): string | undefined {
  try {
    parse();
  } catch (e) {
    if (e instanceof InputValidationError) return e.field;
    throw e;
  }
  return undefined;
}

const path = actionInput(z => z.object({ path: clusterPath(z) }));
const branch = actionInput(z => z.object({ branch: branchName(z) }));
const version = actionInput(z => z.object({ fluxVersion: fluxVersion(z) }));
const components = actionInput(z =>
  z.object(fluxComponentOptionsInput(z)).superRefine(refineComponents),
);
const misc = actionInput(z =>
  z.object({
    registry: registry(z).optional(),
    tolerationKeys: z.array(taintKey(z)).optional(),
    syncUrl: syncUrl(z).optional(),
    interval: goDuration(z, '1m').transform(formatGoDuration).optional(),
    timeout: goDuration(z, '5m').optional(),
  }),
);

describe('the domain rules of the action inputs', () => {
  it('normalises clean relative paths', () => {
    const p = (v: string) => path.parse({ path: v }).path;
    expect(p('clusters/prod')).toBe('clusters/prod');
    expect(p('./clusters/prod/')).toBe('clusters/prod');
    expect(p('.')).toBe('');
    expect(p('./')).toBe('');
    expect(p('a/b.c/d_e-f@1')).toBe('a/b.c/d_e-f@1');
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
    'clusters/x\n',
    'a\u0000b',
    '.git/hooks',
    'x/.GIT',
    'a b',
    '',
    'a:b',
    'a/$(id)',
  ])('rejects the path %j', p => {
    expect(fieldOf(() => path.parse({ path: p }))).toBe('path');
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
      expect(branch.parse({ branch: ok }).branch).toBe(ok);
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
      expect(fieldOf(() => branch.parse({ branch: bad }))).toBe('branch');
    }
    expect(() => branch.parse({ branch: 'a..b' })).toThrow(
      'Invalid input "branch": is not a valid git branch name: it contains ".."',
    );
  });

  it('accepts only v<semver> of Flux 2', () => {
    expect(version.parse({ fluxVersion: 'v2.10.0-rc.1' }).fluxVersion).toBe(
      'v2.10.0-rc.1',
    );
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
      expect(fieldOf(() => version.parse({ fluxVersion: bad }))).toBe(
        'fluxVersion',
      );
    }
  });

  it('checks components, naming the field', () => {
    expect(
      components.parse({ componentsExtra: ['source-watcher'] }),
    ).toMatchObject({
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ],
      componentsExtra: ['source-watcher'],
    });
    const field = (input: object) => fieldOf(() => components.parse(input));
    expect(
      field({
        components: [
          'source-controller',
          'kustomize-controller',
          'tf-controller',
        ],
      }),
    ).toBe('components');
    expect(field({ componentsExtra: ['weave-gitops'] })).toBe(
      'componentsExtra',
    );
    expect(() =>
      components.parse({ components: ['source-controller'] }),
    ).toThrow('component kustomize-controller is required');
    expect(field({ componentsExtra: ['kustomize-controller'] })).toBe(
      'componentsExtra',
    );
  });

  it('checks registry, taint keys and sync URLs', () => {
    expect(misc.parse({ registry: 'registry.local:5000/a/b' }).registry).toBe(
      'registry.local:5000/a/b',
    );
    expect(misc.parse({ registry: '' }).registry).toBe('');
    for (const bad of [
      'https://ghcr.io/fluxcd',
      'ghcr.io/fluxcd:v1',
      'a b',
      'ghcr.io/Flux',
      'x\ny',
    ]) {
      expect(fieldOf(() => misc.parse({ registry: bad }))).toBe('registry');
    }
    expect(
      misc.parse({
        tolerationKeys: ['node-role.kubernetes.io/infra', 'dedicated'],
      }).tolerationKeys,
    ).toHaveLength(2);
    for (const bad of [['a b'], ['x\n- key: evil']]) {
      expect(fieldOf(() => misc.parse({ tolerationKeys: bad }))).toBe(
        'tolerationKeys',
      );
    }
    for (const ok of ['ssh://git@bb:7999/P/r.git', 'https://bb/scm/P/r.git']) {
      expect(misc.parse({ syncUrl: ok }).syncUrl).toBe(ok);
    }
    for (const bad of [
      'ftp://x/y',
      'https://u:p@bb/x',
      'https://user@bb/x',
      'ssh://-oProxyCommand=x/y',
      'https://bb/x\n',
      'not a url',
    ]) {
      expect(fieldOf(() => misc.parse({ syncUrl: bad }))).toBe('syncUrl');
    }
  });

  it('formats intervals like Go and parses timeouts into milliseconds, 10s to 24h', () => {
    const interval = (v: string) => misc.parse({ interval: v }).interval;
    expect(interval('1m')).toBe('1m0s');
    expect(interval('90s')).toBe('1m30s');
    expect(interval('1h')).toBe('1h0m0s');
    expect(interval('2m30s')).toBe('2m30s');
    expect(formatGoDuration(parseGoDuration('10m')!)).toBe('10m0s');
    expect(fieldOf(() => interval('5s'))).toBe('interval');
    expect(fieldOf(() => interval('1 minute'))).toBe('interval');
    expect(misc.parse({ timeout: '1h30m' }).timeout).toBe(5_400_000);
    expect(() => misc.parse({ timeout: '25h' })).toThrow(
      'Invalid input "timeout": must be between 10s and 24h',
    );
    expect(() => misc.parse({ timeout: 'soon' })).toThrow(
      'Invalid input "timeout": must be a duration such as 5m',
    );
  });

  it('says what a value of the wrong type should be', () => {
    const flags = actionInput(z =>
      z.object({ wait: z.boolean().default(true), list: z.array(z.string()) }),
    );
    expect(() => flags.parse({ wait: 'yes', list: [] })).toThrow(
      'Invalid input "wait": must be true or false',
    );
    expect(() => flags.parse({ list: 'a' })).toThrow(
      'Invalid input "list": must be a list',
    );
    expect(() => flags.parse({})).toThrow('Invalid input "list": is required');
    expect(flags.parse({ list: [] })).toEqual({ wait: true, list: [] });
  });
});
