import { spawn } from 'node:child_process';
import { OperationAbortedError } from '../util/errors';

/** Result of one finished process. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/**
 * Runs a program (never through a shell) in its own process group, so that a timeout or an
 * abort also ends the ssh child git starts. Output is capped.
 */
export function runProcess(
  command: string,
  args: string[],
  options: {
    env: NodeJS.ProcessEnv;
    timeoutMs: number;
    signal?: AbortSignal;
    what: string;
  },
): Promise<ProcessResult> {
  const { signal, what, timeoutMs } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new OperationAbortedError(`Cancelled before ${what}`));
      return;
    }
    const child = spawn(command, args, {
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const output = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream].on('data', (d: Buffer) => {
        if (output[stream].length < MAX_OUTPUT)
          output[stream] += d.toString('utf8');
      });
    }
    let ended: Error | undefined;
    const end = (error: Error) => {
      ended = error;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(
      () => end(new Error(`timed out after ${timeoutMs} ms while ${what}`)),
      timeoutMs,
    );
    const onAbort = () =>
      end(new OperationAbortedError(`Cancelled while ${what}`));
    signal?.addEventListener('abort', onAbort, { once: true });
    const settle = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', e => {
      settle();
      reject(e);
    });
    child.on('close', code => {
      settle();
      if (ended) reject(ended);
      else resolve({ code: code ?? -1, ...output });
    });
  });
}
