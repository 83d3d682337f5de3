import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { KubeApiserverInfo, KubeHttp } from './http';
import { writeApiserverPki } from './pki';
import {
  freePort,
  ManagedProcess,
  registerTempDir,
  removeTempDir,
  run,
  sleep,
  startProcess,
  sweepStaleTempDirs,
} from './process';

/** A private kube-apiserver + etcd, started by a test. */
export interface KubeApiserver extends KubeApiserverInfo {
  /** `v1.20.2` for the Debian build. */
  readonly version: string;
  /** The plain connection info (JSON-serialisable). */
  info(): KubeApiserverInfo;
  /** Stops the apiserver and etcd (by their PIDs) and removes every temp file. */
  stop(): Promise<void>;
  /**
   * Restarts the apiserver process with the same etcd data, port, certificates and tokens,
   * optionally staying down for `downtimeMs` in between; resolves when /readyz is ok again.
   * With `etcd: true` etcd is restarted too (same data dir and ports).
   */
  restart(opts?: { downtimeMs?: number; etcd?: boolean }): Promise<void>;
  /** Takes the apiserver down (etcd keeps running): requests fail with ECONNREFUSED until `startApiserver()`. */
  stopApiserver(): Promise<void>;
  /** Starts the apiserver again after `stopApiserver()`; resolves when /readyz is ok. */
  startApiserver(): Promise<void>;
  /** The last lines of the apiserver's log. */
  logs(lines?: number): string;
  /** PIDs of the running kube-apiserver and etcd processes. */
  pids(): { apiserver?: number; etcd?: number };
}

export interface StartKubeApiserverOptions {
  /** How long to wait for /readyz (default 90 s: the machine is shared). */
  readyTimeoutMs?: number;
  /** Extra kube-apiserver flags, e.g. `['--audit-log-path=…']`. */
  extraArgs?: string[];
}

const cacheRoot = () =>
  process.env.FLUX_BOOTSTRAP_CACHE ??
  path.join(
    process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'),
    'flux-bootstrap-test',
  );

const installScript = path.join(
  path.dirname(require.resolve('@flux-bootstrap/test-peers/package.json')),
  'scripts',
  'install-system-deps.sh',
);

/** Locates kube-apiserver and etcd: `KUBEBUILDER_ASSETS` (envtest convention), else the cached Debian build + Debian etcd. */
export function findKubeBinaries(): { apiserver: string; etcd: string } {
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (assets) {
    const apiserver = path.join(assets, 'kube-apiserver');
    const etcd = path.join(assets, 'etcd');
    for (const f of [apiserver, etcd]) {
      if (!isExecutable(f)) {
        throw new Error(
          `KUBEBUILDER_ASSETS=${assets} has no executable ${path.basename(
            f,
          )} (expected ${f}).`,
        );
      }
    }
    return { apiserver, etcd };
  }
  const apiserver = path.join(
    cacheRoot(),
    'kube-apiserver-v1.20.2',
    'kube-apiserver',
  );
  const etcd = ['/usr/bin/etcd', '/usr/local/bin/etcd'].find(isExecutable);
  const missing: string[] = [];
  if (!isExecutable(apiserver)) missing.push(`kube-apiserver (${apiserver})`);
  if (!etcd)
    missing.push('etcd (/usr/bin/etcd from the Debian package etcd-server)');
  if (missing.length) {
    throw new Error(
      `The Kubernetes test peer needs ${missing.join(' and ')}. ` +
        `Run ${installScript} as root (installs etcd-server and builds kube-apiserver v1.20.2 from Debian's source, ~3 min once), ` +
        'or set KUBEBUILDER_ASSETS to a folder containing kube-apiserver and etcd.',
    );
  }
  return { apiserver, etcd: etcd! };
}

/**
 * The kubectl the benchmarks compare with: `KUBECTL`, else `KUBEBUILDER_ASSETS/kubectl`, else the
 * one built with kube-apiserver from Debian's source (same release as the test apiserver), else
 * `kubectl` on the PATH.
 */
export function findKubectl(): string {
  const candidates = [
    process.env.KUBECTL,
    process.env.KUBEBUILDER_ASSETS &&
      path.join(process.env.KUBEBUILDER_ASSETS, 'kubectl'),
    path.join(cacheRoot(), 'kube-apiserver-v1.20.2', 'kubectl'),
  ];
  return candidates.find(f => f && isExecutable(f)) ?? 'kubectl';
}

