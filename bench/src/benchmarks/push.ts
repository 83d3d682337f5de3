import fs from 'node:fs';
import path from 'node:path';
import {
  buildFluxBundle,
  peerGitEnv,
  startGitHttpServer,
} from '@flux-bootstrap/test-peers';
import type { ManifestsSourceConfig } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/bundle';
import { loadBaselineEngine } from '../lib/baseline';
import { defer, tempDir } from '../lib/cleanup';
import { baselinePush, PushEngine, todayPush } from '../lib/engines';
import { Row } from '../lib/report';
import {
  fmtMs as fmt,
  rotated,
  runChecked,
  summarize,
  timed,
} from '../lib/stats';
import type { Benchmark } from '../lib/types';
import { allOptions } from './manifests';
import { BENCH_FLUX_VERSION, CRD_PAD_BYTES } from './shared';

const GOAL = 1.5;
const TOKEN = 'bench-token-0123456789abcdef';

/** Push: the engine's two flux bootstrap commits over smart HTTP vs the git CLI doing the same. */
export const pushBenchmark: Benchmark = {
  id: 'push',
  title: 'Push of the manifests vs the git CLI',
  baseline: true,
  async run(ctx) {
    const runs = ctx.runs ?? 9;
    const { dir } = tempDir('push');
    const server = await startGitHttpServer();
    defer('git HTTP server', () => server.stop());
    server.addToken({ token: TOKEN, user: 'bench', access: 'write' });

    const bundle = await buildFluxBundle({
      version: BENCH_FLUX_VERSION,
      crdPadBytes: CRD_PAD_BYTES,
    });
    const options = allOptions('flux-system');
    const files = todayPush.render(bundle.files, options);
    // flux:push-manifests loads the bundle from the engine's download cache.
    const cacheDir = path.join(dir, 'bundle-cache');
    fs.mkdirSync(path.join(cacheDir, BENCH_FLUX_VERSION), { recursive: true });
    fs.writeFileSync(
      path.join(cacheDir, BENCH_FLUX_VERSION, 'manifests.tar.gz'),
      bundle.tarball,
    );
    const source: ManifestsSourceConfig = {
      baseUrl: 'http://127.0.0.1:1', // never contacted: the bundle is in the cache
      cacheDir,
      sha256: { [BENCH_FLUX_VERSION]: bundle.sha256 },
      defaultVersion: BENCH_FLUX_VERSION,
      downloadTimeoutMs: 1000,
    };
    const author = { name: 'Flux Bench', email: 'bench@example.com' };
    let n = 0;
    const newRepo = () =>
      server.createRepo(`fleet-${++n}`, {
        defaultBranch: 'main',
        initialCommit: true,
      });

    const baseline = ctx.baseline
      ? await loadBaselineEngine(ctx.baseline, ctx.log)
      : undefined;
    const baseEngine = baseline ? baselinePush(baseline) : undefined;

    // The commit + push part of pushFluxManifests, on the already rendered files (what the git
    // CLI gets too): one session, commit 1, push, commit 2, push.
    const commit = (
      engine: PushEngine,
      url: string,
      rendered: typeof files,
      workDir: string,
    ) =>
      engine.commit({
        url,
        token: TOKEN,
        files: rendered,
        options,
        version: BENCH_FLUX_VERSION,
        branch: 'main',
        author,
        workDir,
      });
    const commitOnly = (engine: PushEngine) => async () => {
      const { url } = newRepo();
      const work = path.join(dir, `ours-${n}`);
      const t = await timed(() => commit(engine, url, files, work));
      if (!t.value.componentsCommit || !t.value.syncCommit)
        throw new Error('expected two new commits');
      if (!t.value.kustomizationGenerated)
        throw new Error('expected a generated kustomization.yaml');
      fs.rmSync(work, { recursive: true, force: true });
      return t.ms;
    };
    const ours = commitOnly(todayPush);

    // The engine part of flux:push-manifests after the repository lookup: loads the cached
    // bundle, renders the three files, then the above.
    const withRender = (engine: PushEngine) => async () => {
      const { url } = newRepo();
      const work = path.join(dir, `ours-${n}`);
      const t = await timed(async () =>
        commit(
          engine,
          url,
          engine.render(
            (
              await engine.loadBundle(BENCH_FLUX_VERSION, source)
            ).files,
            options,
          ),
          work,
        ),
      );
      if (!t.value.componentsCommit || !t.value.syncCommit)
        throw new Error('expected two commits');
      fs.rmSync(work, { recursive: true, force: true });
      return t.ms;
    };

    const env = peerGitEnv({
      GIT_AUTHOR_NAME: author.name,
      GIT_AUTHOR_EMAIL: author.email,
      GIT_COMMITTER_NAME: author.name,
      GIT_COMMITTER_EMAIL: author.email,
    });
    const auth = ['-c', `http.extraHeader=Authorization: Bearer ${TOKEN}`];
    const peer = async () => {
      const repo = newRepo();
      const clone = path.join(dir, `cli-${n}`);
      const git = (args: string[], cwd?: string) =>
        runChecked('git', args, { cwd, env });
      const start = process.hrtime.bigint();
      await git([
        ...auth,
        'clone',
        '--quiet',
        '--depth',
        '1',
        '--branch',
        'main',
        repo.url,
        clone,
      ]);
      const write = (f: { path: string; content: string }) => {
        fs.mkdirSync(path.dirname(path.join(clone, f.path)), {
          recursive: true,
        });
        fs.writeFileSync(path.join(clone, f.path), f.content);
      };
      write(files.components);
      await git(['add', files.components.path], clone);
      await git(
        [
          'commit',
          '--quiet',
          '-m',
          `Add Flux ${BENCH_FLUX_VERSION} component manifests`,
        ],
        clone,
      );
      await git(
        [...auth, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main'],
        clone,
      );
      write(files.sync);
      write(files.kustomization);
      await git(['add', files.sync.path, files.kustomization.path], clone);
      await git(['commit', '--quiet', '-m', 'Add Flux sync manifests'], clone);
      await git(
        [...auth, 'push', '--quiet', 'origin', 'HEAD:refs/heads/main'],
        clone,
      );
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      fs.rmSync(clone, { recursive: true, force: true });
      return ms;
    };

    // HTTP requests each side makes (one run each, outside the measurement)
    server.clearRequests();
    await ours();
    const oursRequests = server.requests().length;
    server.clearRequests();
    await peer();
    const peerRequests = server.requests().length;
    // The part of commit 2 that decides whether gotk-components.yaml belongs in kustomization.yaml
    const scanOf = async (engine: PushEngine) => {
      const scan: number[] = [];
      for (let i = 0; i < (ctx.smoke ? 1 : 5); i++)
        scan.push(
          (
            await timed(() =>
              engine.isKubernetesManifest(files.components.content),
            )
          ).ms,
        );
      return summarize(scan);
    };
    const scanMs = await scanOf(todayPush);
    const baseScan = baseEngine ? await scanOf(baseEngine) : undefined;

    ctx.log(
      `gotk-components.yaml ${(files.components.content.length / 1e6).toFixed(
        1,
      )} MB; ${runs} runs each, a new repository per run`,
    );
    // Rounds rotate which side goes first: ours, git, then the baseline engine when there is one.
    const sample = await rotated(runs, 1, [
      ours,
      peer,
      ...(baseEngine ? [commitOnly(baseEngine)] : []),
    ]);
    const o = summarize(sample[0]);
    const p = summarize(sample[1]);
    const bo = baseEngine ? summarize(sample[2]) : undefined;
    const renderRuns = ctx.smoke ? 1 : Math.max(3, Math.ceil(runs / 2));
    ctx.log(`pushFluxManifests including rendering: ${renderRuns} runs`);
    const renderSample = await rotated(
      renderRuns,
      1, // the warm-up parses the bundle once, as the first push after a backend start does
      [
        withRender(todayPush),
        peer,
        ...(baseEngine ? [withRender(baseEngine)] : []),
      ],
    );
    const wr = summarize(renderSample[0]);
    const wp = summarize(renderSample[1]);
    const bwr = baseEngine ? summarize(renderSample[2]) : undefined;
    const rows: Row[] = [
      {
        case: `two commits (${(files.components.content.length / 1e6).toFixed(
          1,
        )} MB of manifests) pushed to a new repository`,
        ours: o,
        peer: p,
        ratio: o.median / p.median,
        goal: `≤ ${GOAL}× git`,
        met: o.median / p.median <= GOAL,
        ...(bo ? { baseline: bo, baselineRatio: bo.median / p.median } : {}),
      },
      {
        case: 'not spent any more: commit 2 re-parsing gotk-components.yaml to list it in kustomization.yaml (isKubernetesManifest)',
        ours: scanMs,
        ...(baseScan ? { baseline: baseScan } : {}),
      },
      {
        case: 'the same with loading the cached bundle and rendering the files first, as pushFluxManifests() does',
        ours: wr,
        peer: wp,
        ratio: wr.median / wp.median,
        ...(bwr
          ? { baseline: bwr, baselineRatio: bwr.median / wp.median }
          : {}),
      },
    ];
    return {
      oursLabel: 'pushFluxManifests (isomorphic-git)',
      peerLabel: 'git CLI',
      rows,
      baseline: baseline && {
        rev: baseline.rev,
        commit: baseline.commit,
        todayCalls: `${todayPush.calls}; with rendering: \`loadFluxBundle\`, \`renderFluxManifests\`, then the same`,
        baselineCalls: `${
          baseEngine!.calls
        }; with rendering: its own \`loadFluxBundle\` and \`renderFluxManifests\`, then the same; the scan line: its \`isKubernetesManifest\``,
      },
      method: [
        "Remote: the real `git http-backend` behind the test peers' smart-HTTP server on 127.0.0.1, Bearer token auth; every run pushes to a new repository holding one initial commit on main.",
        `Ours: the commit + push step of \`pushFluxManifests()\` on the rendered files (\`commitFluxManifests\`: \`GitPushSession\` over \`HttpsGitTransport\`): list refs and fetch the branch (depth 1), commit gotk-components.yaml ("Add Flux ${BENCH_FLUX_VERSION} component manifests"), push, commit gotk-sync.yaml + kustomization.yaml ("Add Flux sync manifests"), push — what flux bootstrap does. The third line runs what flux:push-manifests does after looking the repository up on Bitbucket: \`loadFluxBundle()\` from the engine's download cache, rendering (the bundle's parse is kept per version + sha256; see the manifest benchmark), then the commits.`,
        'Peer: the git CLI doing the same: `git clone --depth 1`, write the file, `git add`, `git commit`, `git push`, write the two others, add, commit, push (8 processes).',
        `The manifests: gotk-components.yaml with all components and CRDs of ~${Math.round(
          CRD_PAD_BYTES / 1000,
        )} KB. Runs alternate which side goes first; one warm-up round is discarded.`,
      ],
      analysis: [
        `HTTP requests to the git server: we make ${oursRequests}, git makes ${peerRequests} (each a \`git http-backend\` process on a real server). The ref advertisement that lists the branch is reused by the fetch that follows it, and commit 2 starts from the commit this session has just pushed instead of listing and fetching the branch again (a push rejected because someone pushed meanwhile falls back to fetching).`,
        `Commit 2 lists the folder's resources like flux's \`kustomization.Generate\`; gotk-components.yaml is the blob this session committed a moment earlier, known to be Kubernetes YAML, so it is not parsed again (that parse is the second line, ${fmt(
          scanMs.median,
        )}); any other file in the folder still is.`,
        ...(rows.some(r => r.met === false)
          ? [
              'The rest is isomorphic-git hashing and deflating the 3 MB blob in JavaScript, where git does it in C.',
            ]
          : []),
      ],
    };
  },
};
