import fs from 'node:fs';
import path from 'node:path';
import { run } from '../common/process';
import { listBranchesSync } from '../git/cli';
import { commitFile, gitClient, gitOk, tempDirs } from '../git/testUtils';
import { newKey } from '../ssh/testKeys';
import { BitbucketDouble, startBitbucketDouble } from './double';
import { parseGitSshCommand } from './ssh';

jest.setTimeout(60_000);

describe('Bitbucket double: git over SSH through the real sshd, authorised by access keys', () => {
  let bb: BitbucketDouble;
  const tmp = tempDirs();
  let keysDir: string;
  let knownHosts: string;
  const keys: Record<string, { file: string; pub: string }> = {};

  const sshEnv = (key: string, kh = knownHosts) => ({
    GIT_SSH_COMMAND: [
      'ssh',
      '-F',
      '/dev/null',
      '-i',
      key,
      '-o',
      'IdentitiesOnly=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'StrictHostKeyChecking=yes',
      '-o',
      `UserKnownHostsFile=${kh}`,
      '-o',
      'GlobalKnownHostsFile=/dev/null',
    ].join(' '),
  });
  const api = (p: string, init: RequestInit = {}) =>
    fetch(`${bb.apiBaseUrl.replace('/api/1.0', '')}${p}`, {
      ...init,
      headers: {
        Authorization: 'Bearer admin-token',
        'Content-Type': 'application/json',
        ...(init.headers ?? {}),
      },
    });

  beforeAll(async () => {
    bb = await startBitbucketDouble({ ssh: true });
    bb.addUser({ name: 'admin' });
    bb.grantGlobal('admin', 'ADMIN');
    bb.addToken({ token: 'admin-token', user: 'admin' });
    bb.addUser({ name: 'alice' });
    bb.addProject({ key: 'FLUX', name: 'Flux' });
    bb.createRepo('FLUX', 'fleet', {
      initialCommit: true,
      defaultBranch: 'main',
    });
    bb.createRepo('FLUX', 'other', {
      initialCommit: true,
      defaultBranch: 'main',
    });
    bb.createRepo('~alice', 'mine', {
      initialCommit: true,
      defaultBranch: 'main',
    });
    keysDir = tmp.make('ssh-keys');
    for (const name of ['reader', 'writer', 'stranger', 'rest']) {
      const file = path.join(keysDir, name);
      await run('ssh-keygen', [
        '-q',
        '-t',
        name === 'writer' ? 'ecdsa' : 'ed25519',
        '-N',
        '',
        '-C',
        `${name}@test`,
        '-f',
        file,
      ]);
      keys[name] = { file, pub: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
    }
    bb.addAccessKey(
      'FLUX',
      'fleet',
      { text: keys.reader.pub, label: 'reader' },
      'REPO_READ',
    );
    bb.addAccessKey(
      'FLUX',
      'fleet',
      { text: keys.writer.pub, label: 'writer' },
      'REPO_WRITE',
    );
    bb.addAccessKey('~alice', 'mine', { text: keys.writer.pub }, 'REPO_WRITE');
    knownHosts = path.join(keysDir, 'known_hosts');
    fs.writeFileSync(knownHosts, bb.ssh!.knownHosts);
  });
  afterAll(async () => {
    await bb.stop();
    tmp.cleanup();
  });

  it('advertises ssh clone links for the real sshd and its host keys', async () => {
    expect(bb.ssh!.host).toBe(`127.0.0.1:${bb.ssh!.port}`);
    expect(bb.ssh!.hostKeys.map(k => k.type).sort()).toEqual([
      'ecdsa-sha2-nistp256',
      'ssh-ed25519',
      'ssh-rsa',
    ]);
    const repo = await (await api('/api/1.0/projects/FLUX/repos/fleet')).json();
    expect(repo.links.clone).toEqual([
      {
        name: 'ssh',
        href: `ssh://${bb.ssh!.user}@127.0.0.1:${bb.ssh!.port}/flux/fleet.git`,
      },
      { name: 'http', href: `${bb.baseUrl}/scm/flux/fleet.git` },
    ]);
  });

  it('clones with a registered REPO_READ key, refuses its push, accepts a REPO_WRITE key push; REST and HTTP see it', async () => {
    const url = bb.cloneUrls('FLUX', 'fleet').ssh!;
    const clone = tmp.make();
    await gitOk(['clone', '-q', url, clone], { env: sshEnv(keys.reader.file) });
    expect(fs.existsSync(path.join(clone, 'README.md'))).toBe(true);
    const before = listBranchesSync(bb.repoPath('FLUX', 'fleet'));

    const sha = await commitFile(clone, 'clusters/dev/a.yaml', 'a: 1\n');
    const refused = await gitClient(
      ['-C', clone, 'push', 'origin', 'HEAD:main'],
      { env: sshEnv(keys.reader.file) },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/not permitted to push to FLUX\/fleet/);
    expect(listBranchesSync(bb.repoPath('FLUX', 'fleet'))).toEqual(before);

    await gitOk(['-C', clone, 'push', '-q', 'origin', 'HEAD:main'], {
      env: sshEnv(keys.writer.file),
    });
    const branches = await (
      await api('/api/1.0/projects/FLUX/repos/fleet/branches?filterText=main')
    ).json();
    expect(branches.values[0]).toMatchObject({
      id: 'refs/heads/main',
      latestCommit: sha,
      isDefault: true,
    });
    const viaHttp = await gitOk([
      '-c',
      'http.extraHeader=Authorization: Bearer admin-token',
      'ls-remote',
      bb.cloneUrls('FLUX', 'fleet').http,
      'refs/heads/main',
    ]);
    expect(viaHttp.split('\t')[0]).toBe(sha);

    const log = bb.requests().filter(r => r.method === 'SSH');
    expect(log.map(r => [r.path, r.query.service, r.status])).toEqual([
      ['/flux/fleet.git', 'git-upload-pack', 200],
      ['/flux/fleet.git', 'git-receive-pack', 403],
      ['/flux/fleet.git', 'git-receive-pack', 200],
    ]);
  });

  it('refuses an unknown key and a wrong known_hosts entry', async () => {
    const url = bb.cloneUrls('FLUX', 'fleet').ssh!;
    const unknown = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.stranger.file),
    });
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/Permission denied \(publickey\)/);

    const wrongKh = path.join(keysDir, 'wrong_known_hosts');
    fs.writeFileSync(
      wrongKh,
      `[127.0.0.1]:${bb.ssh!.port} ${keys.stranger.pub
        .split(' ')
        .slice(0, 2)
        .join(' ')}\n`,
    );
    const spoofed = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.reader.file, wrongKh),
    });
    expect(spoofed.code).not.toBe(0);
    expect(spoofed.stderr).toMatch(/Host key verification failed/);

    const emptyKh = path.join(keysDir, 'empty_known_hosts');
    fs.writeFileSync(emptyKh, '');
    const unknownHost = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.reader.file, emptyKh),
    });
    expect(unknownHost.code).not.toBe(0);
    expect(unknownHost.stderr).toMatch(/Host key verification failed/);
  });

  it('limits a key to the repositories it is registered on; paths are case-insensitive, with or without .git, personal ~user too', async () => {
    const other = await gitClient(
      ['ls-remote', bb.cloneUrls('FLUX', 'other').ssh!],
      { env: sshEnv(keys.reader.file) },
    );
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/Repository not found/);
    const port = bb.ssh!.port;
    const user = bb.ssh!.user;
    for (const p of ['/FLUX/fleet.git', '/flux/fleet', '/Flux/Fleet.git']) {
      const out = await gitOk(
        ['ls-remote', `ssh://${user}@127.0.0.1:${port}${p}`, 'refs/heads/main'],
        { env: sshEnv(keys.reader.file) },
      );
      expect(out).toMatch(/refs\/heads\/main/);
    }
    const personal = await gitOk(
      ['ls-remote', `ssh://${user}@127.0.0.1:${port}/~alice/mine.git`],
      { env: sshEnv(keys.writer.file) },
    );
    expect(personal).toMatch(/refs\/heads\/main/);
    const personalReader = await gitClient(
      ['ls-remote', `ssh://${user}@127.0.0.1:${port}/~ALICE/mine.git`],
      { env: sshEnv(keys.reader.file) },
    );
    expect(personalReader.code).not.toBe(0);
  });

  it('follows access keys added and deleted over REST', async () => {
    const url = bb.cloneUrls('FLUX', 'other').ssh!;
    expect(
      (await gitClient(['ls-remote', url], { env: sshEnv(keys.rest.file) }))
        .code,
    ).not.toBe(0);
    const added = await api('/keys/1.0/projects/FLUX/repos/other/ssh', {
      method: 'POST',
      body: JSON.stringify({
        key: { text: keys.rest.pub, label: 'flux-system-main' },
        permission: 'REPO_READ',
      }),
    });
    expect(added.status).toBe(201);
    const { key } = await added.json();
    expect(
      await gitOk(['ls-remote', url], { env: sshEnv(keys.rest.file) }),
    ).toMatch(/refs\/heads\/main/);
    const del = await api(`/keys/1.0/projects/FLUX/repos/other/ssh/${key.id}`, {
      method: 'DELETE',
    });
    expect(del.status).toBe(204);
    const after = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.rest.file),
    });
    expect(after.code).not.toBe(0);
    expect(after.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  it('refuses commands other than git fetch/push, and honours injected SSH faults', async () => {
    const shell = await run(
      'ssh',
      [
        '-F',
        '/dev/null',
        '-i',
        keys.reader.file,
        '-p',
        String(bb.ssh!.port),
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        `UserKnownHostsFile=${knownHosts}`,
        '-o',
        'StrictHostKeyChecking=yes',
        `${bb.ssh!.user}@127.0.0.1`,
        'cat /etc/passwd',
      ],
      { check: false },
    );
    expect(shell.code).not.toBe(0);
    expect(shell.stdout).toBe('');
    expect(shell.stderr).toMatch(/only git fetch\/push are allowed/);

    bb.injectFault({ method: 'SSH', path: '/flux/fleet.git', status: 503 });
    const url = bb.cloneUrls('FLUX', 'fleet').ssh!;
    expect(
      (await gitClient(['ls-remote', url], { env: sshEnv(keys.reader.file) }))
        .code,
    ).not.toBe(0);
    expect(
      (await gitClient(['ls-remote', url], { env: sshEnv(keys.reader.file) }))
        .code,
    ).toBe(0);
  });

  // Last in this block: it changes the server's host keys.
  it('rotateSshHostKeys gives the server new host keys on the same port: old known_hosts is refused', async () => {
    const url = bb.cloneUrls('FLUX', 'fleet').ssh!;
    const oldKh = path.join(keysDir, 'old_known_hosts');
    fs.writeFileSync(oldKh, bb.ssh!.knownHosts);
    const port = bb.ssh!.port;
    const before = bb.ssh!.hostKeys.map(k => k.fingerprint);
    const info = await bb.rotateSshHostKeys();
    expect(info.port).toBe(port);
    expect(bb.ssh!.hostKeys.map(k => k.fingerprint)).toEqual(
      info.hostKeys.map(k => k.fingerprint),
    );
    for (const f of info.hostKeys.map(k => k.fingerprint))
      expect(before).not.toContain(f);
    const refused = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.reader.file, oldKh),
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED/,
    );
    const newKh = path.join(keysDir, 'new_known_hosts');
    fs.writeFileSync(newKh, bb.ssh!.knownHosts);
    const accepted = await gitClient(['ls-remote', url], {
      env: sshEnv(keys.reader.file, newKh),
    });
    expect(accepted.code).toBe(0);
  });
});

