import type { BaselineRev } from './baseline';
import type { BenchResult } from './report';

export interface BenchContext {
  /** Measured runs requested with --runs (each benchmark has its own default). */
  runs?: number;
  /**
   * `--smoke`: one round of everything (the test suite's check that every benchmark still runs);
   * the figures mean nothing and are never written to the docs.
   */
  smoke?: boolean;
  /**
   * `--baseline <git-rev>`, resolved: measure that commit's engine beside today's in the same
   * rounds (benchmarks with `baseline: true`; load it with `loadBaselineEngine`).
   */
  baseline?: BaselineRev;
  /** Progress line on stderr. */
  log(line: string): void;
}

export type BenchOutcome = Pick<
  BenchResult,
  'oursLabel' | 'peerLabel' | 'rows' | 'method' | 'analysis' | 'baseline'
>;

export interface Benchmark {
  id: string;
  title: string;
  /** Whether it measures a `--baseline` engine beside today's. */
  baseline?: boolean;
  run(ctx: BenchContext): Promise<BenchOutcome>;
}
