import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backendArgv, findRepoRoot } from './config';

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
