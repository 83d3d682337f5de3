import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { parseAuthorization } from '../common/auth';
import { makeTempDir, removeDir } from '../common/fs';
import { closeServer, listenLoopback, trackSockets } from '../common/net';
import { createTestPki } from '../common/tls';
import { initBareRepoSync, seedInitialCommitSync } from './cli';
import { gitServiceOf, runGitHttpBackend } from './httpBackend';

/** A credential accepted by {@link startGitHttpServer}. */
export interface GitHttpCredential {
  /** The token: sent as `Authorization: Bearer <token>` or as the password of Basic auth. */
  token: string;
  /** The user the token belongs to (Basic auth must name this user). */
  user: string;
  /** `read` allows fetch/clone, `write` also push. */
  access: 'read' | 'write';
  /** Restrict the token to these repository names (default: all). */
  repos?: string[];
}

/** One request seen by the git HTTP server. */
export interface GitHttpRequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  status: number;
  user?: string;
  service: 'upload-pack' | 'receive-pack' | 'other';
}

/** A running standalone git smart-HTTP server (real `git http-backend`). */
export interface GitHttpServer {
  /** `http(s)://127.0.0.1:PORT` */
  baseUrl: string;
  host: string;
  port: number;
  /** When started with `tls: true`: the CA that signed the server certificate. */
  caPem?: string;
  /** Path of a file holding `caPem` (for `git -c http.sslCAInfo=…`). */
  caFile?: string;
  /** Folder holding the bare repositories. */
  root: string;
  /** Creates a bare repository `<name>.git`; returns its clone URL and path on disk. */
  createRepo(
    name: string,
    opts?: { defaultBranch?: string; initialCommit?: boolean },
  ): { url: string; path: string };
  repoPath(name: string): string;
  repoUrl(name: string): string;
  addToken(c: GitHttpCredential): void;
  requests(): GitHttpRequestLogEntry[];
  clearRequests(): void;
  stop(): Promise<void>;
}

const REPO_NAME = /^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+)*$/;

/**
 * Starts a git smart-HTTP server on 127.0.0.1 (random port) over bare repositories in a temp
 * folder, serving them with the real `git http-backend`. Authentication: `Bearer <token>` or
 * Basic `user:token`; `read` tokens may fetch, `write` tokens may also push. No credentials →
 * 401 with `WWW-Authenticate` (unless `anonymousRead` and the request is a read); a valid
 * credential without the needed access → 403.
 */
export async function startGitHttpServer(
  opts: { tls?: boolean; anonymousRead?: boolean } = {},
): Promise<GitHttpServer> {
  const tmp = makeTempDir('peer-git-http');
  fs.chmodSync(tmp, 0o755);
  const root = path.join(tmp, 'repos');
  fs.mkdirSync(root, { mode: 0o755 });
  const tokens: GitHttpCredential[] = [];
  const log: GitHttpRequestLogEntry[] = [];
  const pki = opts.tls ? await createTestPki() : undefined;
  let caFile: string | undefined;
  if (pki) {
    caFile = path.join(tmp, 'ca.crt');
    fs.writeFileSync(caFile, pki.caPem);
  }

  const handler = async (
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const pathname = decodeURIComponent(url.pathname);
    const query = Object.fromEntries(url.searchParams.entries());
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      headers[k] = Array.isArray(v) ? v.join(', ') : String(v ?? '');
    const service = gitServiceOf(pathname, url.search.slice(1));
    const entry: GitHttpRequestLogEntry = {
      method: req.method ?? 'GET',
      path: pathname,
      query,
      headers,
      status: 0,
      service,
    };
    log.push(entry);
    const m = /^\/(.+?\.git)(\/.*)$/.exec(pathname);
    const repoName = m?.[1].replace(/\.git$/, '');
    if (
      !m ||
      !repoName ||
      !REPO_NAME.test(repoName) ||
      repoName.split('/').includes('..')
    ) {
      entry.status = 404;
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Not found\n');
      return;
    }
    const auth = parseAuthorization(req.headers.authorization);
    let cred: GitHttpCredential | undefined;
    if (auth?.scheme === 'bearer')
      cred = tokens.find(t => t.token === auth.token);
    if (auth?.scheme === 'basic') {
      cred = tokens.find(
        t =>
          t.token === auth.password &&
          t.user.toLowerCase() === auth.user.toLowerCase(),
      );
    }
    const needWrite = service === 'receive-pack';
    const anonymousOk = !auth && opts.anonymousRead && !needWrite;
    if (!cred && !anonymousOk) {
      entry.status = 401;
      res
        .writeHead(401, {
          'WWW-Authenticate': 'Basic realm="git peer"',
          'Content-Type': 'text/plain',
        })
        .end('Authentication required\n');
      return;
    }
    if (cred) {
      entry.user = cred.user;
      const repoAllowed = !cred.repos || cred.repos.includes(repoName);
      if (!repoAllowed || (needWrite && cred.access !== 'write')) {
        entry.status = 403;
        res
          .writeHead(403, { 'Content-Type': 'text/plain' })
          .end(
            `${cred.user} may not ${
              needWrite ? 'push to' : 'read'
            } ${repoName}\n`,
          );
        return;
      }
    }
    if (!fs.existsSync(path.join(root, `${repoName}.git`))) {
      entry.status = 404;
      res
        .writeHead(404, { 'Content-Type': 'text/plain' })
        .end('Repository not found\n');
      return;
    }
    entry.status = await runGitHttpBackend(req, res, {
      projectRoot: root,
      pathInfo: pathname,
      queryString: url.search.slice(1),
      remoteUser: cred?.user,
    });
  };

  const server = pki
    ? https.createServer(
        { key: pki.keyPem, cert: pki.certPem },
        (q, s) => void handler(q, s),
      )
    : http.createServer((q, s) => void handler(q, s));
  const sockets = trackSockets(server);
  const port = await listenLoopback(server);
  const baseUrl = `${pki ? 'https' : 'http'}://127.0.0.1:${port}`;
  const repoPath = (name: string) => {
    if (!REPO_NAME.test(name) || name.split('/').includes('..'))
      throw new Error(`invalid repository name ${name}`);
    return path.join(root, `${name}.git`);
  };
  return {
    baseUrl,
    host: `127.0.0.1:${port}`,
    port,
    caPem: pki?.caPem,
    caFile,
    root,
    repoPath,
    repoUrl: name => `${baseUrl}/${name}.git`,
    createRepo(name, o = {}) {
      const p = repoPath(name);
      initBareRepoSync(p, o.defaultBranch ?? 'main');
      if (o.initialCommit) seedInitialCommitSync(p, o.defaultBranch ?? 'main');
      return { url: `${baseUrl}/${name}.git`, path: p };
    },
    addToken(c) {
      tokens.push({ ...c });
    },
    requests: () =>
      log.map(e => ({
        ...e,
        query: { ...e.query },
        headers: { ...e.headers },
      })),
    clearRequests() {
      log.length = 0;
    },
    async stop() {
      await closeServer(server, sockets);
      removeDir(tmp);
    },
  };
}
