import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { buildFluxUpgradeBundles, FluxBundle } from './bundle';

export interface BundleRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  status: number;
}

export interface BundleFault {
  /** matched against the request path, e.g. `/v2.9.4/manifests.tar.gz` (default: every path) */
  path?: string | RegExp;
  /** respond with this status (default 500) */
  status?: number;
  /** wait before responding (or before dropping) */
  delayMs?: number;
  /** destroy the connection without a response */
  drop?: boolean;
  /** send only the first half of the body, then destroy the connection */
  truncate?: boolean;
  /** how many requests it applies to (default 1) */
  times?: number;
}

export interface FluxBundleServer {
  /** `http://127.0.0.1:PORT` — bundles are at `<baseUrl>/<version>/manifests.tar.gz` */
  baseUrl: string;
  /** `<baseUrl>/<version>/manifests.tar.gz` */
  urlFor(version: string): string;
  /** every request in order (method, path, headers, status) */
  requests(): BundleRequest[];
  clearRequests(): void;
  injectFault(f: BundleFault): void;
  clearFaults(): void;
  /** adds or replaces a bundle while serving */
  add(bundle: { version: string; tarball: Buffer; sha256?: string }): void;
  stop(): Promise<void>;
}

/** One file an asset server answers with. */
export interface Asset {
  body: Buffer | string;
  contentType: string;
  /** `content-disposition: attachment; filename=…` when set */
  filename?: string;
}

/** The request log and fault injection every fixture server here shares. */
export interface AssetServer {
  baseUrl: string;
  requests(): BundleRequest[];
  clearRequests(): void;
  injectFault(f: BundleFault): void;
  clearFaults(): void;
  stop(): Promise<void>;
}

/**
 * Serves what `lookup(path)` returns on 127.0.0.1 (404 when undefined, 405 for methods other than
 * GET/HEAD), logging every request and applying injected faults first.
 */
export async function serveAssets(
  lookup: (path: string) => Asset | undefined,
): Promise<AssetServer> {
  const log: BundleRequest[] = [];
  let faults: (BundleFault & { left: number })[] = [];
  const sockets = new Set<Socket>();

  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const entry: BundleRequest = {
      method: req.method ?? 'GET',
      path,
      headers: Object.fromEntries(
        Object.entries(req.headers).map(([k, v]) => [k, String(v)]),
      ),
      status: 0,
    };
    log.push(entry);
    const fault = faults.find(
      f =>
        f.left > 0 &&
        (f.path === undefined ||
          (typeof f.path === 'string' ? f.path === path : f.path.test(path))),
    );
    if (fault) {
      fault.left--;
      faults = faults.filter(f => f.left > 0);
      if (fault.delayMs) await new Promise(r => setTimeout(r, fault.delayMs));
      if (fault.drop) {
        entry.status = -1;
        req.socket.destroy();
        return;
      }
      if (!fault.truncate) {
        entry.status = fault.status ?? 500;
        res
          .writeHead(entry.status, { 'content-type': 'text/plain' })
          .end('injected fault\n');
        return;
      }
    }
    const asset = lookup(path);
    if (!asset || (req.method !== 'GET' && req.method !== 'HEAD')) {
      entry.status = asset ? 405 : 404;
      res
        .writeHead(entry.status, { 'content-type': 'text/plain' })
        .end(entry.status === 404 ? 'Not Found\n' : 'Method Not Allowed\n');
      return;
    }
    const body = Buffer.isBuffer(asset.body)
      ? asset.body
      : Buffer.from(asset.body, 'utf8');
    entry.status = 200;
    res.writeHead(200, {
      'content-type': asset.contentType,
      'content-length': body.length,
      ...(asset.filename
        ? { 'content-disposition': `attachment; filename=${asset.filename}` }
        : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
    } else if (fault?.truncate) {
      res.write(body.subarray(0, Math.floor(body.length / 2)), () =>
        req.socket.destroy(),
      );
    } else {
      res.end(body);
    }
  });
  server.on('connection', s => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    baseUrl,
    requests: () => log.map(r => ({ ...r, headers: { ...r.headers } })),
    clearRequests: () => {
      log.length = 0;
    },
    injectFault: f => {
      faults.push({ ...f, left: f.times ?? 1 });
    },
    clearFaults: () => {
      faults = [];
    },
    stop: () =>
      new Promise<void>(resolve => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * Serves Flux release bundles on 127.0.0.1 the way the flux2 release page does:
 * `GET <baseUrl>/<version>/manifests.tar.gz` → application/gzip (404 for unknown versions), plus
 * `<baseUrl>/<version>/checksums.txt` (`<sha256>  manifests.tar.gz`). Every request is logged so
 * tests can assert caching ("downloaded once") and that nothing was fetched after bad input.
 */
export async function serveFluxBundles(
  bundles: { version: string; tarball: Buffer; sha256?: string }[],
): Promise<FluxBundleServer> {
  const byVersion = new Map<string, { tarball: Buffer; sha256?: string }>();
  const add = (b: { version: string; tarball: Buffer; sha256?: string }) =>
    byVersion.set(b.version, { tarball: b.tarball, sha256: b.sha256 });
  bundles.forEach(add);
  const server = await serveAssets(path => {
    const m = /^\/([^/]+)\/(manifests\.tar\.gz|checksums\.txt)$/.exec(path);
    const bundle = m ? byVersion.get(decodeURIComponent(m[1])) : undefined;
    if (!m || !bundle) return undefined;
    if (m[2] === 'checksums.txt') {
      const sha =
        bundle.sha256 ??
        crypto.createHash('sha256').update(bundle.tarball).digest('hex');
      return {
        body: `${sha}  manifests.tar.gz\n`,
        contentType: 'text/plain',
      };
    }
    return {
      body: bundle.tarball,
      contentType: 'application/gzip',
      filename: 'manifests.tar.gz',
    };
  });
  return {
    ...server,
    urlFor: version =>
      `${server.baseUrl}/${encodeURIComponent(version)}/manifests.tar.gz`,
    add,
  };
}

/**
 * Builds the two upgrade bundles (`FLUX_UPGRADE_VERSIONS`: v2.9.4 → v2.10.0) and serves both.
 * `stop()` stops the server.
 */
export async function serveFluxUpgradeBundles(): Promise<{
  server: FluxBundleServer;
  from: FluxBundle;
  to: FluxBundle;
  stop(): Promise<void>;
}> {
  const { from, to } = await buildFluxUpgradeBundles();
  const server = await serveFluxBundles([from, to]);
  return { server, from, to, stop: () => server.stop() };
}
