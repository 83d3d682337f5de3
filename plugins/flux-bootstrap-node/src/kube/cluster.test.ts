import { getSharedKubeApiserver } from '@flux-bootstrap/test-peers';
import { ConfigReader } from '@backstage/config';
import { readFluxBootstrapSettings } from '../config';
import { InputValidationError } from '../util';
import { createKubeClient } from './client';
import { isKubeconfigConnection, resolveCluster } from './cluster';

const kube = getSharedKubeApiserver();

function config(extra: Record<string, unknown> = {}) {
  return readFluxBootstrapSettings(
    new ConfigReader({
      kubernetes: {
        serviceLocatorMethod: { type: 'multiTenant' },
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [
              {
                name: 'prod-eu',
                url: `${kube.url}/`,
                authProvider: 'serviceAccount',
                serviceAccountToken: kube.adminToken,
                caData: Buffer.from(kube.caPem).toString('base64'),
              },
              {
                name: 'staging',
                url: 'https://staging.example:6443',
                skipTLSVerify: true,
              },
            ],
          },
        ],
      },
      ...extra,
    }),
  );
}

describe('resolveCluster', () => {
  const savedKubeconfig = process.env.KUBECONFIG;
  beforeEach(() => {
    process.env.KUBECONFIG = kube.kubeconfigPath;
  });
  afterAll(() => {
    if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = savedKubeconfig;
  });

  it('resolves a config-located cluster and connects with its token and CA', async () => {
    const conn = resolveCluster(await config(), 'prod-eu');
    expect(conn).toEqual(
      expect.objectContaining({
        name: 'prod-eu',
        url: kube.url,
        source: 'config',
        skipTLSVerify: false,
      }),
    );
    expect(conn.caPem?.trim()).toBe(kube.caPem.trim());
    const client = await createKubeClient(conn);
    try {
      expect((await client.version()).gitVersion).toMatch(/^v1\./);
    } finally {
      client.close();
    }
  });

  it('names the field and lists the configured clusters for an unknown name', async () => {
    const settings = await config();
    let err: unknown;
    try {
      resolveCluster(settings, 'nope', 'targetCluster');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputValidationError);
    expect((err as InputValidationError).field).toBe('targetCluster');
    expect((err as Error).message).toContain('unknown cluster "nope"');
    expect((err as Error).message).toContain('"prod-eu", "staging"');
    // kubeconfig contexts are not offered (nor read) unless allowed
    expect((err as Error).message).not.toContain('flux-test');
    expect(() => resolveCluster(settings, 'flux-test')).toThrow(
      InputValidationError,
    );
  });

  it('requires a name', async () => {
    const settings = await config();
    expect(() => resolveCluster(settings, '  ')).toThrow(
      /Invalid input "cluster": is required/,
    );
  });

  it('resolves a kubeconfig context only when fluxBootstrap.allowKubeconfigContexts is true', async () => {
    const cfg = await config({
      fluxBootstrap: { allowKubeconfigContexts: true },
    });
    const conn = resolveCluster(cfg, 'flux-test');
    expect(isKubeconfigConnection(conn)).toBe(true);
    expect(conn.url).toBe(kube.url);
    const client = await createKubeClient(conn);
    try {
      expect(
        await client.get({
          apiVersion: 'v1',
          kind: 'Namespace',
          name: 'default',
        }),
      ).toEqual(expect.objectContaining({ kind: 'Namespace' }));
    } finally {
      client.close();
    }
    // config clusters still win, unknown names list both sources
    expect(resolveCluster(cfg, 'prod-eu').source).toBe('config');
    expect(() => resolveCluster(cfg, 'nope')).toThrow(
      /kubeconfig contexts: "flux-test"/,
    );
  });
});
