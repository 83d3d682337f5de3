import https from 'node:https';

/** What a test needs to talk to a kube-apiserver. */
export interface KubeApiserverInfo {
  /** `https://127.0.0.1:PORT` */
  url: string;
  /** PEM of the CA that signed the serving certificate (SAN IP 127.0.0.1). */
  caPem: string;
  /** Static bearer token of user `flux-test-admin` in group `system:masters`. */
  adminToken: string;
  /** kubeconfig (mode 0600) with one context `flux-test` for the admin token. */
  kubeconfigPath: string;
  /**
   * The CA's private key (mode 0600): it signs client certificates the apiserver accepts
   * (`--client-ca-file`), see `mintClientCertificate`. Absent for an apiserver given from outside.
   */
  caKeyFile?: string;
}

export interface KubeResponse<T = any> {
  status: number;
  body: T;
  text: string;
}

export class KubeRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'KubeRequestError';
  }
}

/**
 * Minimal HTTPS client for the test peers (no dependency on the engine's KubeClient, which is
 * what the tests exercise). Keeps one keep-alive agent; `close()` releases its sockets.
 */
export class KubeHttp {
  private readonly agent: https.Agent;

  constructor(
    private readonly kube: Pick<
      KubeApiserverInfo,
      'url' | 'caPem' | 'adminToken'
    >,
    private readonly token: string = kube.adminToken,
  ) {
    this.agent = new https.Agent({
      keepAlive: true,
      maxSockets: 4,
      ca: kube.caPem,
    });
  }

  request<T = any>(
    method: string,
    path: string,
    opts: {
      body?: unknown;
      contentType?: string;
      query?: Record<string, string | undefined>;
      timeoutMs?: number;
      signal?: AbortSignal;
    } = {},
  ): Promise<KubeResponse<T>> {
    const url = new URL(path, this.kube.url);
    for (const [k, v] of Object.entries(opts.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, v);
    }
    let payload: string | undefined;
    if (typeof opts.body === 'string') payload = opts.body;
    else if (opts.body !== undefined) payload = JSON.stringify(opts.body);
    return new Promise((resolve, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            authorization: `Bearer ${this.token}`,
            ...(payload !== undefined
              ? {
                  'content-type': opts.contentType ?? 'application/json',
                  'content-length': Buffer.byteLength(payload),
                }
              : {}),
          },
          timeout: opts.timeoutMs ?? 15000,
          signal: opts.signal,
        },
        res => {
          const chunks: Buffer[] = [];
          res.on('data', c => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: any = text;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              // not JSON (e.g. /readyz)
            }
            resolve({ status: res.statusCode ?? 0, body, text });
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`${method} ${url.pathname} timed out`)),
      );
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** Like request, but throws KubeRequestError unless the status is 2xx (or listed in `ok`). */
  async expect<T = any>(
    method: string,
    path: string,
    opts: Parameters<KubeHttp['request']>[2] & { ok?: number[] } = {},
  ): Promise<KubeResponse<T>> {
    const res = await this.request<T>(method, path, opts);
    if (
      (res.status < 200 || res.status > 299) &&
      !(opts.ok ?? []).includes(res.status)
    ) {
      const msg = (res.body as any)?.message ?? res.text.slice(0, 300);
      throw new KubeRequestError(
        `${method} ${path} → ${res.status}: ${msg}`,
        res.status,
        res.body,
      );
    }
    return res;
  }

  /** Server-side apply (`application/apply-patch+yaml`, JSON is valid YAML). */
  apply<T = any>(
    path: string,
    obj: unknown,
    opts: { fieldManager?: string; force?: boolean; subresource?: string } = {},
  ): Promise<KubeResponse<T>> {
    return this.expect<T>(
      'PATCH',
      opts.subresource ? `${path}/${opts.subresource}` : path,
      {
        body: obj,
        contentType: 'application/apply-patch+yaml',
        query: {
          fieldManager: opts.fieldManager ?? 'flux-test-peers',
          force: opts.force === false ? undefined : 'true',
        },
      },
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

/** REST path of an object (or of its collection when `name` is omitted). */
export function kubePath(ref: {
  apiVersion: string;
  /** plural resource name, e.g. `deployments` */
  resource: string;
  namespace?: string;
  name?: string;
}): string {
  const base = ref.apiVersion.includes('/')
    ? `/apis/${ref.apiVersion}`
    : `/api/${ref.apiVersion}`;
  const ns = ref.namespace
    ? `/namespaces/${encodeURIComponent(ref.namespace)}`
    : '';
  const name = ref.name ? `/${encodeURIComponent(ref.name)}` : '';
  return `${base}${ns}/${ref.resource}${name}`;
}
