import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigSources } from '@backstage/config-loader';
import {
  backendArgv,
  bitbucketAuthBackendArgv,
  describeRedisUrl,
  findRepoRoot,
  mcpBackendArgv,
  redisBackendArgv,
} from './config';

describe('backendArgv', () => {
  const root = '/repo';
  const pgEnv = {
    POSTGRES_HOST: '127.0.0.1',
    POSTGRES_PORT: '5432',
    POSTGRES_USER: 'backstage',
    POSTGRES_PASSWORD: 'secret',
  };

  it('keeps the command line (in-memory SQLite from app-config.yaml) without POSTGRES_HOST', () => {
    const argv = ['node', 'index.ts', '--config', 'a.yaml'];
    expect(backendArgv(argv, {}, root)).toEqual({ argv, database: 'default' });
  });

  it('layers app-config.postgres.yaml after the given config files when POSTGRES_HOST is set', () => {
    const { argv, database } = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml', '--config=b.yaml'],
      pgEnv,
      root,
    );
    expect(database).toBe('postgres');
    expect(argv).toEqual([
      'node',
      'index.ts',
      '--config',
      'a.yaml',
      '--config=b.yaml',
      '--config',
      path.join(root, 'app-config.postgres.yaml'),
    ]);
  });

  it('makes the default app-config.yaml (+ .local.yaml) explicit when no --config is given', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backend-argv-'));
    try {
      fs.writeFileSync(path.join(dir, 'app-config.yaml'), 'app: {}\n');
      fs.writeFileSync(path.join(dir, 'app-config.local.yaml'), 'app: {}\n');
      const { argv } = backendArgv(['node', 'index.ts'], pgEnv, dir);
      expect(argv).toEqual([
        'node',
        'index.ts',
        '--config',
        path.join(dir, 'app-config.yaml'),
        '--config',
        path.join(dir, 'app-config.local.yaml'),
        '--config',
        path.join(dir, 'app-config.postgres.yaml'),
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names the missing POSTGRES_* variables instead of starting half-configured', () => {
    expect(() =>
      backendArgv(
        ['node'],
        { POSTGRES_HOST: 'db', POSTGRES_PORT: '5432' },
        root,
      ),
    ).toThrow('POSTGRES_USER, POSTGRES_PASSWORD are not set');
  });

  it('finds the repository root holding app-config.yaml, and the committed PostgreSQL overlay reads the POSTGRES_* variables', () => {
    const repo = findRepoRoot(__dirname);
    expect(
      fs.existsSync(path.join(repo, 'packages/backend/src/config.ts')),
    ).toBe(true);
    const overlay = fs.readFileSync(
      path.join(repo, 'app-config.postgres.yaml'),
      'utf8',
    );
    for (const name of [
      'POSTGRES_HOST',
      'POSTGRES_PORT',
      'POSTGRES_USER',
      'POSTGRES_PASSWORD',
    ]) {
      expect(overlay).toContain(`\${${name}}`);
    }
    expect(overlay).toMatch(/client: pg/);
  });
});

describe('mcpBackendArgv', () => {
  const root = '/repo';
  const TOKEN = 'a1b2c3d4e5f6a7b8c9d0e1f2';

  it('changes nothing without MCP_TOKEN (or with it empty)', () => {
    const argv = ['node', 'index.ts', '--config', 'a.yaml'];
    expect(mcpBackendArgv(argv, {}, root)).toEqual({ argv, mcpToken: false });
    expect(mcpBackendArgv(argv, { MCP_TOKEN: '' }, root)).toEqual({
      argv,
      mcpToken: false,
    });
  });

  it('layers app-config.mcp.yaml last when MCP_TOKEN is set, after the PostgreSQL overlay too', () => {
    const pg = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml'],
      {
        POSTGRES_HOST: 'db',
        POSTGRES_PORT: '5432',
        POSTGRES_USER: 'u',
        POSTGRES_PASSWORD: 'p',
      },
      root,
    );
    const { argv, mcpToken } = mcpBackendArgv(
      pg.argv,
      { MCP_TOKEN: TOKEN },
      root,
    );
    expect(mcpToken).toBe(true);
    expect(argv).toEqual([
      'node',
      'index.ts',
      '--config',
      'a.yaml',
      '--config',
      path.join(root, 'app-config.postgres.yaml'),
      '--config',
      path.join(root, 'app-config.mcp.yaml'),
    ]);
  });

  it('keeps the default app-config.yaml when no --config is given', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backend-argv-mcp-'));
    try {
      fs.writeFileSync(path.join(dir, 'app-config.yaml'), 'app: {}\n');
      const { argv } = mcpBackendArgv(['node'], { MCP_TOKEN: TOKEN }, dir);
      expect(argv).toEqual([
        'node',
        '--config',
        path.join(dir, 'app-config.yaml'),
        '--config',
        path.join(dir, 'app-config.mcp.yaml'),
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a token Backstage would refuse, naming the variable and not the value', () => {
    for (const bad of ['short', 'has a space in it']) {
      let message = '';
      try {
        mcpBackendArgv(['node'], { MCP_TOKEN: bad }, root);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/^MCP_TOKEN must be at least 8 characters/);
      expect(message).not.toContain(bad);
    }
  });

  it('the committed overlay, loaded as the backend loads its config, makes MCP_TOKEN a static token limited to the MCP endpoint and flux-bootstrap', async () => {
    const repo = findRepoRoot(__dirname);
    const { argv } = mcpBackendArgv(
      ['node', 'index.ts', '--config', path.join(repo, 'app-config.yaml')],
      { MCP_TOKEN: TOKEN },
      repo,
    );
    const config = await ConfigSources.toConfig(
      ConfigSources.default({
        argv,
        rootDir: repo,
        env: {},
        substitutionFunc: async name =>
          name === 'MCP_TOKEN' ? TOKEN : undefined,
      }),
    );
    expect(config.get('backend.auth.externalAccess')).toEqual([
      {
        type: 'static',
        options: { token: TOKEN, subject: 'mcp-clients' },
        accessRestrictions: [
          { plugin: 'mcp-actions' },
          { plugin: 'flux-bootstrap' },
        ],
      },
    ]);
    expect(config.getStringArray('backend.actions.pluginSources')).toEqual([
      'flux-bootstrap',
    ]);
    config.close();
  });
});

describe('redisBackendArgv', () => {
  const root = '/repo';
  const redisUrl = 'redis://:pw@127.0.0.1:6379';

  it('changes nothing without REDIS_URL', () => {
    const argv = ['node', 'index.ts', '--config', 'a.yaml'];
    expect(redisBackendArgv(argv, {}, root)).toEqual({ argv });
  });

  it('layers app-config.redis.yaml after the given files (and the PostgreSQL overlay), with the address but not the password', () => {
    const pg = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml'],
      {
        POSTGRES_HOST: 'db',
        POSTGRES_PORT: '5432',
        POSTGRES_USER: 'u',
        POSTGRES_PASSWORD: 'p',
      },
      root,
    );
    expect(redisBackendArgv(pg.argv, { REDIS_URL: redisUrl }, root)).toEqual({
      argv: [
        'node',
        'index.ts',
        '--config',
        'a.yaml',
        '--config',
        path.join(root, 'app-config.postgres.yaml'),
        '--config',
        path.join(root, 'app-config.redis.yaml'),
      ],
      redis: 'redis://127.0.0.1:6379',
    });
  });

  it('refuses a REDIS_URL that is not a redis:// URL, naming the variable and not echoing the value', () => {
    expect(() =>
      redisBackendArgv(
        ['node'],
        { REDIS_URL: 'http://secret@redis:6379' },
        root,
      ),
    ).toThrow('REDIS_URL must be a redis:// or rediss:// URL, not http://');
    let message = '';
    try {
      redisBackendArgv(['node'], { REDIS_URL: 'not a url with s3cret' }, root);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^REDIS_URL must be/);
    expect(message).not.toContain('s3cret');
    expect(describeRedisUrl('rediss://user:s3cret@cache.example:6380/2')).toBe(
      'rediss://cache.example:6380/2',
    );
  });

  it('the committed Redis overlay reads REDIS_URL into backend.cache, and the PostgreSQL overlay turns task recovery on', () => {
    const repo = findRepoRoot(__dirname);
    const redis = fs.readFileSync(
      path.join(repo, 'app-config.redis.yaml'),
      'utf8',
    );
    expect(redis).toMatch(/store: redis/);
    expect(redis).toContain('connection: ${REDIS_URL}');
    const pg = fs.readFileSync(
      path.join(repo, 'app-config.postgres.yaml'),
      'utf8',
    );
    expect(pg).toMatch(/taskRecovery:\n\s+enabled: true/);
  });
});

describe('bitbucketAuthBackendArgv', () => {
  const root = '/repo';
  const SECRET = 'client-secret-canary-5c1f0e';
  const env = {
    AUTH_BITBUCKET_SERVER_CLIENT_ID: 'backstage',
    AUTH_BITBUCKET_SERVER_CLIENT_SECRET: SECRET,
    BITBUCKET_HOST: 'bitbucket.example.com',
  };

  it('changes nothing without AUTH_BITBUCKET_SERVER_CLIENT_ID: the provider stays off', () => {
    const argv = ['node', 'index.ts', '--config', 'a.yaml'];
    expect(bitbucketAuthBackendArgv(argv, {}, root)).toEqual({ argv });
    expect(
      bitbucketAuthBackendArgv(
        argv,
        { AUTH_BITBUCKET_SERVER_CLIENT_SECRET: SECRET },
        root,
      ),
    ).toEqual({ argv });
  });

  it('layers app-config.bitbucket-auth.yaml, the host from BITBUCKET_HOST or AUTH_BITBUCKET_SERVER_HOST', () => {
    const argv = ['node', 'index.ts', '--config', 'a.yaml'];
    expect(bitbucketAuthBackendArgv(argv, env, root)).toEqual({
      argv: [
        ...argv,
        '--config',
        path.join(root, 'app-config.bitbucket-auth.yaml'),
      ],
      host: 'bitbucket.example.com',
    });
    expect(
      bitbucketAuthBackendArgv(
        argv,
        {
          ...env,
          AUTH_BITBUCKET_SERVER_HOST: 'bitbucket.example.com:8443/bitbucket/',
        },
        root,
      ).host,
    ).toBe('bitbucket.example.com:8443/bitbucket');
  });

  it('refuses half a configuration or a URL for a host, naming the variables and never the secret', () => {
    const messages: string[] = [];
    for (const bad of [
      { ...env, AUTH_BITBUCKET_SERVER_CLIENT_SECRET: '' },
      { ...env, BITBUCKET_HOST: '' },
      { ...env, AUTH_BITBUCKET_SERVER_HOST: 'https://bitbucket.example.com' },
    ]) {
      try {
        bitbucketAuthBackendArgv(['node'], bad, root);
        messages.push('no error');
      } catch (e) {
        messages.push((e as Error).message);
      }
    }
    expect(messages[0]).toBe(
      'AUTH_BITBUCKET_SERVER_CLIENT_ID is set, so the backend signs users in to Bitbucket Server, but AUTH_BITBUCKET_SERVER_CLIENT_SECRET is not set',
    );
    expect(messages[1]).toMatch(
      /^AUTH_BITBUCKET_SERVER_CLIENT_ID is set, but neither AUTH_BITBUCKET_SERVER_HOST nor BITBUCKET_HOST/,
    );
    expect(messages[2]).toMatch(
      /^AUTH_BITBUCKET_SERVER_HOST must be host\[:port\]\[\/context-path\] without a scheme/,
    );
    for (const m of messages) expect(m).not.toContain(SECRET);
  });

  it('the committed overlay, loaded as the backend loads its config, configures auth.providers.bitbucketServer from the variables', async () => {
    const repo = findRepoRoot(__dirname);
    const { argv, host } = bitbucketAuthBackendArgv(
      ['node', 'index.ts', '--config', path.join(repo, 'app-config.yaml')],
      env,
      repo,
    );
    const vars: Record<string, string | undefined> = {
      ...env,
      AUTH_BITBUCKET_SERVER_HOST: host,
    };
    const config = await ConfigSources.toConfig(
      ConfigSources.default({
        argv,
        rootDir: repo,
        env: {},
        substitutionFunc: async name => vars[name],
      }),
    );
    expect(config.get('auth.providers.bitbucketServer')).toEqual({
      development: {
        host: 'bitbucket.example.com',
        clientId: 'backstage',
        clientSecret: SECRET,
      },
    });
    // Guest sign-in stays.
    expect(config.get('auth.providers.guest')).toEqual({});
    config.close();
  });
});
