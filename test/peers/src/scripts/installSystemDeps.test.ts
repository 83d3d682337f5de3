import fs from 'node:fs';
import path from 'node:path';
import { isRoot, makeTempDir, removeDir, run } from '../common';

// The README promises: `npm test` installs the system packages the real peers need with apt only
// when run as root; anywhere else it installs nothing and says what to install. These tests run
// the real scripts (scripts/test.js and test/peers/scripts/install-system-deps.sh) with stub
// dpkg-query / apt-get / systemctl on PATH, so nothing is installed on this machine.

// Test code runs from source: __dirname is this folder.
// eslint-disable-next-line no-restricted-syntax
const repoRoot = path.resolve(__dirname, '../../../..');
const NOBODY = 65534;

describe('npm test (scripts/test.js) and install-system-deps.sh', () => {
  let dir: string;
  let calls: string;
  let env: NodeJS.ProcessEnv;

  /** Copies a repository file into the temp tree (readable by any user) and returns its path. */
  function copy(rel: string): string {
    const to = path.join(dir, 'repo', rel);
    fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
    fs.copyFileSync(path.join(repoRoot, rel), to);
    fs.chmodSync(to, 0o755);
    return to;
  }

  function stub(name: string, body: string) {
    const file = path.join(dir, 'bin', name);
    fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  beforeEach(() => {
    dir = makeTempDir('flux-test-sysdeps');
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'bin'), { mode: 0o755 });
    calls = path.join(dir, 'calls.log');
    fs.writeFileSync(calls, '', { mode: 0o666 });
    fs.chmodSync(calls, 0o666);
    // dpkg-query answers "installed" only for the packages listed in STUB_INSTALLED.
    stub(
      'dpkg-query',
      'pkg=$(eval echo \\${$#}); case " $STUB_INSTALLED " in *" $pkg "*) printf "install ok installed";; *) exit 1;; esac',
    );
    for (const cmd of [
      'apt-get',
      'systemctl',
      'service',
      'useradd',
      'usermod',
      'chown',
    ]) {
      stub(cmd, `echo "${cmd} $*" >> "${calls}"`);
    }
    // The git login user of the sshd peer already exists (its password field "*").
    stub(
      'getent',
      'case "$1" in passwd) echo "git:x:999:999::/var/lib/flux-bootstrap-git:/bin/sh";; shadow) echo "git:*:1::::::";; esac',
    );
    env = {
      PATH: `${path.join(dir, 'bin')}:/usr/local/bin:/usr/bin:/bin`,
      HOME: dir,
      // A kube-apiserver folder is given, so no build is attempted either.
      KUBEBUILDER_ASSETS: path.join(dir, 'kube-assets'),
      STUB_INSTALLED: '',
    };
  });

  afterEach(() => removeDir(dir));

  const asNonRoot = isRoot() ? { uid: NOBODY, gid: NOBODY } : {};

  it('as a non-root user with packages missing: installs nothing, names them and how to install them, exits 3', async () => {
    const script = copy('test/peers/scripts/install-system-deps.sh');
    const r = await run('bash', [script], {
      env: { ...env, STUB_INSTALLED: 'git openssh-client ca-certificates' },
      check: false,
      ...asNonRoot,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(
      'Missing system packages: openssh-server etcd-server chromium fonts-noto-color-emoji postgresql openssl curl redis-server tinyproxy',
    );
    expect(r.stderr).toContain(
      'sudo apt-get install -y --no-install-recommends openssh-server etcd-server chromium fonts-noto-color-emoji postgresql openssl curl redis-server tinyproxy',
    );
    expect(fs.readFileSync(calls, 'utf8')).toBe('');
  });

  it('npm test (scripts/test.js) as a non-root user stops with a clear message before running anything', async () => {
    copy('test/peers/scripts/install-system-deps.sh');
    const testJs = copy('scripts/test.js');
    const r = await run(process.execPath, [testJs], {
      env,
      check: false,
      ...asNonRoot,
    });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Missing system packages: git ');
    expect(r.stderr).toContain(
      'nothing was installed because this is not root',
    );
    // It stopped before npm ci and jest: no results folder was made.
    expect(fs.existsSync(path.join(dir, 'repo', 'test-results'))).toBe(false);
    expect(fs.readFileSync(calls, 'utf8')).toBe('');
  });

  it('npm test runs backstage-cli repo test with CI=true and ends with "N passed, N failed" and jest\'s exit code', async () => {
    copy('test/peers/scripts/install-system-deps.sh');
    const testJs = copy('scripts/test.js');
    // A stand-in for backstage-cli: records its arguments and writes a jest --json results file.
    const cli = path.join(dir, 'repo/node_modules/.bin/backstage-cli');
    fs.mkdirSync(path.dirname(cli), { recursive: true });
    fs.writeFileSync(
      cli,
      [
        '#!/bin/sh',
        `echo "CI=$CI $*" >> "${calls}"`,
        'for a in "$@"; do case "$a" in --outputFile=*) out="${a#--outputFile=}";; esac; done',
        `echo '{"numPassedTests":41,"numFailedTests":2,"numFailedTestSuites":1}' > "$out"`,
        'exit 1',
      ].join('\n'),
      { mode: 0o755 },
    );
    const all =
      'git openssh-server openssh-client etcd-server chromium fonts-noto-color-emoji postgresql ca-certificates openssl curl redis-server tinyproxy';
    const r = await run(process.execPath, [testJs, '--maxWorkers=1'], {
      env: { ...env, STUB_INSTALLED: all },
      check: false,
    });
    expect(r.code).toBe(1);
    expect(r.stdout.trimEnd().split('\n').at(-1)).toBe('41 passed, 2 failed');
    const results = path.join(dir, 'repo/test-results/jest-results.json');
    expect(fs.readFileSync(calls, 'utf8')).toBe(
      `CI=true repo test --json --outputFile=${results} --maxWorkers=1\n`,
    );
  });

  it('with every package present: installs nothing, as any user', async () => {
    const script = copy('test/peers/scripts/install-system-deps.sh');
    const all =
      'git openssh-server openssh-client etcd-server chromium fonts-noto-color-emoji postgresql ca-certificates openssl curl redis-server tinyproxy';
    const r = await run('bash', [script], {
      env: { ...env, STUB_INSTALLED: all },
      check: false,
      ...asNonRoot,
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(fs.readFileSync(calls, 'utf8')).toBe('');
  });

  it('as root: installs exactly the missing packages with apt-get, then stops the services Debian started', async () => {
    const script = copy('test/peers/scripts/install-system-deps.sh');
    // `id -u` says root whoever runs the test; apt-get and the rest are stubs.
    stub('id', 'echo 0');
    const r = await run('bash', [script], {
      env: { ...env, STUB_INSTALLED: 'git openssh-client ca-certificates' },
      check: false,
    });
    expect(r.code).toBe(0);
    const log = fs.readFileSync(calls, 'utf8').trim().split('\n');
    expect(log).toEqual([
      'apt-get update -qq',
      'apt-get install -y -qq --no-install-recommends openssh-server etcd-server chromium fonts-noto-color-emoji postgresql openssl curl redis-server tinyproxy',
      'systemctl stop ssh',
      'systemctl stop etcd',
      'systemctl stop postgresql',
      'systemctl stop redis-server',
      'systemctl stop tinyproxy',
    ]);
  });
});
