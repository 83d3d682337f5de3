import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import git from 'isomorphic-git';
import isoHttp from 'isomorphic-git/http/node';
import { startGitHttpServer, GitHttpServer } from './httpServer';
import { listBranchesSync } from './cli';
import {
  commitFile,
  gitClient,
  gitOk,
  newLocalRepo,
  tempDirs,
} from './testUtils';

jest.setTimeout(60_000);

const basic = (user: string, pw: string) =>
  `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;

describe('startGitHttpServer (real git http-backend)', () => {
  let srv: GitHttpServer;
  const tmp = tempDirs();

  beforeAll(async () => {
    srv = await startGitHttpServer();
    srv.addToken({ token: 'write-token-1', user: 'alice', access: 'write' });
    srv.addToken({ token: 'read-token-1', user: 'bob', access: 'read' });
    srv.addToken({
      token: 'other-repo-token',
      user: 'carol',
      access: 'write',
      repos: ['other'],
    });
  });
  afterAll(async () => {
    await srv.stop();
    tmp.cleanup();
  });

  it('git CLI: push with Basic user:token, clone with Bearer (http.extraHeader), fetch sees new commits', async () => {
    const { path: bare } = srv.createRepo('cli', { defaultBranch: 'main' });
    const src = tmp.make();
    const first = await newLocalRepo(src);
    const url = srv
      .repoUrl('cli')
      .replace('http://', 'http://alice:write-token-1@');
    await gitOk(['-C', src, 'push', url, 'main:main']);
    expect(listBranchesSync(bare)).toEqual([
      { ref: 'refs/heads/main', name: 'main', sha: first },
    ]);

    const clone = tmp.make();
    await gitOk([
      '-c',
      'http.extraHeader=Authorization: Bearer read-token-1',
      'clone',
      '-q',
      srv.repoUrl('cli'),
      clone,
    ]);
    expect((await gitOk(['-C', clone, 'rev-parse', 'HEAD'])).trim()).toBe(
      first,
    );

    const second = await commitFile(src, 'a.txt', 'a');
    await gitOk(['-C', src, 'push', url, 'main:main']);
    await gitOk([
      '-C',
      clone,
      '-c',
      'http.extraHeader=Authorization: Bearer read-token-1',
      'fetch',
      '-q',
      'origin',
    ]);
    expect(
      (await gitOk(['-C', clone, 'rev-parse', 'origin/main'])).trim(),
    ).toBe(second);
    const users = srv
      .requests()
      .filter(r => r.path.endsWith('/git-receive-pack'))
      .map(r => r.user);
    expect(users).toEqual(['alice', 'alice']);
  });

  it('git CLI: a read token cannot push (403), no or wrong credentials get 401, tokens limited to other repos get 403', async () => {
    srv.createRepo('guarded', { initialCommit: true });
    const src = tmp.make();
    await newLocalRepo(src);
    srv.clearRequests();
    const push = (auth: string) =>
      gitClient([
        '-C',
        src,
        '-c',
        `http.extraHeader=Authorization: ${auth}`,
        'push',
        srv.repoUrl('guarded'),
        'main:refs/heads/x',
      ]);
    const asReader = await push('Bearer read-token-1');
    expect(asReader.code).not.toBe(0);
    expect(asReader.stderr).toMatch(/403/);
    const wrong = await push('Bearer nope');
    expect(wrong.code).not.toBe(0);
    const otherRepo = await push(basic('carol', 'other-repo-token'));
    expect(otherRepo.code).not.toBe(0);
    const wrongUser = await push(basic('mallory', 'write-token-1'));
    expect(wrongUser.code).not.toBe(0);
    const anonymous = await gitClient(['ls-remote', srv.repoUrl('guarded')]);
    expect(anonymous.code).not.toBe(0);
    const statuses = srv.requests().map(r => r.status);
    expect(statuses).toEqual([403, 401, 403, 401, 401]);
    expect(listBranchesSync(srv.repoPath('guarded')).map(b => b.name)).toEqual([
      'main',
    ]);
  });

  it('isomorphic-git: clone, commit and push with Basic and Bearer', async () => {
    const { path: bare } = srv.createRepo('iso', { initialCommit: true });
    const dir = tmp.make();
    await git.clone({
      fs,
      http: isoHttp,
      dir,
      url: srv.repoUrl('iso'),
      headers: { Authorization: 'Bearer read-token-1' },
    });
    fs.writeFileSync(path.join(dir, 'iso.txt'), 'from isomorphic-git\n');
    await git.add({ fs, dir, filepath: 'iso.txt' });
    const sha = await git.commit({
      fs,
      dir,
      message: 'iso commit',
      author: { name: 'Iso', email: 'iso@example.com' },
    });
    const denied = git.push({
      fs,
      http: isoHttp,
      dir,
      remote: 'origin',
      ref: 'main',
      headers: { Authorization: 'Bearer read-token-1' },
    });
    await expect(denied).rejects.toThrow(/403/);
    const res = await git.push({
      fs,
      http: isoHttp,
      dir,
      remote: 'origin',
      ref: 'main',
      onAuth: () => ({ username: 'alice', password: 'write-token-1' }),
    });
    expect(res.ok).toBe(true);
    expect(listBranchesSync(bare).find(b => b.name === 'main')?.sha).toBe(sha);
    // and the git CLI sees what isomorphic-git pushed
    const clone = tmp.make();
    await gitOk([
      '-c',
      'http.extraHeader=Authorization: Bearer write-token-1',
      'clone',
      '-q',
      srv.repoUrl('iso'),
      clone,
    ]);
    expect(fs.readFileSync(path.join(clone, 'iso.txt'), 'utf8')).toBe(
      'from isomorphic-git\n',
    );
  });

  it('handles gzip-compressed request bodies (as git sends for large fetch negotiations)', async () => {
    srv.createRepo('gz', { initialCommit: true });
    const head = listBranchesSync(srv.repoPath('gz'))[0].sha;
    const pkt = (s: string) =>
      `${(s.length + 4).toString(16).padStart(4, '0')}${s}`;
    const request = `${pkt(`want ${head} ofs-delta\n`)}0000${pkt('done\n')}`;
    const send = (body: Buffer, encoding?: string) =>
      new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
        const req = http.request(
          `${srv.repoUrl('gz')}/git-upload-pack`,
          {
            method: 'POST',
            headers: {
              Authorization: 'Bearer read-token-1',
              'Content-Type': 'application/x-git-upload-pack-request',
              ...(encoding ? { 'Content-Encoding': encoding } : {}),
            },
          },
          res => {
            const chunks: Buffer[] = [];
            res.on('data', c => chunks.push(c));
            res.on('end', () =>
              resolve({ status: res.statusCode!, body: Buffer.concat(chunks) }),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const gz = await send(zlib.gzipSync(Buffer.from(request)), 'gzip');
    expect(gz.status).toBe(200);
    expect(gz.body.subarray(0, 8).toString()).toBe('0008NAK\n');
    expect(gz.body.includes(Buffer.from('PACK'))).toBe(true);
    const plain = await send(Buffer.from(request));
    expect(plain.body.subarray(0, 8).toString()).toBe('0008NAK\n');
  });

  it('serves HTTPS with its own CA: git trusts it only when given the CA', async () => {
    const tls = await startGitHttpServer({ tls: true });
    try {
      tls.addToken({ token: 't', user: 'u', access: 'read' });
      tls.createRepo('secure', { initialCommit: true });
      expect(tls.baseUrl).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(tls.caPem).toMatch(/BEGIN CERTIFICATE/);
      const auth = ['-c', 'http.extraHeader=Authorization: Bearer t'];
      const untrusted = await gitClient([
        ...auth,
        'ls-remote',
        tls.repoUrl('secure'),
      ]);
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toMatch(/certificate/i);
      const trusted = await gitOk([
        ...auth,
        '-c',
        `http.sslCAInfo=${tls.caFile}`,
        'ls-remote',
        tls.repoUrl('secure'),
      ]);
      expect(trusted).toMatch(/refs\/heads\/main/);
    } finally {
      await tls.stop();
    }
  });

  it('stop() closes the port and removes the repositories', async () => {
    const s = await startGitHttpServer();
    const root = s.root;
    s.createRepo('x');
    await s.stop();
    expect(fs.existsSync(root)).toBe(false);
    await expect(fetch(`${s.baseUrl}/x.git/info/refs`)).rejects.toThrow();
  });
});
