import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { listenLoopback } from '../common/net';
import { createTestPki } from '../common/tls';

/**
 * A fault injected into matching requests of a {@link FaultProxy}. Exactly one of `status`,
 * `reset`, `resetAfterForward` and `blackhole` decides what happens; `delayMs` may be combined
 * with any of them (alone it slows the forwarded request down).
 */
export interface FaultProxyFault {
  /** HTTP method to match (any when omitted). */
  method?: string;
  /**
   * Path (without the query string) to match: exact string, a string ending in `*` for a
   * prefix, or a RegExp. Any path when omitted.
   */
  path?: string | RegExp;
  /**
   * Query string to match (without `?`): a RegExp, or a string that must appear in it, e.g.
   * `dryRun=All`. With `notQuery` the fault only matches requests whose query does NOT match.
   */
  query?: string | RegExp;
  notQuery?: string | RegExp;
  /** Answer with this status (a Kubernetes `Status` body) instead of forwarding. */
  status?: number;
  /** `Retry-After` header (seconds) sent with `status`. */
  retryAfter?: number;
  /** Wait this long before acting (or before forwarding when nothing else is set). */
  delayMs?: number;
  /** Reset the client's connection (TCP RST) without answering and without forwarding. */
  reset?: boolean;
  /**
   * Forward the request, let the upstream process it and read its full answer, then reset the
   * client's connection instead of answering: the change happened but the client never learns it.
   */
  resetAfterForward?: boolean;
  /** Never answer (the request hangs until the client gives up or the proxy stops). */
  blackhole?: boolean;
  /** How many matching requests get the fault (default 1; `Infinity` for all). */
  times?: number;
  /**
   * With `status`: the Status message echoes the request's `Authorization` header and the bare
   * credential (as careless proxies do), to test that clients redact what they are sent back.
   */
  echoCredentials?: boolean;
}

/** One request that reached the proxy. */
export interface FaultProxyRequest {
  seq: number;
  method: string;
  path: string;
  query: string;
  /** Status the client got; 0 when its connection was reset or the request hung. */
  status: number;
  /** What the proxy did instead of (or besides) a plain forward, e.g. `status 500`, `reset`. */
  fault?: string;
}

/** What every new TCP connection meets, before any TLS handshake. */
export type FaultProxyOutage =
  /** Accept and reset at once (like a server that crashed between accept and answer). */
  | 'reset'
  /** Accept and never send a byte (a black hole: packets dropped by a firewall). */
  | 'blackhole'
  /** Normal operation. */
  | undefined;

export interface FaultProxyOptions {
  /** Where requests go; may be set (or changed) later with `setUpstream`. */
  upstream?: { url: string; caPem?: string };
}

/**
 * A fault-injecting HTTPS proxy for tests, typically in front of a kube-apiserver. It terminates
 * TLS with its own throw-away CA (`caPem`, certificate for 127.0.0.1) and forwards each request to
 * the upstream over HTTPS (trusting the upstream's CA) with the client's headers unchanged, so
 * bearer-token authentication passes through. Because it sees each request it can answer with
 * HTTP errors, delay, hang or reset chosen requests, and it logs every request (method, path,
 * status — never headers or bodies, so no credentials are kept). Connection-level outages (reset
 * or black hole on connect) cover a server that is down or unreachable. When the upstream refuses
 * the connection (e.g. a restarting apiserver), the client's connection is reset, as a plain TCP
 * proxy would show it.
 */
export interface FaultProxy {
  /** `https://127.0.0.1:PORT` — use it as the cluster URL. */
  url: string;
  /** `127.0.0.1:PORT` */
  host: string;
  port: number;
  /** The CA of the proxy's serving certificate — use it as the cluster's CA. */
  caPem: string;
  setUpstream(upstream: { url: string; caPem?: string }): void;
  inject(fault: FaultProxyFault): void;
  clearFaults(): void;
  /** Faults with matches left (to assert that an injected fault was consumed). */
  pendingFaults(): FaultProxyFault[];
  /** Applies `outage` to every new connection until called with `undefined`. */
  setOutage(outage: FaultProxyOutage): void;
  /** Resets every open client connection (keep-alive ones included). */
  resetConnections(): void;
  requests(): FaultProxyRequest[];
  clearRequests(): void;
  stop(): Promise<void>;
}

interface ActiveFault extends FaultProxyFault {
  remaining: number;
}

function pathMatches(pattern: string | RegExp | undefined, p: string): boolean {
  if (pattern === undefined) return true;
  if (pattern instanceof RegExp) return pattern.test(p);
  if (pattern.endsWith('*')) return p.startsWith(pattern.slice(0, -1));
  return p === pattern;
}

function describeFault(f: FaultProxyFault): string {
  const parts: string[] = [];
  if (f.delayMs) parts.push(`delay ${f.delayMs} ms`);
  if (f.status) parts.push(`status ${f.status}`);
  if (f.reset) parts.push('reset');
  if (f.resetAfterForward) parts.push('reset after forward');
  if (f.blackhole) parts.push('black hole');
  return parts.join(', ') || 'none';
}

function resetSocket(socket: net.Socket | undefined | null): void {
  if (!socket || socket.destroyed) return;
  const s = socket as net.Socket & { resetAndDestroy?: () => void };
  if (typeof s.resetAndDestroy === 'function') {
    try {
      s.resetAndDestroy();
      return;
    } catch {
      // not connected any more
    }
  }
  s.destroy();
}

