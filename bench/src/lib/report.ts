import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { fmtMeasure, Measure } from './stats';

/** One line of a benchmark's table. */
export interface Row {
  case: string;
  /** Our engine's time (or memory). */
  ours: Measure;
  /** The real peer's, measured in the same run. */
  peer?: Measure;
  /** ours.median / peer.median */
  ratio?: number;
  /** The goal in words, e.g. `≤ 0.5× kubectl` or `< 50 ms`. */
  goal?: string;
  /** Whether the goal is met (undefined: no goal on this line). */
  met?: boolean;
  /** `--baseline`: the baseline engine's figure for the same case, measured in the same rounds. */
  baseline?: Measure;
  /** baseline.median / peer.median (the same peer sample as `ratio`). */
  baselineRatio?: number;
}

/** `--baseline`: which older engine was measured beside today's, and how each side is called. */
export interface BaselineInfo {
  /** As given, e.g. `81ac4a9`. */
  rev: string;
  /** Abbreviated commit id. */
  commit: string;
  /** What today's engine and the baseline engine call, for the docs. */
  todayCalls: string;
  baselineCalls: string;
}

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memGiB: number;
  kernel: string;
  node: string;
  loadavgStart: number[];
  loadavgEnd?: number[];
  commit: string;
}

export interface BenchResult {
  id: string;
  title: string;
  /** Column titles. */
  oursLabel: string;
  peerLabel?: string;
  rows: Row[];
  /** How it was measured. */
  method: string[];
  /** Why a goal is missed and what would close it (shown when any row misses). */
  analysis: string[];
  /** Set when the run measured a baseline engine too. */
  baseline?: BaselineInfo;
  date: string;
  machine: MachineInfo;
  /** Seconds the whole benchmark took. */
  seconds: number;
}

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(
      fs.readFileSync('/proc/cpuinfo', 'utf8'),
    );
    if (m) cpuModel = m[1].trim();
  } catch {
    // not Linux
  }
  let nproc = os.cpus().length;
  try {
    nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || nproc;
  } catch {
    // keep os.cpus()
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    // not a checkout
  }
  return {
    cpus: nproc,
    cpuModel,
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    loadavgStart: os.loadavg(),
    commit,
  };
}

export function fmtRatio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}×`;
}

function verdict(met: boolean | undefined): string {
  if (met === undefined) return '';
  return met ? 'met' : 'MISSED';
}

/** Today vs baseline, e.g. `−12 %` (faster today) or `+3 %`. */
export function fmtChange(
  today: Measure,
  baseline: Measure | undefined,
): string {
  if (!baseline || !(baseline.median > 0) || !Number.isFinite(today.median))
    return '—';
  const pct = (today.median / baseline.median - 1) * 100;
  const rounded = Math.round(pct);
  if (rounded === 0) return '±0 %';
  return `${rounded > 0 ? '+' : '−'}${Math.abs(rounded)} %`;
}

function tableLines(r: BenchResult): { header: string[]; body: string[][] } {
  const hasPeer = r.rows.some(x => x.peer);
  const hasBaseline = !!r.baseline && r.rows.some(x => x.baseline);
  const header = ['case', `${r.oursLabel} median (min–max)`];
  if (hasPeer)
    header.push(`${r.peerLabel ?? 'peer'} median (min–max)`, 'ratio');
  if (hasBaseline) {
    header.push(`baseline ${r.baseline!.commit} median (min–max)`);
    if (hasPeer) header.push('baseline ratio');
    header.push('today vs baseline');
  }
  header.push('goal', 'result');
  const body = r.rows.map(x => {
    const line = [x.case, fmtMeasure(x.ours)];
    if (hasPeer) line.push(fmtMeasure(x.peer), fmtRatio(x.ratio));
    if (hasBaseline) {
      line.push(fmtMeasure(x.baseline));
      if (hasPeer) line.push(fmtRatio(x.baselineRatio));
      line.push(fmtChange(x.ours, x.baseline));
    }
    line.push(x.goal ?? '', verdict(x.met));
    return line;
  });
  return { header, body };
}

/** The console table of one benchmark. */
export function consoleTable(r: BenchResult): string {
  const { header, body } = tableLines(r);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map(b => b[i].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [
    `== ${r.title} (${r.seconds.toFixed(0)} s)`,
    line(header),
    line(widths.map(w => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** How the baseline columns were measured (docs and console). */
export function baselineMethod(b: BaselineInfo): string[] {
  return [
    `Baseline columns (\`--baseline ${b.rev}\`): the engine source of commit \`${b.commit}\` (\`git archive\` of plugins/flux-bootstrap-node and the workspace packages it depends on, into a temp folder whose \`node_modules\` links to the repository's installed packages), loaded into the same process through the same SWC transform, and measured in the same rounds as today's engine (the order rotates every round) against the same peer samples; "baseline ratio" is its median over the same peer median, "today vs baseline" is today's median over the baseline's (− is faster today).`,
    `Today's engine calls ${b.todayCalls}; the baseline engine calls ${b.baselineCalls}.`,
  ];
}

