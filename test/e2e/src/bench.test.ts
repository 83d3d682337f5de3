import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';

// `npm run bench -- --smoke`: one round of every benchmark against its real peers, as a
// developer runs it, so that a broken benchmark fails the suite instead of the next person who
// measures (the install benchmark once lost its bundle cache to the kubectl round). No figure is
// asserted: timings belong to `npm run bench` and docs/benchmarks.md, not to tests.
//
// The same run passes `--baseline` with the engine before issue 14 (its one-transport work), so
// the install, push and status benchmarks also load that commit's engine and drive it through
// their adapters (bench/src/lib/engines.ts), as the comparison on docs/benchmarks.md does; it
// costs the push and status smoke next to nothing, and install skips the baseline's apply rounds.
jest.setTimeout(25 * 60_000);

const WITH_BASELINE = [
  'Install (server-side apply of gotk-components.yaml) vs kubectl',
  'Push of the manifests vs the git CLI',
  'Status fan-out over 100 clusters',
];

// Test code runs from source: __dirname is this folder.
// eslint-disable-next-line no-restricted-syntax
const repoRoot = path.resolve(__dirname, '../../..');

function hasCommit(rev: string): boolean {
  try {
    execFileSync('git', ['cat-file', '-e', `${rev}^{commit}`], {
      cwd: repoRoot,
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

// The engine before issue 14 is 81ac4a9. A shallow clone (as some CI checkouts are) lacks it:
// then the baseline is HEAD's own engine, so the loader, the adapters' API detection and the
// baseline columns are still exercised, only not against the old API.
const BASELINE_REV = hasCommit('81ac4a9') ? '81ac4a9' : 'HEAD';

const TITLES = [
  'Install (server-side apply of gotk-components.yaml) vs kubectl',
  'Manifest generation (gotk-components.yaml)',
  'Key generation vs ssh-keygen',
  'Push of the manifests vs the git CLI',
  'Status fan-out over 100 clusters',
  'Memory (peak RSS)',
];

describe('npm run bench -- --smoke', () => {
  it('runs one round of every benchmark to the end', async () => {
    const started = Date.now();
    const { code, stdout, stderr } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
    }>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['bench/run.js', '--smoke', '--baseline', BASELINE_REV],
        {
          cwd: repoRoot,
          env: { ...process.env, FORCE_COLOR: '0' },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      let out = '';
      let err = '';
      child.stdout.on('data', d => (out += d));
      child.stderr.on('data', d => (err += d));
      child.on('error', reject);
      child.on('close', c => resolve({ code: c, stdout: out, stderr: err }));
    });
    const failures = stderr
      .split('\n')
      .filter(l => l.startsWith('✖'))
      .join('\n');
    expect(failures).toBe('');
    expect(code).toBe(0);
    // Every benchmark printed its table (a line per case under its title).
    for (const title of TITLES) {
      expect(stdout).toMatch(
        new RegExp(
          `== ${title.replace(/[()]/g, '\\$&')} \\(\\d+ s\\)\\ncase +`,
        ),
      );
    }
    // The baseline engine was measured beside today's: its columns, with figures (in a smoke run
    // the install benchmark only generates the baseline's objects, its apply rounds are left out).
    for (const title of WITH_BASELINE) {
      const table = stdout
        .slice(stdout.indexOf(`== ${title}`))
        .split('\n\n')[0]
        .split('\n');
      expect(table[1]).toContain(`baseline ${BASELINE_REV} median (min–max)`);
      expect(table[1]).toContain('today vs baseline');
      expect(table.slice(3).join('\n')).toMatch(/ [+−±]\d+ %/);
    }
    expect(stderr).toContain(`baseline engine ${BASELINE_REV}`);
    expect(stderr).not.toMatch(/Uncaught error/);
    // eslint-disable-next-line no-console
    console.log(`bench smoke: ${Math.round((Date.now() - started) / 1000)} s`);
  });
});
