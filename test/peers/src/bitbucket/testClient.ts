// Helpers for the double's own tests (not exported from the package index).
import type { BitbucketDouble } from './double';

export interface Res {
  status: number;
  headers: Headers;
  /** Parsed JSON, or the text when the body is not JSON. */
  body: any;
  text: string;
}

export interface CallOptions {
  token?: string;
  basic?: [string, string];
  body?: unknown;
  /** Default `application/json` when there is a body. */
  contentType?: string;
  headers?: Record<string, string>;
}

const bodyOf = (b: unknown) => {
  if (b === undefined) return undefined;
  return typeof b === 'string' ? b : JSON.stringify(b);
};

/** A plain-HTTP client of the double: `call('GET', '/rest/api/1.0/…', { token })`. */
export function restClient(bb: BitbucketDouble) {
  return async (
    method: string,
    path: string,
    opts: CallOptions = {},
  ): Promise<Res> => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (opts.basic)
      headers.Authorization = `Basic ${Buffer.from(
        opts.basic.join(':'),
      ).toString('base64')}`;
    if (opts.body !== undefined)
      headers['Content-Type'] = opts.contentType ?? 'application/json';
    const r = await fetch(`${bb.baseUrl}${path}`, {
      method,
      headers,
      redirect: 'manual',
      body: bodyOf(opts.body),
    });
    const text = await r.text();
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: r.status, headers: r.headers, body, text };
  };
}

/** The first entry of a Bitbucket error body. */
export const errorOf = (r: Res) => r.body?.errors?.[0];

/** git CLI options that send a bearer token over HTTP. */
export const bearer = (token: string) => [
  '-c',
  `http.extraHeader=Authorization: Bearer ${token}`,
];

/** Adds a user per name, each with the access token `<name>-token`. */
export function addUsersWithTokens(bb: BitbucketDouble, ...names: string[]) {
  for (const name of names) {
    bb.addUser({ name });
    bb.addToken({ token: `${name}-token`, user: name });
  }
}
