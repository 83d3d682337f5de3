import { spawn } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { peerGitEnv } from './cli';

/** What to run `git http-backend` on. */
export interface GitCgiRequest {
  /** Folder holding the bare repositories (GIT_PROJECT_ROOT). */
  projectRoot: string;
  /** Path below the project root, e.g. `/flux/fleet.git/info/refs`. */
  pathInfo: string;
  /** Authenticated user name (REMOTE_USER), if any. */
  remoteUser?: string;
  /** Raw query string without `?`. */
  queryString: string;
  /** Extra environment for git (e.g. for the repository's hooks, which inherit it). */
  env?: NodeJS.ProcessEnv;
}

/** The git smart-HTTP service a request is for, derived from the URL like http-backend does. */
export function gitServiceOf(
  pathInfo: string,
  query: string,
): 'upload-pack' | 'receive-pack' | 'other' {
  if (/\/info\/refs$/.test(pathInfo)) {
    const svc = new URLSearchParams(query).get('service');
    if (svc === 'git-upload-pack') return 'upload-pack';
    if (svc === 'git-receive-pack') return 'receive-pack';
    return 'upload-pack'; // dumb-protocol ref advertisement is a read
  }
  if (/\/git-upload-pack$/.test(pathInfo)) return 'upload-pack';
  if (/\/git-receive-pack$/.test(pathInfo)) return 'receive-pack';
  return 'other';
}

/**
 * Runs the real `git http-backend` as a CGI program for one request: request headers become
 * CGI variables (CONTENT_TYPE, HTTP_CONTENT_ENCODING so git itself inflates gzip bodies,
 * GIT_PROTOCOL for protocol v2), the body is streamed to its stdin, its CGI header block
 * (including `Status:`) becomes the HTTP status and headers, and the rest is streamed back.
 * Resolves with the HTTP status sent.
 */
export function runGitHttpBackend(
  req: IncomingMessage,
  res: ServerResponse,
  cgi: GitCgiRequest,
): Promise<number> {
  return new Promise(resolve => {
    const h = req.headers;
    const env = peerGitEnv({
      GIT_PROJECT_ROOT: cgi.projectRoot,
      GIT_HTTP_EXPORT_ALL: '1',
      GIT_HTTP_MAX_REQUEST_BUFFER: '100M',
      PATH_INFO: cgi.pathInfo,
      QUERY_STRING: cgi.queryString,
      REQUEST_METHOD: req.method ?? 'GET',
      CONTENT_TYPE: String(h['content-type'] ?? ''),
      REMOTE_ADDR: req.socket.remoteAddress ?? '127.0.0.1',
      REMOTE_USER: cgi.remoteUser ?? '',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: `HTTP/${req.httpVersion}`,
      SERVER_SOFTWARE: 'flux-bootstrap-test-peer',
      ...cgi.env,
    });
    if (h['content-length'] !== undefined)
      env.CONTENT_LENGTH = String(h['content-length']);
    if (h['content-encoding'])
      env.HTTP_CONTENT_ENCODING = String(h['content-encoding']);
    if (h['git-protocol']) env.GIT_PROTOCOL = String(h['git-protocol']);
    if (h.accept) env.HTTP_ACCEPT = String(h.accept);

    const child = spawn('git', ['http-backend'], {
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
    });
    let status = 200;
    let headerDone = false;
    let headerBuf = Buffer.alloc(0);
    let settled = false;
    const finish = (code: number) => {
      if (!settled) {
        settled = true;
        resolve(code);
      }
    };
    const fail = (message: string) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`git http-backend failed: ${message}\n`);
        finish(500);
      } else {
        res.destroy();
        finish(status);
      }
    };

    child.on('error', err => fail(err.message));
    child.stdin.on('error', () => {
      /* the backend may close stdin early (e.g. on an error it already reported) */
    });
    req.pipe(child.stdin);
    req.on('aborted', () => child.kill('SIGTERM'));

    child.stdout.on('data', (chunk: Buffer) => {
      if (headerDone) {
        if (!res.write(chunk)) {
          child.stdout.pause();
          res.once('drain', () => child.stdout.resume());
        }
        return;
      }
      headerBuf = Buffer.concat([headerBuf, chunk]);
      let sepLen = 4;
      let idx = headerBuf.indexOf('\r\n\r\n');
      const lfIdx = headerBuf.indexOf('\n\n');
      if (lfIdx !== -1 && (idx === -1 || lfIdx < idx)) {
        idx = lfIdx;
        sepLen = 2;
      }
      if (idx === -1) return;
      const head = headerBuf.subarray(0, idx).toString('latin1');
      const rest = headerBuf.subarray(idx + sepLen);
      headerDone = true;
      const headers: Record<string, string | string[]> = {};
      for (const line of head.split(/\r?\n/)) {
        const c = line.indexOf(':');
        if (c <= 0) continue;
        const name = line.slice(0, c).trim();
        const value = line.slice(c + 1).trim();
        if (name.toLowerCase() === 'status') {
          status = parseInt(value, 10) || 500;
          continue;
        }
        const prev = headers[name];
        headers[name] =
          prev === undefined ? value : ([] as string[]).concat(prev, value);
      }
      res.writeHead(status, headers);
      if (rest.length) res.write(rest);
    });
    child.on('close', code => {
      if (!headerDone) {
        fail(`exit ${code}: ${stderr.trim()}`);
        return;
      }
      res.end();
      finish(status);
    });
  });
}