/** The Markdown section of one benchmark, with its data embedded for the summary. */
export function markdownSection(r: BenchResult): string {
  const { header, body } = tableLines(r);
  const m = r.machine;
  const fmtLoad = (l: number[]) => l.map(x => x.toFixed(1)).join('/');
  const loadavg = `${fmtLoad(m.loadavgStart)} at the start${
    m.loadavgEnd ? ` and ${fmtLoad(m.loadavgEnd)} at the end` : ''
  } (the machine is shared); took ${r.seconds.toFixed(0)} s.`;
  const lines = [
    `<!-- bench:${r.id}:start -->`,
    `<!-- bench-data ${JSON.stringify({
      id: r.id,
      title: r.title,
      date: r.date,
      rows: r.rows.map(x => ({ case: x.case, goal: x.goal, met: x.met })),
    })} -->`,
    `## ${r.title}`,
    '',
    `Measured ${r.date} at commit \`${m.commit}\`${
      r.baseline
        ? ` (and the baseline engine of \`${r.baseline.rev}\`${
            r.baseline.rev === r.baseline.commit
              ? ''
              : `, commit \`${r.baseline.commit}\``
          }, in the same rounds)`
        : ''
    } on ${m.cpus} × ${m.cpuModel}, ${m.memGiB} GiB, ${m.kernel}, Node ${
      m.node
    }; load average ${loadavg}`,
    '',
    `| ${header.map(mdEscape).join(' | ')} |`,
    `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`,
    ...body.map(b => `| ${b.map(mdEscape).join(' | ')} |`),
    '',
    '**How it is measured.**',
    '',
    ...r.method.map(x => `- ${x}`),
    ...(r.baseline ? baselineMethod(r.baseline).map(x => `- ${x}`) : []),
  ];
  if (r.analysis.length) {
    lines.push(
      '',
      r.rows.some(x => x.met === false)
        ? '**Why a goal is missed, and what would close it.**'
        : '**Notes.**',
      '',
    );
    lines.push(...r.analysis.map(x => `- ${x}`));
  }
  lines.push(`<!-- bench:${r.id}:end -->`);
  return lines.join('\n');
}

const DOC_INTRO = `# Benchmarks

Speed and memory goals of the engine, measured against real peers on the same machine in the
same run (a real kube-apiserver + etcd, \`kubectl\`, \`ssh-keygen\`, the \`git\` CLI with a real
\`git http-backend\`), so that the **ratio** stays meaningful on a noisy shared machine even when
absolute times move. Every figure is a median over several runs; min–max is shown beside it.

Run them with \`npm run bench\` (a few minutes; not part of the test suite). Options:
\`--only install,manifests,keys,push,status,fleet-page,memory,replicas\` runs a subset (\`replicas\` starts two
backends on PostgreSQL and Redis), \`--runs N\` changes the number of measured runs, \`--write-docs\`
rewrites the sections of this page that were run; \`--baseline <git-rev>\` also measures the engine of
that commit in the same rounds against the same peers (install, push and status; a section measured
so has baseline columns and says which commit), so that a change of the engine is judged on one
machine state rather than against figures of another day.
Each section below says when and where it was measured. This page is generated: edit
\`bench/\`, not the tables.
`;

/** Formats with the repository's prettier setup, so `prettier --check .` stays green. */
function formatMarkdown(file: string, text: string): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const prettier = require('prettier') as {
      format(t: string, o: object): string;
      resolveConfig: { sync(f: string): object | null };
    };
    return prettier.format(text, {
      ...(prettier.resolveConfig.sync(file) ?? {}),
      filepath: file,
    });
  } catch {
    return text;
  }
}

/**
 * Rewrites docs/benchmarks.md: the sections of the given results are replaced (or added), the
 * others are kept, and the summary is rebuilt from every section's embedded data.
 */
export function writeDocs(
  file: string,
  results: BenchResult[],
  order: string[],
): void {
  const existing = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const sections = new Map<string, string>();
  const re = /<!-- bench:([a-z-]+):start -->[\s\S]*?<!-- bench:\1:end -->/g;
  for (const m of existing.matchAll(re)) sections.set(m[1], m[0]);
  for (const r of results) sections.set(r.id, markdownSection(r));

  const summary: string[] = [
    '## Summary',
    '',
    '| benchmark | goal | result | measured |',
    '| --- | --- | --- | --- |',
  ];
  const ids = [
    ...order.filter(id => sections.has(id)),
    ...[...sections.keys()].filter(id => !order.includes(id)),
  ];
  for (const id of ids) {
    const m = /<!-- bench-data (\{.*\}) -->/.exec(sections.get(id)!);
    if (!m) continue;
    const data = JSON.parse(m[1]) as {
      title: string;
      date: string;
      rows: { case: string; goal?: string; met?: boolean }[];
    };
    for (const row of data.rows.filter(x => x.goal)) {
      summary.push(
        `| ${mdEscape(data.title)} — ${mdEscape(row.case)} | ${mdEscape(
          row.goal!,
        )} | ${row.met ? 'met' : '**missed**'} | ${data.date.slice(0, 10)} |`,
      );
    }
  }
  const text = [
    DOC_INTRO,
    summary.join('\n'),
    '',
    ...ids.map(id => `${sections.get(id)}\n`),
  ].join('\n');
  fs.writeFileSync(file, formatMarkdown(file, text));
}
