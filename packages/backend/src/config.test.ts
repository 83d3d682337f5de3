import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backendArgv, describeRedisUrl, findRepoRoot } from './config';

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
    expect(backendArgv(argv, {}, root)).toEqual({
      argv,
      database: 'default',
      cache: 'default',
    });
  });

  it('layers app-config.postgres.yaml after the given config files when POSTGRES_HOST is set', () => {
    const { argv, database, cache } = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml', '--config=b.yaml'],
      pgEnv,
      root,
    );
    expect(database).toBe('postgres');
    expect(cache).toBe('default');
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

  it('layers app-config.redis.yaml last when REDIS_URL is set, with or without PostgreSQL', () => {
    const redisUrl = 'redis://:pw@127.0.0.1:6379';
    const both = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml'],
      { ...pgEnv, REDIS_URL: redisUrl },
      root,
    );
    expect(both).toEqual({
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
      database: 'postgres',
      cache: 'redis',
    });
    const alone = backendArgv(
      ['node', 'index.ts', '--config', 'a.yaml'],
      { REDIS_URL: redisUrl },
      root,
    );
    expect(alone.argv.slice(-2)).toEqual([
      '--config',
      path.join(root, 'app-config.redis.yaml'),
    ]);
    expect(alone.database).toBe('default');
  });

  it('refuses a REDIS_URL that is not a redis:// URL, naming the variable and not echoing the value', () => {
    expect(() =>
      backendArgv(['node'], { REDIS_URL: 'http://secret@redis:6379' }, root),
    ).toThrow('REDIS_URL must be a redis:// or rediss:// URL, not http://');
    let message = '';
    try {
      backendArgv(['node'], { REDIS_URL: 'not a url with s3cret' }, root);
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
