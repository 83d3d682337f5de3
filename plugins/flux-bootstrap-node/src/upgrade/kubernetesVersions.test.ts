import { ConfigReader } from '@backstage/config';
import {
  getSharedKubeApiserver,
  startFaultProxy,
} from '@flux-bootstrap/test-peers';
import { createKubeClient } from '../kube/client';
import {
  checkKubernetesVersion,
  judgeKubernetesVersion,
  readKubernetesVersionsConfig,
} from './kubernetesVersions';

describe('judgeKubernetesVersion', () => {
  it('refuses below the flux check --pre constraint, warns outside the release matrix, accepts inside', () => {
    expect(judgeKubernetesVersion('v1.20.2', 'v2.9.4')).toEqual({
      level: 'unsupported',
      range: '>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
      message:
        'Kubernetes v1.20.2 with Flux v2.9.4: not supported, Flux needs >=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
    });
    expect(judgeKubernetesVersion('v1.32.9', 'v2.9.0').level).toBe(
      'unsupported',
    );
    expect(judgeKubernetesVersion('v1.33.1', 'v2.9.4')).toEqual(
      expect.objectContaining({
        level: 'untested',
        message: expect.stringContaining(
          "accepted by flux check --pre but not in the release's support matrix",
        ),
      }),
    );
    expect(judgeKubernetesVersion('v1.34.2', 'v2.9.4').level).toBe('supported');
    // Newer than the matrix: flux check --pre has no upper bound, the matrix does not list it.
    expect(judgeKubernetesVersion('v1.37.0', 'v2.9.4').level).toBe('untested');
    expect(judgeKubernetesVersion('v1.30.4', 'v2.5.1').level).toBe('supported');
    expect(judgeKubernetesVersion('v1.29.9', 'v2.5.1').level).toBe(
      'unsupported',
    );
  });

  it('reads the version strings of distributions like flux (pre-release and build metadata)', () => {
    expect(judgeKubernetesVersion('v1.34.2-eks-1552ad0', 'v2.9.4').level).toBe(
      'supported',
    );
    expect(judgeKubernetesVersion('v1.35.1+k3s1', 'v2.9.4').level).toBe(
      'supported',
    );
    expect(judgeKubernetesVersion('v1.33.0-gke.1055000', 'v2.9.4').level).toBe(
      'untested',
    ); // >=1.33.0-0 admits 1.33.0 pre-releases, as flux check does
    expect(judgeKubernetesVersion('v1.32.9-gke.100', 'v2.9.4').level).toBe(
      'unsupported',
    );
  });

  it('uses the newest row for a newer Flux minor and does not check an older one', () => {
    expect(judgeKubernetesVersion('v1.20.2', 'v2.10.0')).toEqual(
      expect.objectContaining({
        level: 'unsupported',
        range: '>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)',
      }),
    );
    expect(judgeKubernetesVersion('v1.20.2', 'v2.3.0')).toEqual(
      expect.objectContaining({
        level: 'untested',
        range: 'unknown',
        message:
          'No Kubernetes range is known for Flux v2.3.0; not checked (fluxBootstrap.kubernetesVersions can add one)',
      }),
    );
  });
});

describe('readKubernetesVersionsConfig', () => {
  it('is the built-in table without config, and replaces the rows of the minors it names', () => {
    const builtIn = readKubernetesVersionsConfig(new ConfigReader({}));
    expect(builtIn.map(r => r.flux)).toEqual([
      'v2.5',
      'v2.6',
      'v2.7',
      'v2.8',
      'v2.9',
    ]);
    expect(builtIn).toContainEqual({
      flux: 'v2.9',
      minimum: 'v1.33.0',
      supported: ['v1.34', 'v1.35', 'v1.36'],
    });
    const table = readKubernetesVersionsConfig(
      new ConfigReader({
        fluxBootstrap: {
          kubernetesVersions: [{ flux: 'v2.9', minimum: 'v1.20.0' }],
        },
      }),
    );
    expect(table).toHaveLength(5);
    expect(table).toContainEqual({
      flux: 'v2.9',
      minimum: 'v1.20.0',
      supported: [],
    });
    expect(judgeKubernetesVersion('v1.20.2', 'v2.9.4', table)).toEqual(
      expect.objectContaining({ level: 'supported', range: '>=1.20.0' }),
    );
    // v2.10 is newer than every row: it gets the (overridden) v2.9 row.
    expect(judgeKubernetesVersion('v1.20.2', 'v2.10.0', table).level).toBe(
      'supported',
    );
    expect(judgeKubernetesVersion('v1.20.2', 'v2.8.0', table).level).toBe(
      'unsupported',
    );
  });

  it('names the entry of a value that is not a version', () => {
    expect(() =>
      readKubernetesVersionsConfig(
        new ConfigReader({
          fluxBootstrap: {
            kubernetesVersions: [
              { flux: 'v2.9', minimum: 'v1.20.0', supported: ['1.20'] },
              { flux: 'v2.10', minimum: 'latest' },
            ],
          },
        }),
      ),
    ).toThrow(
      'fluxBootstrap.kubernetesVersions[1]: "latest" is not a version like v1.33.0',
    );
  });
});

describe('checkKubernetesVersion on the real apiserver (v1.20)', () => {
  const kube = getSharedKubeApiserver();

  it('refuses Flux v2.9.4 on v1.20 with the default table after one GET /version, and accepts it with an override', async () => {
    const proxy = await startFaultProxy({
      upstream: { url: kube.url, caPem: kube.caPem },
    });
    const client = await createKubeClient({
      name: 'old-cluster',
      url: proxy.url,
      caPem: proxy.caPem,
      token: kube.adminToken,
      skipTLSVerify: false,
      source: 'config',
    });
    try {
      const builtIn = readKubernetesVersionsConfig(new ConfigReader({}));
      const error = await checkKubernetesVersion(
        client,
        'v2.9.4',
        builtIn,
      ).catch(e => e);
      expect(error.name).toBe('InputError');
      expect(error.message).toMatch(
        /^Kubernetes v1\.20\.\d+ with Flux v2\.9\.4: not supported, Flux needs >=1\.33\.0 \(Flux v2\.9 is tested with 1\.34, 1\.35, 1\.36\), on cluster "old-cluster"; nothing was changed\./,
      );
      expect(proxy.requests().map(r => `${r.method} ${r.path}`)).toEqual([
        'GET /version',
      ]);

      const warnings: string[] = [];
      const logger = {
        error() {},
        debug() {},
        info() {},
        warn: (m: string) => warnings.push(m),
      };
      const verdict = await checkKubernetesVersion(
        client,
        'v2.9.4',
        [{ flux: 'v2.9', minimum: 'v1.20.0', supported: ['v1.21', 'v1.22'] }],
        { logger },
      );
      expect(verdict.level).toBe('untested');
      expect(warnings).toEqual([
        expect.stringMatching(
          /^Kubernetes v1\.20\.\d+ with Flux v2\.9\.4: accepted by flux check --pre but not in the release's support matrix; supported >=1\.20\.0 \(Flux v2\.9 is tested with 1\.21, 1\.22\) \(cluster "old-cluster"\)$/,
        ),
      ]);
    } finally {
      client.close();
      await proxy.stop();
    }
  });
});
