/* eslint-disable no-console */
import os from 'node:os';
import path from 'node:path';
import { BaselineRev, resolveBaselineRev } from './lib/baseline';
import { releaseAll } from './lib/cleanup';
import {
  BenchResult,
  consoleTable,
  machineInfo,
  writeDocs,
} from './lib/report';
import type { Benchmark } from './lib/types';
import { installBenchmark } from './benchmarks/install';
import { manifestsBenchmark } from './benchmarks/manifests';
import { keysBenchmark } from './benchmarks/keys';
import { pushBenchmark } from './benchmarks/push';
import { statusBenchmark } from './benchmarks/status';
import { memoryBenchmark } from './benchmarks/memory';
import { replicasBenchmark } from './benchmarks/replicas';
import { fleetPageBenchmark } from './benchmarks/fleetPage';
import { fleetBenchmark } from './benchmarks/fleet';

const BENCHMARKS: Benchmark[] = [
  installBenchmark,
  manifestsBenchmark,
  keysBenchmark,
  pushBenchmark,
  statusBenchmark,
  fleetPageBenchmark,
  fleetBenchmark,
  memoryBenchmark,
  replicasBenchmark,
];

const USAGE = `Usage: npm run bench [-- options]
  --only <ids>     comma-separated subset of: ${BENCHMARKS.map(b => b.id).join(
    ', ',
  )}
  --runs <n>       measured runs per case (default: per benchmark)
  --write-docs     rewrite the sections of docs/benchmarks.md that were run
  --baseline <rev> also measure the engine of that git commit, in the same rounds and against the
                   same peers (${BENCHMARKS.filter(b => b.baseline)
                     .map(b => b.id)
                     .join(', ')}; e.g. 81ac4a9, the engine before issue 14)
  --smoke          one round of each benchmark, to check that they run (no figures to keep)
  --help`;

function parseArgs(argv: string[]) {
  const out = {
    only: undefined as string[] | undefined,
    runs: undefined as number | undefined,
    writeDocs: false,
    smoke: false,
    baseline: undefined as BaselineRev | undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const eq = a.indexOf('=');
      if (eq >= 0) return a.slice(eq + 1);
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (a === '--write-docs') out.writeDocs = true;
    else if (a === '--smoke') out.smoke = true;
    else if (a.startsWith('--baseline'))
      out.baseline = resolveBaselineRev(value());
    else if (a.startsWith('--only'))
      out.only = value()
        .split(',')
        .map(s => s.trim())
        .filter(Boolean);
    else if (a.startsWith('--runs')) {
      const n = Number(value());
      if (!Number.isInteger(n) || n < 1 || n > 100)
        throw new Error('--runs must be an integer between 1 and 100');
      out.runs = n;
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (out.smoke && out.writeDocs)
    throw new Error('--smoke figures are not written to the docs');
  if (
    out.baseline &&
    !BENCHMARKS.some(b => b.baseline && (!out.only || out.only.includes(b.id)))
  )
    throw new Error(
      `--baseline: none of the selected benchmarks measures a baseline (${BENCHMARKS.filter(
        b => b.baseline,
      )
        .map(b => b.id)
        .join(', ')} do)`,
    );
  for (const id of out.only ?? []) {
    if (!BENCHMARKS.some(b => b.id === id))
      throw new Error(`unknown benchmark "${id}"\n${USAGE}`);
  }
  return out;
}

export async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n${sig}: stopping the peers and removing temp folders…`);
    releaseAll(line => console.error(line)).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('uncaughtException', (e: NodeJS.ErrnoException) => {
    console.error(
      `\nUncaught error: ${
        e.stack ?? e
      }\nStopping the peers and removing temp folders…`,
    );
    releaseAll(line => console.error(line)).finally(() => process.exit(1));
  });

  const selected = BENCHMARKS.filter(
    b => !args.only || args.only.includes(b.id),
  );
  const results: BenchResult[] = [];
  let failed = 0;
  for (const b of selected) {
    const machine = machineInfo();
    const started = Date.now();
    console.error(`\n▶ ${b.title}`);
    if (args.baseline && !b.baseline)
      console.error(`  (no baseline comparison in this benchmark)`);
    try {
      const outcome = await b.run({
        runs: args.smoke ? 1 : args.runs,
        smoke: args.smoke,
        baseline: b.baseline ? args.baseline : undefined,
        log: line => console.error(`  ${line}`),
      });
      machine.loadavgEnd = os.loadavg();
      const result: BenchResult = {
        id: b.id,
        title: b.title,
        ...outcome,
        date: new Date(started).toISOString().replace(/\.\d+Z$/, 'Z'),
        machine,
        seconds: (Date.now() - started) / 1000,
      };
      results.push(result);
      console.log(`\n${consoleTable(result)}`);
    } catch (e) {
      failed++;
      console.error(`✖ ${b.title} failed: ${(e as Error).stack ?? e}`);
    } finally {
      await releaseAll(line => console.error(`  ${line}`));
    }
  }
  if (args.writeDocs && results.length) {
    const file = path.join(process.cwd(), 'docs', 'benchmarks.md');
    writeDocs(
      file,
      results,
      BENCHMARKS.map(b => b.id),
    );
    console.error(
      `\nWrote ${path.relative(process.cwd(), file)} (${results
        .map(r => r.id)
        .join(', ')})`,
    );
  }
  const missed = results.flatMap(r =>
    r.rows.filter(x => x.met === false).map(x => `${r.title}: ${x.case}`),
  );
  if (missed.length)
    console.error(`\nGoals missed:\n${missed.map(m => `  - ${m}`).join('\n')}`);
  return failed ? 1 : 0;
}