/** Starts a {@link FaultProxy} on 127.0.0.1 (random port). */
export async function startFaultProxy(
  opts: FaultProxyOptions = {},
): Promise<FaultProxy> {
  const pki = await createTestPki({ commonName: 'Fault proxy test CA' });
  let upstream: { url: URL; agent: https.Agent | http.Agent } | undefined;
  const setUpstream = (u: { url: string; caPem?: string }) => {
    upstream?.agent.destroy();
    const url = new URL(u.url);
    const agent =
      url.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, ca: u.caPem })
        : new http.Agent({ keepAlive: true });
    upstream = { url, agent };
  };
  if (opts.upstream) setUpstream(opts.upstream);

  let faults: ActiveFault[] = [];
  let outage: FaultProxyOutage;
  let seq = 0;
  const log: FaultProxyRequest[] = [];
  const sockets = new Set<net.Socket>();
  const hanging = new Set<http.ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;

  const queryMatches = (pattern: string | RegExp, q: string) =>
    pattern instanceof RegExp ? pattern.test(q) : q.includes(pattern);
  const takeFault = (
    method: string,
    p: string,
    q: string,
  ): ActiveFault | undefined => {
    const f = faults.find(
      x =>
        x.remaining > 0 &&
        (!x.method || x.method.toUpperCase() === method.toUpperCase()) &&
        pathMatches(x.path, p) &&
        (x.query === undefined || queryMatches(x.query, q)) &&
        (x.notQuery === undefined || !queryMatches(x.notQuery, q)),
    );
    if (f) f.remaining--;
    return f;
  };

  const sleep = (ms: number, res: http.ServerResponse) =>
    new Promise<boolean>(resolve => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve(!res.destroyed && !stopped);
      }, ms);
      timers.add(t);
    });

  const handler = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => {
    const raw = req.url ?? '/';
    const q = raw.indexOf('?');
    const entry: FaultProxyRequest = {
      seq: ++seq,
      method: req.method ?? 'GET',
      path: q >= 0 ? raw.slice(0, q) : raw,
      query: q >= 0 ? raw.slice(q + 1) : '',
      status: 0,
    };
    log.push(entry);
    const fault = takeFault(entry.method, entry.path, entry.query);
    if (fault) entry.fault = describeFault(fault);
    if (fault?.delayMs && !(await sleep(fault.delayMs, res))) return;
    if (fault?.blackhole) {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      req.resume();
      return;
    }
    if (fault?.reset) {
      resetSocket(req.socket);
      return;
    }
    if (fault?.status) {
      entry.status = fault.status;
      req.resume();
      res.writeHead(fault.status, {
        'Content-Type': 'application/json',
        ...(fault.retryAfter !== undefined
          ? { 'Retry-After': String(fault.retryAfter) }
          : {}),
      });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `injected fault: HTTP ${fault.status}${
            fault.echoCredentials ? echoedCredentials(req.headers) : ''
          }`,
          reason: fault.status === 429 ? 'TooManyRequests' : 'InternalError',
          code: fault.status,
        }),
      );
      return;
    }
    if (!upstream) {
      resetSocket(req.socket);
      entry.fault = 'no upstream';
      return;
    }
    const target = upstream;
    const up = (target.url.protocol === 'https:' ? https : http).request(
      {
        protocol: target.url.protocol,
        hostname: target.url.hostname,
        port: target.url.port,
        method: req.method,
        path: raw,
        headers: { ...req.headers, host: target.url.host },
        agent: target.agent,
      },
      upRes => {
        if (fault?.resetAfterForward) {
          upRes.resume();
          upRes.on('end', () => resetSocket(req.socket));
          upRes.on('error', () => resetSocket(req.socket));
          return;
        }
        entry.status = upRes.statusCode ?? 0;
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        upRes.on('error', () => resetSocket(req.socket));
      },
    );
    up.on('error', () => {
      // Upstream down (refused/reset): the client sees its connection reset, as through a TCP proxy.
      entry.fault = entry.fault
        ? `${entry.fault}, upstream error`
        : 'upstream error';
      resetSocket(req.socket);
    });
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
    req.pipe(up);
  };

  const tlsServer = https.createServer(
    { cert: pki.certPem, key: pki.keyPem },
    (req, res) => {
      handler(req, res).catch(() => resetSocket(req.socket));
    },
  );
  tlsServer.on('clientError', (_err, socket) => socket.destroy());
  tlsServer.on('upgrade', (req: http.IncomingMessage) => {
    // No upgrades (exec/port-forward) through this proxy.
    resetSocket(req.socket);
  });

  const front = net.createServer(socket => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    if (outage === 'reset') {
      resetSocket(socket);
      return;
    }
    if (outage === 'blackhole') {
      socket.resume();
      return;
    }
    tlsServer.emit('connection', socket);
  });
  const port = await listenLoopback(front);

  return {
    url: `https://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    caPem: pki.caPem,
    setUpstream,
    inject: f => faults.push({ ...f, remaining: f.times ?? 1 }),
    clearFaults: () => {
      faults = [];
    },
    pendingFaults: () =>
      faults.filter(f => f.remaining > 0).map(({ remaining: _r, ...f }) => f),
    setOutage: o => {
      outage = o;
    },
    resetConnections: () => {
      for (const s of [...sockets]) resetSocket(s);
    },
    requests: () => log.map(e => ({ ...e })),
    clearRequests: () => {
      log.length = 0;
    },
    stop: async () => {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      for (const res of hanging) res.destroy();
      for (const s of [...sockets]) s.destroy();
      tlsServer.close();
      await new Promise<void>(resolve => front.close(() => resolve()));
      upstream?.agent.destroy();
    },
  };
}

/** What a careless server echoes back: the request's Authorization header and its credential. */
function echoedCredentials(headers: http.IncomingHttpHeaders): string {
  const authorization = headers.authorization;
  if (!authorization) return ' (the request had no Authorization header)';
  return ` (request header Authorization: ${authorization}; credential ${authorization.replace(
    /^\S+\s+/,
    '',
  )})`;
}
