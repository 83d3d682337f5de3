import { spawn } from 'node:child_process';
import { OperationAbortedError } from '../util/errors';

/** Result of one finished process. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program (never through a shell) in its own process group, so that a timeout or an
 * abort also ends the ssh child git starts. Output is capped.
 */
export function runProcess(
  command: string,
  args: string[],
  options: {
    env: NodeJS.ProcessEnv;
    cwd?: string;
    timeoutMs: number;
    signal?: AbortSignal;
    what: string;
  },
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new OperationAbortedError(`Cancelled before ${options.what}`));
      return;
    }
    const child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const max = 4 * 1024 * 1024;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < max) stdout += d.toString('utf8');
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < max) stderr += d.toString('utf8');
    });
    let ended: Error | undefined;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      ended = new Error(
        `timed out after ${options.timeoutMs} ms while ${options.what}`,
      );
      killGroup();
    }, options.timeoutMs);
    const onAbort = () => {
      ended = new OperationAbortedError(`Cancelled while ${options.what}`);
      killGroup();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', e => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', code => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (ended) reject(ended);
      else resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}