describe('parseGitSshCommand', () => {
  it.each([
    [
      "git-upload-pack '/FLUX/fleet.git'",
      { service: 'git-upload-pack', projectKey: 'FLUX', slug: 'fleet' },
    ],
    [
      "git-receive-pack 'flux/fleet.git'",
      { service: 'git-receive-pack', projectKey: 'flux', slug: 'fleet' },
    ],
    [
      "git upload-pack '/~alice/mine'",
      { service: 'git-upload-pack', projectKey: '~alice', slug: 'mine' },
    ],
  ])('%s', (cmd, expected) => {
    expect(parseGitSshCommand(cmd)).toEqual(expected);
  });
  it.each([
    "git-upload-pack '/a/b/c.git'",
    "git-upload-pack '../etc/passwd'",
    'ls -la',
    "git-upload-pack '/x/y'; rm -rf /",
    "git-upload-pack '/x/..'",
  ])('rejects %s', cmd => {
    expect(parseGitSshCommand(cmd)).toBeUndefined();
  });
});

describe('Bitbucket double SSH without AuthorizedKeysCommand (authorized_keys file, as on non-root machines)', () => {
  const tmp = tempDirs();
  afterAll(() => tmp.cleanup());

  it('keeps the file in step with repository and project access keys', async () => {
    const bb = await startBitbucketDouble({ ssh: { keySource: 'file' } });
    try {
      expect(bb.ssh!.keySource).toBe('file');
      bb.addUser({ name: 'admin' });
      bb.grantGlobal('admin', 'ADMIN');
      bb.addToken({ token: 'admin-token', user: 'admin' });
      bb.addProject({ key: 'OPS', name: 'Ops' });
      bb.createRepo('OPS', 'a', { initialCommit: true, defaultBranch: 'main' });
      bb.createRepo('OPS', 'b', { initialCommit: true, defaultBranch: 'main' });
      const dir = tmp.make();
      const { file: key } = await newKey(dir, 'id', 'proj');
      const kh = path.join(dir, 'known_hosts');
      fs.writeFileSync(kh, bb.ssh!.knownHosts);
      const env = {
        GIT_SSH_COMMAND: `ssh -F /dev/null -i ${key} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=${kh}`,
      };
      const ls = (slug: string) =>
        gitClient(['ls-remote', bb.cloneUrls('OPS', slug).ssh!], { env });
      expect((await ls('a')).code).not.toBe(0);
      const added = await fetch(
        `${bb.baseUrl}/rest/keys/1.0/projects/OPS/ssh`,
        {
          method: 'POST',
          headers: {
            Authorization: 'Bearer admin-token',
            'Content-Type': 'application/json',
          },
          body: JSON.stringify({
            key: { text: fs.readFileSync(`${key}.pub`, 'utf8') },
            permission: 'PROJECT_READ',
          }),
        },
      );
      expect(added.status).toBe(201);
      const body = await added.json();
      expect(body).toMatchObject({
        key: { label: 'proj' },
        project: { key: 'OPS' },
        permission: 'PROJECT_READ',
      });
      // a project key reads every repository of the project, but cannot push
      expect((await ls('a')).code).toBe(0);
      expect((await ls('b')).code).toBe(0);
      const clone = tmp.make();
      await gitOk(['clone', '-q', bb.cloneUrls('OPS', 'b').ssh!, clone], {
        env,
      });
      await commitFile(clone, 'f', 'f');
      expect(
        (await gitClient(['-C', clone, 'push', 'origin', 'HEAD:main'], { env }))
          .code,
      ).not.toBe(0);
      const del = await fetch(
        `${bb.baseUrl}/rest/keys/1.0/projects/OPS/ssh/${body.key.id}`,
        {
          method: 'DELETE',
          headers: { Authorization: 'Bearer admin-token' },
        },
      );
      expect(del.status).toBe(204);
      expect((await ls('a')).code).not.toBe(0);
    } finally {
      await bb.stop();
    }
  });
});
