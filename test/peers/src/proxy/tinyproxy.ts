import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir } from '../common/fs';
import { canConnect, freePort } from '../common/net';
import { spawnManaged, waitFor } from '../common/process';

export const TINYPROXY_BINARY = '/usr/bin/tinyproxy';

/** Options of {@link startTinyproxy}. */
export interface TinyproxyOptions {
  /** Require `Proxy-Authorization: Basic` with these credentials (tinyproxy's `BasicAuth`). */
  basicAuth?: { user: string; password: string };
}

/** One request the proxy handled: a tunnel (`CONNECT host:port`) or a proxied `GET http://…`. */
export interface TinyproxyRequest {
  method: string;
  /** `host:port` of a CONNECT, the absolute URL otherwise. */
  target: string;
}

/** A running tinyproxy (Debian's `tinyproxy`), a forward proxy on 127.0.0.1. */
export interface Tinyproxy {
  port: number;
  /** `http://127.0.0.1:PORT`, without credentials. */
  url: string;
  /** The URL clients use: with `user:password@` when BasicAuth is on. */
  proxyUrl: string;
  /** tinyproxy's own log file (LogLevel Info). */
  logFile: string;
  /** The whole log so far. */
  log(): string;
  /** Requests logged since the start, or since `from` (a `mark()`). */
  requests(from?: number): TinyproxyRequest[];
  /** A position in the log, for `requests(from)`. */
  mark(): number;
  stop(): Promise<void>;
}

/**
 * Starts tinyproxy in the foreground on a free loopback port, with its config and log in a temp
 * folder (removed by `stop()`, which stops only this process). CONNECT is allowed to every port
 * (no `ConnectPort` line), only 127.0.0.1 may connect.
 */
export async function startTinyproxy(
  opts: TinyproxyOptions = {},
): Promise<Tinyproxy> {
  if (!fs.existsSync(TINYPROXY_BINARY)) {
    throw new Error(
      `${TINYPROXY_BINARY} is missing: install Debian's tinyproxy (test/peers/scripts/install-system-deps.sh)`,
    );
  }
  const dir = makeTempDir('flux-test-tinyproxy');
  const logFile = path.join(dir, 'tinyproxy.log');
  const auth = opts.basicAuth;
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const config = path.join(dir, 'tinyproxy.conf');
    fs.writeFileSync(
      config,
      [
        `Port ${port}`,
        'Listen 127.0.0.1',
        'Allow 127.0.0.1',
        'Timeout 120',
        'MaxClients 100',
        `LogFile "${logFile}"`,
        'LogLevel Info',
        `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
        'DisableViaHeader Yes',
        ...(auth ? [`BasicAuth ${auth.user} ${auth.password}`] : []),
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const proc = spawnManaged(TINYPROXY_BINARY, ['-d', '-c', config]);
    try {
      await waitFor('tinyproxy to listen', () => canConnect(port), {
        timeoutMs: 10_000,
        diagnostics: () => proc.output(),
      });
    } catch (e) {
      await proc.stop();
      if (attempt < 3) continue; // the port was taken meanwhile
      removeDir(dir);
      throw e;
    }
    const url = `http://127.0.0.1:${port}`;
    const log = () =>
      fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    return {
      port,
      url,
      proxyUrl: auth
        ? `http://${encodeURIComponent(auth.user)}:${encodeURIComponent(
            auth.password,
          )}@127.0.0.1:${port}`
        : url,
      logFile,
      log,
      mark: () => log().length,
      requests: (from = 0) =>
        [
          ...log()
            .slice(from)
            .matchAll(/\]: Request \(file descriptor \d+\): (\S+) (\S+) HTTP/g),
        ].map(m => ({ method: m[1], target: m[2] })),
      async stop() {
        await proc.stop();
        removeDir(dir);
      },
    };
  }
}
