import { createHash } from 'node:crypto';
import { rootCertificates } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import {
  Client,
  Dispatcher,
  EnvHttpProxyAgent,
  Pool,
  ProxyAgent,
  type buildConnector,
} from 'undici';

/** TLS of a connection. `ca` replaces Node's roots (see {@link withSystemRoots}). @public */
export interface HttpTls {
  ca?: string | Buffer | Array<string | Buffer>;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** false only where the operator said so (a cluster's `skipTLSVerify`). */
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** `fluxBootstrap.proxy`: the proxy for outgoing HTTP(S), instead of the environment's. @public */
export interface HttpProxySettings {
  /** `http://[user:password@]host:port`, for http and https targets. */
  url: string;
  /** Hosts reached directly, as in NO_PROXY: `host`, `.domain`, `host:port`, `*`. Default: NO_PROXY. */
  noProxy?: string[];
}

/** Node's built-in roots plus an extra CA: trust a private CA without distrusting the rest. @public */
export function withSystemRoots(caPem?: string): string[] | undefined {
  return caPem ? [...rootCertificates, caPem] : undefined;
}

let configured: HttpProxySettings | undefined;

/** Sets the process-wide proxy (`fluxBootstrap.proxy`); `undefined`: the environment's. @public */
export function configureHttpProxy(settings: HttpProxySettings | undefined) {
  if (settings) {
    const url = new URL(settings.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new Error('fluxBootstrap.proxy.url must be an http(s) URL');
  }
  configured = settings;
}

/** Reads `fluxBootstrap.proxy` (`url`, `noProxy`). @public */
export function readHttpProxyConfig(config: {
  getOptionalString(key: string): string | undefined;
  getOptionalStringArray(key: string): string[] | undefined;
}): HttpProxySettings | undefined {
  const url = config.getOptionalString('fluxBootstrap.proxy.url');
  const noProxy = config.getOptionalStringArray('fluxBootstrap.proxy.noProxy');
  return url ? { url, noProxy } : undefined;
}

const PROXY_ENV = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY'];

/** Credentials in the proxy URLs in use, for redactors. */
export function proxySecrets(proxyUrl?: string): string[] {
  const urls = [
    proxyUrl,
    configured?.url,
    ...PROXY_ENV.map(k => process.env[k]),
  ];
  return urls.flatMap(u => {
    try {
      const { username, password } = new URL(u ?? '');
      if (password) return [password, decodeURIComponent(password)];
      return username ? [username] : [];
    } catch {
      return [];
    }
  });
}

/** A short key of a spec (its TLS material hashed). */
export function specKey(spec: DispatcherSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex');
}

/** What a dispatcher is made of; equal specs share one (pools, keep-alive, HTTP/2 sessions). */
export interface DispatcherSpec {
  tls?: HttpTls;
  http2?: boolean;
  /** A proxy for this target only (a kubeconfig cluster's `proxy-url`). */
  proxyUrl?: string;
  connectTimeoutMs?: number;
  connections?: number;
}

interface Entry {
  dispatcher: Dispatcher;
  /** HTTP/2: the first request per origin opens the connection; the others wait for it, then share it. */
  opening: Map<string, Promise<void>>;
}

const registry = new Map<string, Entry>();
const MAX_DISPATCHERS = 64;

/**
 * Pools whose connections multiplex once ALPN picked HTTP/2. undici 7 keeps `pipelining` at 1 on
 * h2 sessions (nodejs/undici#4143, fixed in 8.x, which needs Node 22), so concurrent requests
 * would each open a connection; HTTP/1.1 connections keep pipelining 1.
 */
function h2Pool(origin: string | URL, options: Pool.Options) {
  return new Pool(origin, {
    ...options,
    factory: (o, clientOptions: Client.Options) => {
      const connect = clientOptions.connect as buildConnector.connector;
      let h2 = false;
      const client: Client = new Client(o, {
        ...clientOptions,
        connect: (opts, done) =>
          connect(opts, (...result) => {
            h2 = (result[1] as TLSSocket | null)?.alpnProtocol === 'h2';
            done(...result);
          }),
      });
      client.on('connect', () => {
        if (h2) client.pipelining = 100;
      });
      return client;
    },
  });
}

function build(spec: DispatcherSpec): Dispatcher {
  const tls = { ...spec.tls, timeout: spec.connectTimeoutMs };
  const options = {
    connect: tls,
    requestTls: tls,
    allowH2: spec.http2 ?? false,
    connections: spec.connections,
    // Large answers (CRDs with their managed fields) in few round trips.
    ...(spec.http2
      ? {
          factory: h2Pool,
          initialWindowSize: 4 << 20,
          connectionWindowSize: 16 << 20,
        }
      : {}),
  };
  if (spec.proxyUrl) return new ProxyAgent({ ...options, uri: spec.proxyUrl });
  if (!configured) return new EnvHttpProxyAgent(options);
  const { url, noProxy } = configured;
  return new EnvHttpProxyAgent({
    ...options,
    httpProxy: url,
    httpsProxy: url,
    ...(noProxy ? { noProxy: noProxy.join(',') } : {}),
  });
}

/** The shared dispatcher of a spec under the current proxy settings; at most 64, LRU. */
export function dispatcherFor(spec: DispatcherSpec, keyOfSpec: string): Entry {
  const env = [...PROXY_ENV, 'no_proxy', 'NO_PROXY'].map(k => process.env[k]);
  const key = JSON.stringify([keyOfSpec, configured, env]);
  let entry = registry.get(key);
  if (entry) registry.delete(key);
  else entry = { dispatcher: build(spec), opening: new Map() };
  registry.set(key, entry);
  if (registry.size > MAX_DISPATCHERS) {
    const [oldest, old] = registry.entries().next().value!;
    registry.delete(oldest);
    old.dispatcher.close().catch(() => {});
  }
  return entry;
}
