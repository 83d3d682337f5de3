import { InputValidationError } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  checkRevision,
  fluxComponentOptionsInput,
  fluxVersion,
  formatGoDuration,
  goDuration,
  parseGoDuration,
  refineComponents,
  syncUrl,
} from './fluxOptions';
import { actionInput } from './io';

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

const version = actionInput(z => z.object({ fluxVersion: fluxVersion(z) }));
const options = actionInput(z =>
  z.object(fluxComponentOptionsInput(z)).superRefine(refineComponents),
);
const misc = actionInput(z =>
  z.object({
    syncUrl: syncUrl(z).optional(),
    interval: goDuration(z, '1m').transform(formatGoDuration).optional(),
    timeout: goDuration(z, '5m').optional(),
  }),
);

describe('the Flux options of flux:push-manifests and flux:install', () => {
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
      options.parse({ componentsExtra: ['source-watcher'] }),
    ).toMatchObject({
      components: [
        'source-controller',
        'kustomize-controller',
        'helm-controller',
        'notification-controller',
      ],
      componentsExtra: ['source-watcher'],
    });
    const field = (input: object) => fieldOf(() => options.parse(input));
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
    expect(() => options.parse({ components: ['source-controller'] })).toThrow(
      'component kustomize-controller is required',
    );
    expect(field({ componentsExtra: ['kustomize-controller'] })).toBe(
      'componentsExtra',
    );
  });

  it('checks registry, taint keys and sync URLs', () => {
    expect(
      options.parse({ registry: 'registry.local:5000/a/b' }).registry,
    ).toBe('registry.local:5000/a/b');
    for (const bad of [
      'https://ghcr.io/fluxcd',
      'ghcr.io/fluxcd:v1',
      'a b',
      'ghcr.io/Flux',
      'x\ny',
    ]) {
      expect(fieldOf(() => options.parse({ registry: bad }))).toBe('registry');
    }
    expect(
      options.parse({
        tolerationKeys: ['node-role.kubernetes.io/infra', 'dedicated'],
      }).tolerationKeys,
    ).toHaveLength(2);
    for (const bad of [['a b'], ['x\n- key: evil']]) {
      expect(fieldOf(() => options.parse({ tolerationKeys: bad }))).toBe(
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

  it('checks a revision against the synced branch', () => {
    const sha = 'a'.repeat(40);
    expect(checkRevision(`main@sha1:${sha}`, 'main')).toEqual({
      revision: `main@sha1:${sha}`,
    });
    expect(checkRevision(`refs/heads/main@sha1:${sha}`, 'main')).toEqual({
      revision: `main@sha1:${sha}`,
    });
    expect(checkRevision(`sha1:${sha}`, 'main')).toEqual({
      revision: `main@sha1:${sha}`,
    });
    expect(checkRevision('main@sha1:', 'main')).toEqual({
      revision: 'main@sha1:',
    });
    expect(checkRevision(`develop@sha1:${sha}`, 'main')).toEqual({
      problem:
        'is a revision of branch "develop", but Flux is set to sync branch "main"',
    });
    expect(checkRevision('main@abc', 'main')).toEqual({
      problem:
        'must be <branch>@sha1:<commit sha> as flux:push-manifests outputs it (got "main@abc")',
    });
  });
});