function isExecutable(f: string): boolean {
  try {
    fs.accessSync(f, fs.constants.X_OK);
    return fs.statSync(f).isFile();
  } catch {
    return false;
  }
}

const versionCache = new Map<string, string>();
async function apiserverVersion(bin: string): Promise<string> {
  let v = versionCache.get(bin);
  if (!v) {
    const { stdout } = await run(bin, ['--version']);
    v = stdout.trim().split(/\s+/).pop() ?? 'unknown';
    versionCache.set(bin, v);
  }
  return v;
}

function minor(version: string): number {
  const m = /^v?1\.(\d+)/.exec(version);
  return m ? Number(m[1]) : 0;
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; proc: ManagedProcess },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (!opts.proc.isRunning()) {
      throw new Error(
        `${opts.proc.name} exited while waiting for ${what}:\n${opts.proc.tail(
          40,
        )}`,
      );
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${
          opts.timeoutMs
        } ms waiting for ${what}:\n${opts.proc.tail(40)}`,
      );
    }
    await sleep(150);
  }
}

function etcdHealthy(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/health', timeout: 2000 },
      res => {
        let body = '';
        res.on('data', d => (body += d));
        res.on('end', () =>
          resolve(res.statusCode === 200 && /"health"\s*:\s*"true"/.test(body)),
        );
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/**
 * Starts a real kube-apiserver + etcd on 127.0.0.1 (random free ports) and resolves once
 * `/readyz` is ok (≈4 s). Token auth (static admin token in group system:masters, plus
 * service-account tokens from TokenRequest), RBAC authorization, TLS with a CA-signed serving
 * certificate for 127.0.0.1. No controllers run: see the README of test/peers.
 */
export async function startKubeApiserver(
  opts: StartKubeApiserverOptions = {},
): Promise<KubeApiserver> {
  const bins = findKubeBinaries();
  const version = await apiserverVersion(bins.apiserver);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 90_000;

  sweepStaleTempDirs('flux-test-kube-');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'flux-test-kube-'));
  registerTempDir(dir);
  await fsp.chmod(dir, 0o700);
  let etcd: ManagedProcess | undefined;
  let apiserver: ManagedProcess | undefined;
  try {
    const pki = await writeApiserverPki(path.join(dir, 'pki'));
    const adminToken = crypto.randomBytes(24).toString('hex');
    const tokensCsv = path.join(dir, 'pki', 'tokens.csv');
    await fsp.writeFile(
      tokensCsv,
      `${adminToken},flux-test-admin,flux-test-admin-uid,"system:masters"\n`,
      {
        mode: 0o600,
      },
    );
    const caPem = await fsp.readFile(pki.caCrt, 'utf8');
    const etcdData = path.join(dir, 'etcd');
    const issuer = 'https://kubernetes.default.svc.cluster.local';

    let etcdPort = 0;
    let etcdPeerPort = 0;
    let port = 0;

    const startEtcd = async () => {
      etcd = startProcess(
        'etcd',
        bins.etcd,
        [
          '--name',
          'flux-test',
          '--data-dir',
          etcdData,
          '--listen-client-urls',
          `http://127.0.0.1:${etcdPort}`,
          '--advertise-client-urls',
          `http://127.0.0.1:${etcdPort}`,
          '--listen-peer-urls',
          `http://127.0.0.1:${etcdPeerPort}`,
          '--initial-advertise-peer-urls',
          `http://127.0.0.1:${etcdPeerPort}`,
          '--initial-cluster',
          `flux-test=http://127.0.0.1:${etcdPeerPort}`,
          '--log-level',
          'warn',
        ],
        { logFile: path.join(dir, 'etcd.log') },
      );
      await waitUntil(
        `etcd on 127.0.0.1:${etcdPort}`,
        () => etcdHealthy(etcdPort),
        {
          timeoutMs: 30_000,
          proc: etcd,
        },
      );
    };

    const startApiserver = async () => {
      const args = [
        `--etcd-servers=http://127.0.0.1:${etcdPort}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${port}`,
        '--advertise-address=127.0.0.1',
        '--endpoint-reconciler-type=none',
        `--tls-cert-file=${pki.serverCrt}`,
        `--tls-private-key-file=${pki.serverKey}`,
        `--client-ca-file=${pki.caCrt}`,
        `--token-auth-file=${tokensCsv}`,
        '--authorization-mode=RBAC',
        `--service-account-issuer=${issuer}`,
        `--api-audiences=${issuer}`,
        `--service-account-key-file=${pki.saPub}`,
        `--service-account-signing-key-file=${pki.saKey}`,
        '--service-cluster-ip-range=10.0.0.0/24',
        '--disable-admission-plugins=ServiceAccount',
        '--allow-privileged=true',
        '--profiling=false',
        `--cert-dir=${path.join(dir, 'pki')}`,
        ...(minor(version) < 24 ? ['--insecure-port=0'] : []),
        ...(opts.extraArgs ?? []),
      ];
      apiserver = startProcess('kube-apiserver', bins.apiserver, args, {
        logFile: path.join(dir, 'kube-apiserver.log'),
      });
      const url = `https://127.0.0.1:${port}`;
      const probe = new KubeHttp({ url, caPem, adminToken });
      try {
        await waitUntil(
          `kube-apiserver ${url}/readyz`,
          async () => {
            const res = await probe.request('GET', '/readyz', {
              timeoutMs: 3000,
            });
            return res.status === 200 && res.text.trim() === 'ok';
          },
          { timeoutMs: readyTimeoutMs, proc: apiserver },
        );
      } finally {
        probe.close();
      }
    };

    // Ports are picked free and then bound by the child: retry on the rare collision.
    for (let attempt = 1; ; attempt++) {
      etcdPort = await freePort();
      etcdPeerPort = await freePort();
      try {
        await startEtcd();
        break;
      } catch (e) {
        await etcd?.kill(500);
        await fsp.rm(etcdData, { recursive: true, force: true });
        if (attempt >= 3) throw e;
      }
    }
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      try {
        await startApiserver();
        break;
      } catch (e) {
        const inUse = /address already in use/.test(apiserver?.tail(40) ?? '');
        await apiserver?.kill(500);
        if (!inUse || attempt >= 3) throw e;
      }
    }

    const url = `https://127.0.0.1:${port}`;
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    await fsp.writeFile(
      kubeconfigPath,
      kubeconfigYaml({ url, caPem, token: adminToken }),
      { mode: 0o600 },
    );

    let stopped = false;
    const self: KubeApiserver = {
      url,
      caPem,
      adminToken,
      kubeconfigPath,
      caKeyFile: pki.caKey,
      version,
      info: () => ({
        url,
        caPem,
        adminToken,
        kubeconfigPath,
        caKeyFile: pki.caKey,
      }),
      logs: (lines = 60) => apiserver?.tail(lines) ?? '',
      pids: () => ({
        apiserver: apiserver?.isRunning() ? apiserver.child.pid : undefined,
        etcd: etcd?.isRunning() ? etcd.child.pid : undefined,
      }),
      async stopApiserver() {
        await apiserver?.kill(5000);
      },
      async startApiserver() {
        if (stopped) throw new Error('kube-apiserver was stopped for good');
        if (apiserver?.isRunning()) return;
        if (!etcd?.isRunning()) await startEtcd();
        await startApiserver();
      },
      async restart(r = {}) {
        await self.stopApiserver();
        if (r.etcd) {
          await etcd?.kill(5000);
        }
        if (r.downtimeMs) await sleep(r.downtimeMs);
        if (r.etcd) await startEtcd();
        await self.startApiserver();
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        // The data is thrown away, so no graceful shutdown is needed.
        await apiserver?.kill(1000);
        await etcd?.kill(1000);
        removeTempDir(dir);
      },
    };
    return self;
  } catch (e) {
    await apiserver?.kill(500);
    await etcd?.kill(500);
    removeTempDir(dir);
    throw e;
  }
}

/** A kubeconfig (JSON is valid YAML) with one cluster/user/context named `flux-test`. */
export function kubeconfigYaml(c: {
  url: string;
  caPem: string;
  token: string;
  name?: string;
  namespace?: string;
}): string {
  const name = c.name ?? 'flux-test';
  return `${JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name,
          cluster: {
            server: c.url,
            'certificate-authority-data': Buffer.from(c.caPem).toString(
              'base64',
            ),
          },
        },
      ],
      users: [{ name, user: { token: c.token } }],
      contexts: [
        {
          name,
          context: {
            cluster: name,
            user: name,
            ...(c.namespace ? { namespace: c.namespace } : {}),
          },
        },
      ],
      'current-context': name,
      preferences: {},
    },
    null,
    2,
  )}\n`;
}
