import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

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
  const log: BundleRequest[] = [];
  let faults: (BundleFault & { left: number })[] = [];
  const sockets = new Set<Socket>();
  const add = (b: { version: string; tarball: Buffer; sha256?: string }) =>
    byVersion.set(b.version, { tarball: b.tarball, sha256: b.sha256 });
  bundles.forEach(add);

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
    const m = /^\/([^/]+)\/(manifests\.tar\.gz|checksums\.txt)$/.exec(path);
    const bundle = m ? byVersion.get(decodeURIComponent(m[1])) : undefined;
    if (!m || !bundle || (req.method !== 'GET' && req.method !== 'HEAD')) {
      entry.status = m && bundle ? 405 : 404;
      res
        .writeHead(entry.status, { 'content-type': 'text/plain' })
        .end(entry.status === 404 ? 'Not Found\n' : 'Method Not Allowed\n');
      return;
    }
    if (m[2] === 'checksums.txt') {
      const sha =
        bundle.sha256 ??
        crypto.createHash('sha256').update(bundle.tarball).digest('hex');
      entry.status = 200;
      res
        .writeHead(200, { 'content-type': 'text/plain' })
        .end(`${sha}  manifests.tar.gz\n`);
      return;
    }
    entry.status = 200;
    res.writeHead(200, {
      'content-type': 'application/gzip',
      'content-length': bundle.tarball.length,
      'content-disposition': 'attachment; filename=manifests.tar.gz',
    });
    if (req.method === 'HEAD') {
      res.end();
    } else if (fault?.truncate) {
      res.write(
        bundle.tarball.subarray(0, Math.floor(bundle.tarball.length / 2)),
        () => req.socket.destroy(),
      );
    } else {
      res.end(bundle.tarball);
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
    urlFor: version =>
      `${baseUrl}/${encodeURIComponent(version)}/manifests.tar.gz`,
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
    add,
    stop: () =>
      new Promise<void>(resolve => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
