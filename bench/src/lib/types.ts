import type { BenchResult } from './report';

export interface BenchContext {
  /** Measured runs requested with --runs (each benchmark has its own default). */
  runs?: number;
  /** Progress line on stderr. */
  log(line: string): void;
}

export type BenchOutcome = Pick<
  BenchResult,
  'oursLabel' | 'peerLabel' | 'rows' | 'method' | 'analysis'
>;

export interface Benchmark {
  id: string;
  title: string;
  run(ctx: BenchContext): Promise<BenchOutcome>;
}
