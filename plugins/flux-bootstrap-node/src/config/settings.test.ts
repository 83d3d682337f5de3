import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigReader, type Config } from '@backstage/config';
import {
  fluxBootstrapSettings,
  readFluxBootstrapSettings,
  readManifestsConfig,
} from './settings';

type Data = ConstructorParameters<typeof ConfigReader>[0];

/** A root config whose data can change (like Backstage's watched app-config), counting reads. */
function changingConfig(initial: Data) {
  let reader = new ConfigReader(initial);
  const listeners: (() => void)[] = [];
  const reads: string[] = [];
  const config = new Proxy({} as Config, {
    get(_target, prop) {
      if (prop === 'subscribe') {
        return (onChange: () => void) => {
          listeners.push(onChange);
          return { unsubscribe() {} };
        };
      }
      const method = Reflect.get(reader, prop);
      if (typeof method !== 'function') return method;
      return (key?: string, ...rest: unknown[]) => {
        reads.push(`${String(prop)}(${key ?? ''})`);
        return method.call(reader, key, ...rest);
      };
    },
  });
  return {
    config,
    reads,
    change(data: Data) {
      reader = new ConfigReader(data);
      listeners.forEach(l => l());
    },
  };
}

const data = (caFile: string, token = 'tok-1'): Data => ({
  integrations: {
    bitbucketServer: [{ host: 'bb.example.com', token }],
  },
  fluxBootstrap: {
    bitbucketServer: [{ host: 'bb.example.com', caFile }],
    allowKubeconfigContexts: true,
  },
  kubernetes: {
    clusterLocatorMethods: [
      {
        type: 'config',
        clusters: [{ name: 'prod', url: 'https://prod.example:6443/' }],
      },
    ],
  },
  scaffolder: { requireScmUserCredentials: true },
});

describe('FluxBootstrapSettings', () => {
  let dir: string;
  let caFile: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'settings-test-'));
    caFile = path.join(dir, 'ca.pem');
    await fs.writeFile(caFile, '-----BEGIN CERTIFICATE-----\nfirst\n');
  });
  afterEach(() => fs.rm(dir, { recursive: true, force: true }));

  it('reads every part: ScmIntegrations defaults, our extras, clusters, manifests, status', async () => {
    const settings = await readFluxBootstrapSettings(
      new ConfigReader(data(caFile)),
    );
    expect(settings.bitbucketServer).toEqual([
      {
        host: 'bb.example.com',
        apiBaseUrl: 'https://bb.example.com/rest/api/1.0',
        baseUrl: 'https://bb.example.com',
        auth: { token: 'tok-1' },
        caPem: '-----BEGIN CERTIFICATE-----\nfirst\n',
        sshHost: 'bb.example.com:7999',
        requestTimeoutMs: 30_000,
        retries: 4,
        commitSigningKey: undefined,
      },
    ]);
    expect(settings.clusters.map(c => c.url)).toEqual([
      'https://prod.example:6443',
    ]);
    expect(settings.allowKubeconfigContexts).toBe(true);
    expect(settings.requireScmUserCredentials).toBe(true);
    expect(settings.manifests.defaultVersion).toBe('v2.9.4');
    expect(settings.status.clusterTimeoutMs).toBe(5_000);
  });

  it('reads fluxBootstrap.operator.manifests with its own defaults, errors naming its keys', async () => {
    const settings = await readFluxBootstrapSettings(
      new ConfigReader(data(caFile)),
    );
    expect(settings.operatorManifests).toMatchObject({
      baseUrl:
        'https://github.com/controlplaneio-fluxcd/flux-operator/releases/download',
      defaultVersion: 'v0.58.1',
      sha256: {},
    });
    expect(settings.operatorManifests.cacheDir).not.toBe(
      settings.manifests.cacheDir,
    );
    const sum = 'A'.repeat(64);
    const own = readManifestsConfig(
      new ConfigReader({
        fluxBootstrap: {
          operator: {
            manifests: {
              baseUrl: 'https://mirror.example/fo/',
              defaultVersion: 'v0.59.0',
              sha256: { 'v0.59.0': sum },
            },
          },
        },
      }),
      'fluxBootstrap.operator.manifests',
    );
    expect(own).toMatchObject({
      baseUrl: 'https://mirror.example/fo',
      defaultVersion: 'v0.59.0',
      sha256: { 'v0.59.0': sum.toLowerCase() },
    });
    expect(() =>
      readManifestsConfig(
        new ConfigReader({
          fluxBootstrap: {
            operator: { manifests: { defaultVersion: '0.58' } },
          },
        }),
        'fluxBootstrap.operator.manifests',
      ),
    ).toThrow(/fluxBootstrap\.operator\.manifests\.defaultVersion/);
  });

  it('reads the config (and a caFile) once, however often the settings are used', async () => {
    const { config, reads } = changingConfig(data(caFile));
    const source = fluxBootstrapSettings(config);
    const first = await source.get();
    const readsAtStart = reads.length;
    expect(readsAtStart).toBeGreaterThan(0);
    expect(
      reads.filter(r => r.includes('integrations.bitbucketServer')),
    ).toHaveLength(1);
    await fs.writeFile(caFile, '-----BEGIN CERTIFICATE-----\nsecond\n');
    for (let i = 0; i < 5; i++) expect(await source.get()).toBe(first);
    expect(reads).toHaveLength(readsAtStart);
    expect(first.bitbucketServer[0].caPem).toContain('first');
  });

  it('reads again when the config service reports a change, and keeps the last good settings when the new ones are invalid', async () => {
    const { config, change } = changingConfig(data(caFile));
    const source = fluxBootstrapSettings(config);
    const seen: string[] = [];
    source.subscribe(s =>
      seen.push((s.bitbucketServer[0].auth as { token: string }).token),
    );
    expect((await source.get()).bitbucketServer[0].auth).toEqual({
      token: 'tok-1',
    });
    change(data(caFile, 'tok-2'));
    await new Promise(r => setTimeout(r, 50));
    expect(seen).toEqual(['tok-2']);
    expect((await source.get()).bitbucketServer[0].auth).toEqual({
      token: 'tok-2',
    });
    change({ fluxBootstrap: { status: { cacheTtlSeconds: -1 } } });
    await new Promise(r => setTimeout(r, 50));
    expect(seen).toEqual(['tok-2']);
    expect((await source.get()).bitbucketServer[0].auth).toEqual({
      token: 'tok-2',
    });
  });

  it('reports an invalid configuration to whoever asks for the settings', async () => {
    const source = fluxBootstrapSettings(
      new ConfigReader({
        fluxBootstrap: { manifests: { baseUrl: 'ftp://x' } },
      }),
    );
    await expect(source.get()).rejects.toThrow(/http\(s\) URL/);
  });
});
