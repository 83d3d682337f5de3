import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildFluxOperatorRelease,
  serveFluxOperatorReleases,
  type FluxOperatorReleaseServer,
} from '@flux-bootstrap/test-peers';
import type { ManifestsSourceConfig } from '../manifests/releaseAsset';
import { loadFluxOperatorRelease } from './release';

const release = buildFluxOperatorRelease();
let server: FluxOperatorReleaseServer;
let dir: string;
beforeEach(async () => {
  server = await serveFluxOperatorReleases([release]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'operator-release-test-'));
});
afterEach(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const source = (
  over: Partial<ManifestsSourceConfig> = {},
): ManifestsSourceConfig => ({
  baseUrl: server.baseUrl,
  cacheDir: path.join(dir, 'cache'),
  sha256: {},
  defaultVersion: 'v0.58.1',
  downloadTimeoutMs: 10_000,
  ...over,
});
const gets = () => server.requests().map(r => `${r.path} ${r.status}`);

describe('loadFluxOperatorRelease', () => {
  it('downloads install.yaml once, checks the pinned sha256 on every use, and reads the operator objects', async () => {
    const pinned = source({ sha256: { 'v0.58.1': release.sha256 } });
    const first = await loadFluxOperatorRelease('v0.58.1', pinned);
    expect(first).toMatchObject({
      version: 'v0.58.1',
      namespace: 'flux-system',
      sha256: release.sha256,
      location: server.urlFor('v0.58.1'),
    });
    expect(first.objects.map(o => `${o.kind} ${o.metadata.name}`)).toEqual(
      expect.arrayContaining([
        'Namespace flux-system',
        'CustomResourceDefinition fluxinstances.fluxcd.controlplane.io',
        'CustomResourceDefinition fluxreports.fluxcd.controlplane.io',
        'Deployment flux-operator',
      ]),
    );
    const second = await loadFluxOperatorRelease('v0.58.1', pinned);
    expect(second.location).toBe(
      path.join(dir, 'cache', 'v0.58.1', 'install.yaml'),
    );
    expect(gets()).toEqual(['/v0.58.1/install.yaml 200']);

    // A cached copy that no longer matches is thrown away and downloaded again.
    fs.appendFileSync(second.location, '# tampered\n');
    const third = await loadFluxOperatorRelease('v0.58.1', pinned);
    expect(third.sha256).toBe(release.sha256);
    expect(gets()).toHaveLength(2);
  });

  it('refuses a download whose sha256 differs from the pinned one, and a file that is not the operator manifest', async () => {
    const wrong = 'a'.repeat(64);
    await expect(
      loadFluxOperatorRelease(
        'v0.58.1',
        source({ sha256: { 'v0.58.1': wrong } }),
      ),
    ).rejects.toThrow(
      `the Flux Operator v0.58.1 install.yaml from ${server.urlFor(
        'v0.58.1',
      )} has sha256 ${
        release.sha256
      }, but fluxBootstrap.operator.manifests.sha256 expects ${wrong}; refusing to use it`,
    );
    expect(fs.existsSync(path.join(dir, 'cache', 'v0.58.1'))).toBe(false);

    const local = path.join(dir, 'local');
    fs.mkdirSync(path.join(local, 'v0.58.1'), { recursive: true });
    fs.writeFileSync(
      path.join(local, 'v0.58.1', 'install.yaml'),
      'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: flux-system\n',
    );
    await expect(
      loadFluxOperatorRelease('v0.58.1', source({ localPath: local })),
    ).rejects.toThrow(
      /is not the operator's release manifest: no fluxinstances\.fluxcd\.controlplane\.io, fluxreports\.fluxcd\.controlplane\.io, Deployment flux-operator/,
    );
    await expect(
      loadFluxOperatorRelease('v0.59.0', source({ localPath: local })),
    ).rejects.toThrow(
      /the Flux Operator v0.59.0 install.yaml is not in fluxBootstrap.operator.manifests.localPath/,
    );
    await expect(loadFluxOperatorRelease('v9.9.9', source())).rejects.toThrow(
      `failed to download the Flux Operator v9.9.9 install.yaml from ${server.baseUrl}/v9.9.9/install.yaml: HTTP 404 (is the version released and the mirror complete?)`,
    );
  });

  it('reads a local folder without any request', async () => {
    const local = path.join(dir, 'local');
    fs.mkdirSync(path.join(local, 'v0.58.1'), { recursive: true });
    fs.writeFileSync(
      path.join(local, 'v0.58.1', 'install.yaml'),
      release.installYaml,
    );
    const r = await loadFluxOperatorRelease(
      'v0.58.1',
      source({ localPath: local, sha256: { 'v0.58.1': release.sha256 } }),
    );
    expect(r.objects).toHaveLength(release.objects.length);
    expect(gets()).toEqual([]);
  });
});
