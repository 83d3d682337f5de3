import fs from 'node:fs';
import path from 'node:path';
import {
  freePort,
  makeTempDir,
  ManagedProcess,
  removeDir,
  run,
  spawnManaged,
  waitFor,
  writeFileMode,
} from '../common';

/** A throw-away Redis server (Debian's `redis-server`) on 127.0.0.1. */
export interface TestRedis {
  host: string;
  port: number;
  /** `redis://[:password@]127.0.0.1:port`, as `backend.cache.connection` takes it. */
  url: string;
  /** The `requirepass` password, when started with one. */
  password?: string;
  /** PID of the running server (changes after {@link TestRedis.start}). */
  pid(): number;
  /** True while the server process runs. */
  running(): boolean;
  /** Runs one command with `redis-cli` (password through `REDISCLI_AUTH`, never on the command line). */
  command(...args: string[]): Promise<string>;
  /** Keys matching a glob pattern (`SCAN`, so a big keyspace does not block the server). */
  keys(pattern?: string): Promise<string[]>;
  /** Stops the server (SIGTERM, no save) but keeps its port and folder: {@link TestRedis.start} brings it back empty. */
  kill(): Promise<void>;
  /** Starts the server again on the same port (after {@link TestRedis.kill}). */
  start(): Promise<void>;
  /** Server output so far (for diagnostics). */
  log(): string;
  /** Stops the server and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** Finds `redis-server` (`REDIS_SERVER_BIN`, else /usr/bin/redis-server from Debian's `redis-server`). */
export function findRedisServer(): string {
  const bin = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
  if (!fs.existsSync(bin)) {
    throw new Error(
      `${bin} is missing: install Debian's "redis-server" (test/peers/scripts/install-system-deps.sh does)`,
    );
  }
  return bin;
}

/**
 * Starts a private Redis on 127.0.0.1 at a free port: no persistence (no RDB snapshots, no AOF),
 * no Unix socket, protected mode, optionally `requirepass` (written to a 0600 config file, so the
 * password is on no command line). It runs under `setpriv --pdeathsig KILL` like the other peers
 * and is stopped by its own PID.
 */
export async function startTestRedis(
  opts: { password?: string } = {},
): Promise<TestRedis> {
  const bin = findRedisServer();
  const cli = path.join(path.dirname(bin), 'redis-cli');
  const dir = makeTempDir('flux-test-redis');
  const port = await freePort();
  const conf = path.join(dir, 'redis.conf');
  writeFileMode(
    conf,
    [
      'bind 127.0.0.1',
      `port ${port}`,
      'protected-mode yes',
      `dir ${dir}`,
      'save ""',
      'appendonly no',
      'daemonize no',
      'loglevel notice',
      'logfile ""',
      ...(opts.password ? [`requirepass ${opts.password}`] : []),
      '',
    ].join('\n'),
    0o600,
  );
  let server: ManagedProcess | undefined;
  const cliEnv = {
    ...process.env,
    ...(opts.password ? { REDISCLI_AUTH: opts.password } : {}),
  };
  const command = async (...args: string[]) => {
    const r = await run(
      cli,
      ['-h', '127.0.0.1', '-p', String(port), '--no-raw', ...args],
      { env: cliEnv, timeoutMs: 10_000 },
    );
    return r.stdout.trim();
  };
  const rawCommand = async (...args: string[]) =>
    (
      await run(
        cli,
        ['-h', '127.0.0.1', '-p', String(port), '--raw', ...args],
        {
          env: cliEnv,
          timeoutMs: 10_000,
        },
      )
    ).stdout;

  const start = async () => {
    if (server && !server.exited()) return;
    server = spawnManaged(bin, [conf], { cwd: dir });
    await waitFor(
      `redis-server on 127.0.0.1:${port}`,
      async () => {
        if (server!.exited())
          throw new Error(`redis-server exited: ${server!.output()}`);
        return (await rawCommand('PING')).trim() === 'PONG';
      },
      {
        timeoutMs: 20_000,
        intervalMs: 50,
        diagnostics: () => server!.output(),
      },
    );
  };
  const kill = async () => {
    if (server && !server.exited()) await server.stop(5000);
  };

  try {
    await start();
  } catch (e) {
    await kill();
    removeDir(dir);
    throw e;
  }
  const auth = opts.password ? `:${encodeURIComponent(opts.password)}@` : '';
  let stopped = false;
  return {
    host: '127.0.0.1',
    port,
    url: `redis://${auth}127.0.0.1:${port}`,
    password: opts.password,
    pid: () => server?.pid ?? -1,
    running: () => !!server && !server.exited(),
    command,
    async keys(pattern = '*') {
      const out: string[] = [];
      let cursor = '0';
      do {
        const lines = (
          await rawCommand('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000')
        )
          .split('\n')
          .filter(l => l !== '');
        cursor = lines[0] ?? '0';
        out.push(...lines.slice(1));
      } while (cursor !== '0');
      return out.sort();
    },
    kill,
    start,
    log: () => server?.output() ?? '',
    async stop() {
      if (stopped) return;
      stopped = true;
      await kill();
      removeDir(dir);
    },
  };
}
