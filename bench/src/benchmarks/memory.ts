import type { Benchmark } from '../lib/types';
export const memoryBenchmark: Benchmark = { id: 'memory', title: 'memory', async run() { throw new Error('not yet'); } };
