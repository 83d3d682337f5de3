import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  buildFluxBundle,
  serveFluxBundles,
  FluxBundleServer,
} from '@flux-bootstrap/test-peers';
import { ConfigReader } from '@backstage/config';
import {
  DEFAULT_FLUX_VERSION,
  FLUX_RELEASES_BASE_URL,
  readManifestsConfig,
} from '../config/settings';
import {
  BundleChecksumError,
  loadFluxBundle,
  readBundleTarball,
} from './bundle';
import { FluxBundleError, generateComponentsManifest } from './components';
import { resolveFluxManifestOptions } from './options';
import { InputValidationError } from '../util/errors';
import { silentLogger } from '../util/logger';

describe('Flux bundle source', () => {
  let server: FluxBundleServer;
  let v294: Awaited<ReturnType<typeof buildFluxBundle>>;
  let v293: Awaited<ReturnType<typeof buildFluxBundle>>;
  let tmp: string;

  beforeAll(async () => {
    v294 = await buildFluxBundle({ version: 'v2.9.4' });
    v293 = await buildFluxBundle({ version: 'v2.9.3' });
    server = await serveFluxBundles([v294, v293]);
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'bundle-test-'));
    server.clearRequests();
    server.clearFaults();
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const source = (extra: Record<string, unknown> = {}) =>
    readManifestsConfig(
      new ConfigReader({
        fluxBootstrap: {
          manifests: {
            baseUrl: server.baseUrl,
            cacheDir: path.join(tmp, 'cache'),
            ...extra,
          },
        },
      }),
    );

  it('defaults to the official release URL and the pinned version', () => {
    const s = readManifestsConfig(new ConfigReader({}));
    expect(s.baseUrl).toBe(FLUX_RELEASES_BASE_URL);
    expect(s.defaultVersion).toBe(DEFAULT_FLUX_VERSION);
    expect(DEFAULT_FLUX_VERSION).toBe('v2.9.4');
  });

  it('downloads from a mirror once, then uses the cache by version', async () => {
    const first = await loadFluxBundle('v2.9.4', source());
    expect(first.origin).toBe('download');
    expect(first.sha256).toBe(v294.sha256);
    expect(first.files).toEqual(v294.files);
    const second = await loadFluxBundle('v2.9.4', source());
    expect(second.origin).toBe('cache');
    const other = await loadFluxBundle('v2.9.3', source());
    expect(other.files['source-controller.yaml']).toBe(
      v293.files['source-controller.yaml'],
    );
    expect(server.requests().map(r => r.path)).toEqual([
      '/v2.9.4/manifests.tar.gz',
      '/v2.9.3/manifests.tar.gz',
    ]);
    expect(
      await fs.readFile(path.join(tmp, 'cache', 'v2.9.4', 'manifests.tar.gz')),
    ).toEqual(v294.tarball);
  });

  it('verifies a configured sha256 and refuses a bundle that does not match, caching nothing', async () => {
    const ok = await loadFluxBundle(
      'v2.9.4',
      source({ sha256: { 'v2.9.4': v294.sha256.toUpperCase() } }),
    );
    expect(ok.sha256).toBe(v294.sha256);

    const wrong = 'a'.repeat(64);
    const err = await loadFluxBundle(
      'v2.9.3',
      source({ sha256: { 'v2.9.3': wrong } }),
    ).catch(e => e);
    expect(err).toBeInstanceOf(BundleChecksumError);
    expect(err.message).toContain(`sha256 ${v293.sha256}`);
    expect(err.message).toContain(`expects ${wrong}`);
    expect(err.message).toContain('refusing to use it');
    await expect(
      fs.stat(path.join(tmp, 'cache', 'v2.9.3', 'manifests.tar.gz')),
    ).rejects.toThrow();
  });

  it('re-checks the cache against the sha256 and downloads again when the cached copy is not the one expected', async () => {
    await loadFluxBundle('v2.9.4', source());
    const cached = path.join(tmp, 'cache', 'v2.9.4', 'manifests.tar.gz');
    await fs.writeFile(cached, v293.tarball); // tampered cache
    const warnings: string[] = [];
    const logger = {
      info() {},
      debug() {},
      error() {},
      warn: (m: string) => warnings.push(m),
    };
    server.clearRequests();
    const b = await loadFluxBundle(
      'v2.9.4',
      source({ sha256: { 'v2.9.4': v294.sha256 } }),
      { logger },
    );
    expect(b.origin).toBe('download');
    expect(b.files).toEqual(v294.files);
    expect(warnings.join('\n')).toMatch(/does not match the configured sha256/);
    expect(server.requests()).toHaveLength(1);
  });

  it('reads a local folder: a tarball (sha256 checked) or extracted files', async () => {
    const local = path.join(tmp, 'local');
    await fs.mkdir(path.join(local, 'v2.9.4'), { recursive: true });
    await fs.writeFile(
      path.join(local, 'v2.9.4', 'manifests.tar.gz'),
      v294.tarball,
    );
    await fs.mkdir(path.join(local, 'v2.9.3'), { recursive: true });
    for (const [name, text] of Object.entries(v293.files)) {
      await fs.writeFile(path.join(local, 'v2.9.3', name), text);
    }
    const a = await loadFluxBundle(
      'v2.9.4',
      source({ localPath: local, sha256: { 'v2.9.4': v294.sha256 } }),
    );
    expect(a.origin).toBe('local');
    expect(a.files).toEqual(v294.files);
    const b = await loadFluxBundle('v2.9.3', source({ localPath: local }));
    expect(b.files).toEqual(v293.files);
    await expect(
      loadFluxBundle(
        'v2.9.3',
        source({ localPath: local, sha256: { 'v2.9.3': v293.sha256 } }),
      ),
    ).rejects.toThrow(/cannot be checked/);
    await expect(
      loadFluxBundle(
        'v2.9.4',
        source({ localPath: local, sha256: { 'v2.9.4': 'b'.repeat(64) } }),
      ),
    ).rejects.toBeInstanceOf(BundleChecksumError);
    await expect(
      loadFluxBundle('v2.8.0', source({ localPath: local })),
    ).rejects.toThrow(/no Flux v2.8.0 bundle/);
    expect(server.requests()).toHaveLength(0);
  });

  it('reports HTTP errors and truncated downloads clearly', async () => {
    await expect(loadFluxBundle('v2.7.0', source())).rejects.toThrow(
      /HTTP 404/,
    );
    // A download cut short is sent again (a GET is safe to repeat), and the retry is logged…
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (m: string) => warnings.push(m) };
    server.injectFault({ path: '/v2.9.4/manifests.tar.gz', truncate: true });
    server.clearRequests();
    const retried = await loadFluxBundle('v2.9.4', source(), { logger });
    expect(retried.origin).toBe('download');
    expect(server.requests()).toHaveLength(2);
    expect(warnings.join('\n')).toMatch(/retrying, retry 1 of 2 in \d+ ms/);
    // …up to a bound: cut short every time, it fails clearly and caches nothing.
    const cache = path.join(tmp, 'truncated-cache');
    server.injectFault({
      path: '/v2.9.4/manifests.tar.gz',
      truncate: true,
      times: 3,
    });
    await expect(
      loadFluxBundle('v2.9.4', source({ cacheDir: cache })),
    ).rejects.toThrow(FluxBundleError);
    await expect(fs.readdir(cache)).rejects.toThrow(/ENOENT/);
    // the next attempt succeeds
    expect(
      (await loadFluxBundle('v2.9.4', source({ cacheDir: cache }))).origin,
    ).toBe('download');
  });

  it('rejects a bad version before any request', async () => {
    for (const v of [
      '2.9.4',
      'v2.9',
      'v2.9.4/../../x',
      'latest',
      'v1.0.0',
      'v2.9.4\n',
    ]) {
      await expect(loadFluxBundle(v, source())).rejects.toBeInstanceOf(
        InputValidationError,
      );
    }
    expect(server.requests()).toHaveLength(0);
  });

  it('rejects an invalid configuration', () => {
    expect(() => source({ sha256: { 'v2.9.4': 'nothex' } })).toThrow(
      /64 hex digits/,
    );
    expect(() =>
      readManifestsConfig(
        new ConfigReader({
          fluxBootstrap: { manifests: { baseUrl: 'ftp://x' } },
        }),
      ),
    ).toThrow(/http\(s\)/);
    expect(() =>
      readManifestsConfig(
        new ConfigReader({
          fluxBootstrap: { manifests: { baseUrl: 'https://u:p@x' } },
        }),
      ),
    ).toThrow(/credentials/);
  });

  it('refuses archives that are not bundles', async () => {
    await expect(readBundleTarball(Buffer.from('not gzip'))).rejects.toThrow(
      FluxBundleError,
    );
  });

  it('generates components from the peers bundle (the fixture used by the end-to-end tests)', () => {
    const options = resolveFluxManifestOptions(
      {
        path: 'clusters/x',
        syncUrl: 'ssh://git@h:7999/P/r.git',
        componentsExtra: [
          'source-watcher',
          'image-automation-controller',
          'image-reflector-controller',
        ],
        namespace: 'flux-other',
      },
      { fluxVersion: 'v2.9.4' },
    );
    const out = generateComponentsManifest(v294.files, options.components);
    expect(out).toContain(
      '--storage-adv-addr=source-watcher.$(RUNTIME_NAMESPACE).svc.cluster.local.',
    );
    expect(out).toContain('name: crd-controller-flux-other');
    expect(out).not.toContain('flux-system');
  });
});
