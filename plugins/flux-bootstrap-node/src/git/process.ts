import { spawn } from 'node:child_process';
import { OperationAbortedError } from '../util/errors';

/** Result of one finished process. */
export interface ProcessResult {
  code: number;
  stdout: string;
  stderr: string;
}

const MAX_OUTPUT = 4 * 1024 * 1024;

/** Runs a program (no shell) in its own process group: a timeout or abort also ends git's ssh child. */
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
    const timeout = AbortSignal.timeout(timeoutMs);
    const stop = AbortSignal.any(signal ? [signal, timeout] : [timeout]);
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    stop.addEventListener('abort', kill, { once: true });
    child.on('error', e => {
      stop.removeEventListener('abort', kill);
      reject(e);
    });
    child.on('close', code => {
      stop.removeEventListener('abort', kill);
      if (signal?.aborted)
        reject(new OperationAbortedError(`Cancelled while ${what}`));
      else if (timeout.aborted)
        reject(new Error(`timed out after ${timeoutMs} ms while ${what}`));
      else resolve({ code: code ?? -1, ...output });
    });
  });
}
