import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Small process helpers for the Kubernetes peers. Every child is tracked so that a crashing test
 * process does not leave an apiserver or etcd behind: on exit we SIGKILL what we started (by PID).
 */

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let exitHookInstalled = false;

function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) {
      try {
        if (child.pid && child.exitCode === null)
          process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) {
      try {
        fs.rmSync(dir, { recursive: true, force: true });
      } catch {
        // best effort
      }
    }
  });
}

/** Registers a temp dir for removal on exit and records the owning PID (see sweepStaleTempDirs). */
export function registerTempDir(dir: string): void {
  installExitHook();
  tempDirs.add(dir);
  fs.writeFileSync(path.join(dir, 'owner.pid'), String(process.pid));
}

/**
 * Removes `<tmp>/<prefix>*` dirs left behind by test processes that were killed before they could
 * clean up: only dirs whose recorded owner PID no longer exists and that are older than a minute.
 */
export function sweepStaleTempDirs(prefix: string, minAgeMs = 60_000): void {
  const tmp = os.tmpdir();
  let entries: string[];
  try {
    entries = fs.readdirSync(tmp).filter(e => e.startsWith(prefix));
  } catch {
    return;
  }
  for (const e of entries) {
    const dir = path.join(tmp, e);
    try {
      const pid = Number(fs.readFileSync(path.join(dir, 'owner.pid'), 'utf8'));
      if (
        !pid ||
        Date.now() - fs.statSync(dir).mtimeMs < minAgeMs ||
        isAlive(pid)
      )
        continue;
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // not ours to judge (no owner.pid) or already gone
    }
  }
}

/** Whether a process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}

export function removeTempDir(dir: string): void {
  tempDirs.delete(dir);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === 'object') resolve(addr.port);
        else reject(new Error('could not allocate a port'));
      });
    });
  });
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The last lines of stdout+stderr (for error messages). */
  tail(lines?: number): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>;
  isRunning(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the process is gone. */
  kill(graceMs?: number): Promise<void>;
}

const SETPRIV = '/usr/bin/setpriv';
let setprivWorks: boolean | undefined;

/**
 * Wraps a command so the kernel SIGKILLs it when the process that started it dies, even by
 * SIGKILL (util-linux `setpriv --pdeathsig KILL`, which then execs the command: same PID).
 * Without it, a test runner killed from outside leaves etcd/kube-apiserver running.
 */
function withParentDeathSignal(
  command: string,
  args: string[],
): [string, string[]] {
  if (setprivWorks === undefined) {
    setprivWorks = fs.existsSync(SETPRIV);
  }
  return setprivWorks
    ? [SETPRIV, ['--pdeathsig', 'KILL', '--', command, ...args]]
    : [command, args];
}

export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; logFile?: string } = {},
): ManagedProcess {
  installExitHook();
  const [file, argv] = withParentDeathSignal(command, args);
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const buffer: string[] = [];
  const log = opts.logFile
    ? fs.createWriteStream(opts.logFile, { flags: 'a' })
    : undefined;
  const onData = (chunk: Buffer) => {
    log?.write(chunk);
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      buffer.push(line);
      if (buffer.length > 400) buffer.shift();
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let spawnError: Error | undefined;
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
  }>(resolve => {
    child.once('error', err => {
      spawnError = err;
      buffer.push(`${name}: ${err.message}`);
      live.delete(child);
      log?.end();
      resolve({ code: -1, signal: null });
    });
    child.once('exit', (code, signal) => {
      live.delete(child);
      log?.end();
      resolve({ code, signal });
    });
  });
  const isRunning = () =>
    !spawnError && child.exitCode === null && child.signalCode === null;
  return {
    name,
    child,
    exited,
    isRunning,
    tail(lines = 30) {
      return buffer.slice(-lines).join('\n');
    },
    async kill(graceMs = 3000) {
      if (!isRunning()) return;
      try {
        process.kill(child.pid!, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          if (isRunning()) process.kill(child.pid!, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Runs a command to completion; rejects with its output when it fails. */
export function run(
  command: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', d => (stdout += d));
    child.stderr.on('data', d => (stderr += d));
    child.once('error', reject);
    child.once('close', code => {
      if (code === 0) resolve({ stdout, stderr });
      else
        reject(
          Object.assign(
            new Error(
              `${command} ${args[0] ?? ''} exited with ${code}: ${
                stderr.trim() || stdout.trim()
              }`,
            ),
            { code, stdout, stderr },
          ),
        );
    });
    // A child may exit without reading its input (EPIPE): its exit code tells how it went.
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));
