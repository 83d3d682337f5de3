import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import {
  freePort,
  ManagedProcess,
  run,
  spawnManaged,
  waitFor,
} from '@flux-bootstrap/test-peers';

/** A throw-away PostgreSQL cluster for the suite (Debian's `postgresql` binaries). */
export interface TestPostgres {
  host: string;
  port: number;
  user: string;
  password: string;
  /** The server process (its own PID only). */
  pid: number;
  /** Runs one query against database `database` (default `postgres`). */
  query<T = Record<string, unknown>>(
    sql: string,
    params?: unknown[],
    database?: string,
  ): Promise<T[]>;
  /** Names of the databases (Backstage creates one per plugin, e.g. `backstage_plugin_scaffolder`). */
  databases(): Promise<string[]>;
  /** Server log so far, for diagnostics. */
  log(): string;
  stop(): Promise<void>;
}

/** Finds the newest `/usr/lib/postgresql/<major>/bin` holding initdb and postgres (or `POSTGRES_BIN_DIR`). */
export function findPostgresBinDir(): string {
  const explicit = process.env.POSTGRES_BIN_DIR;
  if (explicit) return explicit;
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter(v => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (!majors.length) {
    throw new Error(
      'PostgreSQL is not installed (Debian package "postgresql"; test/peers/scripts/install-system-deps.sh installs it)',
    );
  }
  return path.join(root, majors[0], 'bin');
}

/**
 * Starts a private PostgreSQL cluster: `initdb` into a temp dir, then `postgres` listening on
 * 127.0.0.1 at a free port (no Unix socket outside the temp dir), password authentication for a
 * superuser (Backstage needs CREATEDB: one database per plugin). As root the server runs as the
 * `postgres` system user (PostgreSQL refuses to run as root). The server is a direct child run
 * through `setpriv --pdeathsig KILL`, so it dies with the test process even on SIGKILL. Durability
 * is switched off (fsync, synchronous_commit): this cluster only lives for one test run, and a
 * backend crash — the thing the suite tests — does not lose committed data without fsync.
 */
export async function startTestPostgres(
  opts: { log?: (line: string) => void } = {},
): Promise<TestPostgres> {
  const bin = findPostgresBinDir();
  const isRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-reliability-pg-'));
  const dataDir = path.join(dir, 'data');
  const user = 'backstage';
  const password = crypto.randomBytes(18).toString('base64url');
  let ids: { uid: number; gid: number } | undefined;
  if (isRoot) {
    const id = await run('id', ['-u', 'postgres'], { check: false });
    const gid = await run('id', ['-g', 'postgres'], { check: false });
    if (id.code !== 0) {
      throw new Error(
        'running as root needs the "postgres" system user (Debian package postgresql)',
      );
    }
    ids = { uid: Number(id.stdout.trim()), gid: Number(gid.stdout.trim()) };
    fs.chownSync(dir, ids.uid, ids.gid);
  }
  fs.chmodSync(dir, 0o700);
  const pwFile = path.join(dir, 'pwfile');
  fs.writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  if (ids) fs.chownSync(pwFile, ids.uid, ids.gid);

  let server: ManagedProcess | undefined;
  const stop = async () => {
    if (server && !server.exited()) {
      // SIGINT = "fast" shutdown: disconnect clients, no checkpoint wait beyond what is needed.
      server.child.kill('SIGINT');
      await waitFor('PostgreSQL to stop', () => server!.exited(), {
        timeoutMs: 15_000,
        intervalMs: 50,
      }).catch(() => server!.stop(0));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    await run(
      path.join(bin, 'initdb'),
      [
        '-D',
        dataDir,
        '-U',
        user,
        '--pwfile',
        pwFile,
        '--auth',
        'scram-sha-256',
        '--encoding',
        'UTF8',
        '--locale',
        'C',
        '--no-sync',
      ],
      { uid: ids?.uid, gid: ids?.gid, cwd: dir, timeoutMs: 120_000 },
    );
    fs.rmSync(pwFile, { force: true });
    const port = await freePort();
    const args = [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dir}`,
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
      '-c',
      'shared_buffers=32MB',
    ];
    const postgres = path.join(bin, 'postgres');
    // setpriv: drop to the postgres user, and die with this process (pdeathsig is set after the
    // credential change, so it survives it).
    server = ids
      ? spawnManaged(
          '/usr/bin/setpriv',
          [
            `--reuid=${ids.uid}`,
            `--regid=${ids.gid}`,
            '--clear-groups',
            '--pdeathsig',
            'KILL',
            '--',
            postgres,
            ...args,
          ],
          { cwd: dir },
        )
      : spawnManaged(postgres, args, { cwd: dir });
    const query = async <T>(
      sql: string,
      params: unknown[] = [],
      database = 'postgres',
    ) => {
      const client = new Client({
        host: '127.0.0.1',
        port,
        user,
        password,
        database,
      });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows as T[];
      } finally {
        await client.end();
      }
    };
    await waitFor(
      'PostgreSQL to accept connections',
      async () => {
        if (server!.exited())
          throw new Error(`postgres exited: ${server!.output()}`);
        await query('select 1');
        return true;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 200,
        diagnostics: () => server!.output(),
      },
    );
    opts.log?.(
      `PostgreSQL ${path.basename(
        path.dirname(bin),
      )} at 127.0.0.1:${port} (data in ${dataDir})`,
    );
    return {
      host: '127.0.0.1',
      port,
      user,
      password,
      pid: server.pid,
      query,
      async databases() {
        const rows = await query<{ datname: string }>(
          'select datname from pg_database where not datistemplate order by datname',
        );
        return rows.map(r => r.datname);
      },
      log: () => server!.output(),
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
