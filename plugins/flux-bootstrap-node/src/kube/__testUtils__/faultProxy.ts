/**
 * Test helper (not exported from the package): a small HTTP proxy in front of a real
 * kube-apiserver that forwards every request unchanged, records it, and can answer chosen
 * requests itself — an HTTP error a given number of times, or never (to test aborts).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ProxyFault {
  method?: string;
  /** Matched against the path without the query string. */
  path: RegExp;
  /** Answer with this status and a Kubernetes Status body. */
  status?: number;
  /** Never answer (the connection stays open until the client gives up). */
  hang?: boolean;
  /** How many matching requests get the fault (default 1). */
  times?: number;
}

export interface ProxyRequestRecord {
  method: string;
  path: string;
  query: string;
  /** Status sent back to the client. */
  status: number;
  faulted: boolean;
  body?: string;
}

export interface FaultProxy {
  /** `https://127.0.0.1:PORT` — use it as the cluster url. */
  url: string;
  /** The proxy's self-signed serving certificate (SAN IP 127.0.0.1) — use it as the cluster CA. */
  caPem: string;
  inject(fault: ProxyFault): void;
  requests(): ProxyRequestRecord[];
  clearRequests(): void;
  stop(): Promise<void>;
}

export async function startFaultProxy(upstream: {
  url: string;
  caPem: string;
}): Promise<FaultProxy> {
  const faults: Array<ProxyFault & { left: number }> = [];
  const records: ProxyRequestRecord[] = [];
  const agent = new https.Agent({ keepAlive: true, ca: upstream.caPem });
  const target = new URL(upstream.url);
  const hanging = new Set<http.ServerResponse>();

  const tls = selfSignedCert();
  const server = https.createServer(
    { cert: tls.cert, key: tls.key },
    (req, res) => {
      const [reqPath, query = ''] = (req.url ?? '/').split('?');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const fault = faults.find(
          f =>
            f.left > 0 &&
            f.path.test(reqPath) &&
            (!f.method || f.method === req.method),
        );
        if (fault) {
          fault.left--;
          if (fault.hang) {
            records.push({
              method: req.method!,
              path: reqPath,
              query,
              status: 0,
              faulted: true,
            });
            hanging.add(res);
            res.on('close', () => hanging.delete(res));
            return;
          }
          const status = fault.status ?? 500;
          records.push({
            method: req.method!,
            path: reqPath,
            query,
            status,
            faulted: true,
            body: body.toString('utf8'),
          });
          res.writeHead(status, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              message: `injected fault ${status}`,
              reason: 'InternalError',
              code: status,
            }),
          );
          return;
        }
        const headers = { ...req.headers, host: target.host };
        const up = https.request(
          {
            protocol: target.protocol,
            hostname: target.hostname,
            port: target.port,
            method: req.method,
            path: req.url,
            headers,
            agent,
          },
          upRes => {
            records.push({
              method: req.method!,
              path: reqPath,
              query,
              status: upRes.statusCode ?? 0,
              faulted: false,
              body: body.toString('utf8'),
            });
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
          },
        );
        up.on('error', err => {
          res.writeHead(502);
          res.end(String(err));
        });
        up.end(body);
      });
    },
  );
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    caPem: tls.cert,
    inject: f => faults.push({ ...f, left: f.times ?? 1 }),
    requests: () => [...records],
    clearRequests: () => {
      records.length = 0;
    },
    stop: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>(resolve => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

function selfSignedCert(): { cert: string; key: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fault-proxy-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      cert: fs.readFileSync(path.join(dir, 'cert.pem'), 'utf8'),
      key: fs.readFileSync(path.join(dir, 'key.pem'), 'utf8'),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
