import type { BenchResult } from './report';

export interface BenchContext {
  /** Measured runs requested with --runs (each benchmark has its own default). */
  runs?: number;
  /**
   * `--smoke`: one round of everything (the test suite's check that every benchmark still runs);
   * the figures mean nothing and are never written to the docs.
   */
  smoke?: boolean;
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
