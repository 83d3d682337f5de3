import {
  ChildProcess,
  execFile,
  spawn,
  SpawnOptions,
} from 'node:child_process';
import fs from 'node:fs';

/** Result of {@link run}. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string | Buffer;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
  timeoutMs?: number;
  uid?: number;
  gid?: number;
}

/**
 * Runs a program (no shell) and collects its output. Throws on a non-zero exit unless
 * `check: false`; the error message carries the command and stderr (callers pass no secrets
 * on command lines).
 */
export function run(
  file: string,
  args: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        maxBuffer: 64 * 1024 * 1024,
        timeout: opts.timeoutMs ?? 60_000,
        encoding: 'utf8',
        uid: opts.uid,
        gid: opts.gid,
      },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const c = (error as unknown as { code?: unknown }).code;
          code = typeof c === 'number' ? c : 1;
        }
        if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
          reject(new Error(`${file} is not installed or not on PATH`));
          return;
        }
        const result = { code, stdout: String(stdout), stderr: String(stderr) };
        if (code !== 0 && opts.check !== false) {
          reject(
            new Error(
              `${[file, ...args].join(' ')} exited with ${code}${
                error?.killed ? ' (killed: timeout)' : ''
              }: ${String(stderr).trim() || String(stdout).trim()}`,
            ),
          );
          return;
        }
        resolve(result);
      },
    );
    // A child may exit without reading its input (EPIPE): its exit code tells how it went.
    child.stdin?.on('error', () => undefined);
    if (opts.input !== undefined) {
      child.stdin?.end(opts.input);
    } else {
      child.stdin?.end();
    }
  });
}

/** A long-running child process owned by a peer; stopped by its own PID only. */
export interface ManagedProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** Collected stderr+stdout (last 64 KiB), for diagnostics. */
  output(): string;
  /** True once the process has exited. */
  exited(): boolean;
  /** Sends SIGTERM, then SIGKILL after `graceMs`, and waits for the exit. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Kills still-running managed children when this process exits (e.g. a test worker that never called stop). */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const c of running) {
      try {
        c.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * Spawns a long-running process and tracks it. Kills only this PID on stop. Where util-linux
 * `setpriv` exists the program is exec'ed through `setpriv --pdeathsig KILL` (same PID), so it
 * also dies if this Node process is killed without a chance to clean up.
 */
export function spawnManaged(
  file: string,
  args: string[],
  opts: SpawnOptions = {},
): ManagedProcess {
  const [cmd, argv] = fs.existsSync(SETPRIV)
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', file, ...args]]
    : [file, args];
  const child = spawn(cmd, argv, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
  installExitHook();
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  const append = (b: Buffer) => {
    out += b.toString('utf8');
    if (out.length > 65536) out = out.slice(out.length - 65536);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  let hasExited = false;
  const exitPromise = new Promise<void>(resolve => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
    child.once('error', err => {
      append(Buffer.from(`spawn error: ${err.message}\n`));
      hasExited = true;
      resolve();
    });
  });
  if (child.pid === undefined) {
    // 'error' will fire; keep a numeric pid for the type.
  }
  return {
    pid: child.pid ?? -1,
    child,
    output: () => out,
    exited: () => hasExited,
    async stop(graceMs = 3000) {
      if (hasExited || child.pid === undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!hasExited) child.kill('SIGKILL');
      }, graceMs);
      await exitPromise;
      clearTimeout(timer);
    },
  };
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  opts: {
    timeoutMs?: number;
    intervalMs?: number;
    diagnostics?: () => string;
  } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      const extra = opts.diagnostics ? `\n${opts.diagnostics()}` : '';
      throw new Error(
        `timed out waiting for ${what}${
          lastError ? `: ${String(lastError)}` : ''
        }${extra}`,
      );
    }
    await new Promise(r => setTimeout(r, opts.intervalMs ?? 20));
  }
}
