import { spawn, SpawnOptions } from 'node:child_process';

/** Median of a non-empty sample (mean of the two middle values for an even count). */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A summarised sample. */
export interface Measure {
  median: number;
  min: number;
  max: number;
  n: number;
  unit: 'ms' | 'MiB' | 'count';
}

export function summarize(xs: number[], unit: Measure['unit'] = 'ms'): Measure {
  return {
    median: median(xs),
    min: Math.min(...xs),
    max: Math.max(...xs),
    n: xs.length,
    unit,
  };
}

/** Milliseconds since `start` (from {@link now}). */
export function now(): bigint {
  return process.hrtime.bigint();
}
export function since(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Runs `fn` once and returns its wall time in ms (and its value). */
export async function timed<T>(
  fn: () => Promise<T> | T,
): Promise<{ ms: number; value: T }> {
  const start = now();
  const value = await fn();
  return { ms: since(start), value };
}

/**
 * Measures two contenders `runs` times, alternating which goes first in each round so that
 * drifting machine load hits both sides alike. `warmup` rounds are run and discarded first.
 */
export async function paired(
  runs: number,
  warmup: number,
  ours: (round: number) => Promise<number>,
  peer: (round: number) => Promise<number>,
): Promise<{ ours: number[]; peer: number[] }> {
  const out = { ours: [] as number[], peer: [] as number[] };
  for (let i = -warmup; i < runs; i++) {
    let a: number;
    let b: number;
    if (((i % 2) + 2) % 2 === 0) {
      a = await ours(i);
      b = await peer(i);
    } else {
      b = await peer(i);
      a = await ours(i);
    }
    if (i >= 0) {
      out.ours.push(a);
      out.peer.push(b);
    }
  }
  return out;
}

/**
 * Measures several contenders `runs` times each, rotating which goes first from round to round
 * (round i starts with contender i mod n), so that drifting machine load hits all alike.
 * `warmup` rounds are run and discarded first. Returns one sample per contender, in order.
 */
export async function rotated(
  runs: number,
  warmup: number,
  contenders: ((round: number) => Promise<number>)[],
): Promise<number[][]> {
  const out = contenders.map(() => [] as number[]);
  const n = contenders.length;
  for (let i = -warmup; i < runs; i++) {
    const first = ((i % n) + n) % n;
    const got: number[] = new Array(n);
    for (let k = 0; k < n; k++) {
      const c = (first + k) % n;
      got[c] = await contenders[c](i);
    }
    if (i >= 0) got.forEach((v, c) => out[c].push(v));
  }
  return out;
}

export interface CommandResult {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion and returns its wall time, measured from spawn to exit (so it
 * includes the process start, as a user running the tool would see it).
 */
export function runTimed(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string } = {},
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const start = now();
    const child = spawn(cmd, args, {
      ...opts,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', d => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', d => (stderr += d));
    child.on('error', reject);
    child.on('close', code =>
      resolve({ ms: since(start), code, stdout, stderr }),
    );
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the command may exit without reading its input
      child.stdin.end(opts.input);
    }
  });
}

/** Like {@link runTimed}, but throws with the command's output when it exits non-zero. */
export async function runChecked(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { input?: string } = {},
): Promise<CommandResult> {
  const r = await runTimed(cmd, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `${cmd} ${args.join(' ')} exited ${r.code}:\n${(
        r.stderr || r.stdout
      ).slice(-2000)}`,
    );
  }
  return r;
}

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '—';
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 100) return `${ms.toFixed(0)} ms`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtMeasure(m: Measure | undefined): string {
  if (!m) return '—';
  if (m.unit === 'count') {
    const n = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
    return m.n > 1 ? `${n(m.median)} (${n(m.min)}–${n(m.max)})` : n(m.median);
  }
  if (m.unit === 'MiB') {
    return m.n > 1
      ? `${m.median.toFixed(0)} MiB (${m.min.toFixed(0)}–${m.max.toFixed(0)})`
      : `${m.median.toFixed(0)} MiB`;
  }
  return m.n > 1
    ? `${fmtMs(m.median)} (${fmtMs(m.min)}–${fmtMs(m.max)})`
    : fmtMs(m.median);
}
