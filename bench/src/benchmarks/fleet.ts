import os from 'node:os';
import { ConfigReader } from '@backstage/config';
import {
  bootstrapFleet,
  fluxBootstrapSettings,
  parseBitbucketRepoUrl,
  Redactor,
  silentLogger,
  SSH_KEY_DEFAULTS,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  buildFluxBundle,
  serveFluxBundles,
  startBitbucketDouble,
  startFluxSimulator,
  startKubeApiserver,
  TEST_GROUND_KUBERNETES_VERSIONS,
  type KubeApiserver,
} from '@flux-bootstrap/test-peers';
import { defer, tempDir } from '../lib/cleanup';
import { Row } from '../lib/report';
import { median, summarize, timed } from '../lib/stats';
import type { Benchmark } from '../lib/types';
import { BENCH_FLUX_VERSION } from './shared';

/** N clusters at the default concurrency (4), and N = 6 at concurrency 6 (one wave). */
const CASES = [
  { n: 1, concurrency: 4 },
  { n: 3, concurrency: 4 },
  { n: 6, concurrency: 4 },
  { n: 6, concurrency: 6 },
];
const GOAL = 2;
const TOKEN = 'bench-fleet-token';

/**
 * Wall time of one fleet run (`bootstrapFleet`, what `flux:bootstrap-fleet` runs) for N = 1, 3, 6
 * clusters, each a real kube-apiserver + etcd with the Flux simulator, against the Bitbucket
 * double (git http-backend, sshd). Goal: N = 6 in at most 2× the time of N = 1.
 */
export const fleetBenchmark: Benchmark = {
  id: 'fleet',
  title: 'Fleet run wall time (N = 1, 3, 6 clusters)',
  async run(ctx) {
    const { dir: cacheDir } = tempDir('fleet');
    const bundle = await buildFluxBundle({ version: BENCH_FLUX_VERSION });
    const bundles = await serveFluxBundles([
      { version: BENCH_FLUX_VERSION, tarball: bundle.tarball },
    ]);
    defer('fleet bundle server', () => bundles.stop());
    const bb = await startBitbucketDouble({ ssh: true });
    defer('fleet Bitbucket double', () => bb.stop());
    bb.addUser({ name: 'alice' });
    bb.addProject({ key: 'FLUX', name: 'Flux fleet' });
    bb.grantProject('FLUX', { user: 'alice' }, 'PROJECT_ADMIN');
    bb.addToken({ token: TOKEN, user: 'alice' });
    const max = Math.max(...CASES.map(c => c.n));
    ctx.log(`starting ${max} kube-apiservers`);
    const kubes: KubeApiserver[] = [];
    for (let i = 0; i < max; i++) {
      // One at a time: six starting at once on a shared machine time out.
      const kube = await startKubeApiserver();
      defer(`fleet kube-apiserver ${kube.url}`, () => kube.stop());
      kubes.push(kube);
    }
    const names = kubes.map((_, i) => `bench-${i + 1}`);
    const settings = await fluxBootstrapSettings(
      new ConfigReader({
        integrations: {
          bitbucketServer: [{ host: bb.host, apiBaseUrl: bb.apiBaseUrl }],
        },
        fluxBootstrap: {
          kubernetesVersions: TEST_GROUND_KUBERNETES_VERSIONS,
          bitbucketServer: [{ host: bb.host, sshHost: bb.ssh!.host }],
          manifests: {
            baseUrl: bundles.baseUrl,
            cacheDir,
            defaultVersion: BENCH_FLUX_VERSION,
          },
        },
        kubernetes: {
          clusterLocatorMethods: [
            {
              type: 'config',
              clusters: kubes.map((k, i) => ({
                name: names[i],
                url: k.url,
                serviceAccountToken: k.adminToken,
                caData: k.caPem,
              })),
            },
          ],
        },
      }),
    ).get();

    let round = 0;
    /** One fleet run on the first `n` clusters, into a fresh repository and Flux namespace. */
    const fleetRun = async (n: number, concurrency = 4) => {
      const ns = `fleet-${++round}`;
      const sims = await Promise.all(
        kubes
          .slice(0, n)
          .map(kube =>
            startFluxSimulator({ kube, namespace: ns, intervalMs: 300 }),
          ),
      );
      try {
        const { ms, value } = await timed(() =>
          bootstrapFleet(
            {
              bitbucket: {
                ref: parseBitbucketRepoUrl(
                  `${bb.host}?project=FLUX&repo=${ns}`,
                  settings.bitbucketServer,
                ),
                host: settings.bitbucketServer[0],
                auth: { token: TOKEN },
                credentials: 'the token input',
              },
              private: true,
              groups: [],
              clusters: names.slice(0, n),
              pathPattern: 'clusters/<cluster>',
              branch: 'main',
              flux: { namespace: ns, secretName: ns },
              key: SSH_KEY_DEFAULTS,
              readWrite: false,
              author: { name: 'Flux', email: '' },
              concurrency,
              timeoutMs: 180_000,
              force: false,
            },
            { settings, logger: silentLogger, redactor: new Redactor([TOKEN]) },
          ),
        );
        const failed = value.clusters.filter(c => c.state !== 'ready');
        if (failed.length)
          throw new Error(
            `fleet run of ${n} failed: ${JSON.stringify(failed)}`,
          );
        return ms;
      } finally {
        await Promise.all(sims.map(s => s.stop()));
      }
    };

    const runs = ctx.smoke ? 1 : ctx.runs ?? 3;
    ctx.log('warm-up: one run of N = 1 (bundle download, first CRD apply)');
    await fleetRun(1);
    const samples = CASES.map(() => [] as number[]);
    for (let r = 0; r < runs; r++) {
      const order = CASES.map((_, i) => i);
      for (const i of r % 2 ? order.reverse() : order) {
        const { n, concurrency } = CASES[i];
        const ms = await fleetRun(n, concurrency);
        samples[i].push(ms);
        ctx.log(
          `N = ${n} (concurrency ${concurrency}), round ${r + 1}: ${(
            ms / 1000
          ).toFixed(1)} s`,
        );
      }
    }
    const base = median(samples[0]);
    const rows: Row[] = CASES.map(({ n, concurrency }, i) => {
      const ours = summarize(samples[i]);
      const ratio = ours.median / base;
      const goal =
        n === max ? { goal: `≤ ${GOAL}× N = 1`, met: ratio <= GOAL } : {};
      return {
        case: `N = ${n} cluster${
          n > 1 ? 's' : ''
        }, concurrency ${concurrency}: ${ratio.toFixed(2)}× N = 1`,
        ours,
        ratio,
        ...goal,
      };
    });
    const missed = rows.some(r => r.met === false);
    return {
      oursLabel: 'bootstrapFleet wall time',
      rows,
      method: [
        `Each run is one \`bootstrapFleet\` (what \`flux:bootstrap-fleet\` runs): the repository, one pair of commits for every cluster, then per cluster its deploy key (key pair, Secret, access key, host key scan) and the install with its wait, at most \`concurrency\` clusters at once (default 4; the last row runs the 6 clusters in one wave). The clusters are real kube-apiservers (+ etcd) of the test ground, each with the Flux simulator (polling every 300 ms), against the Bitbucket double (git http-backend, sshd).`,
        'Every run gets a fresh repository and a fresh Flux namespace, so each cluster is bootstrapped from nothing (the CRDs, cluster-wide, are identical after the warm-up run and apply as no-ops). Sizes alternate their order between rounds. Each case names its median against N = 1; there is no external peer: `flux bootstrap` does one cluster per invocation, so N clusters with the CLI take N× one.',
      ],
      analysis: missed
        ? [
            `N = ${max} took more than ${GOAL}× N = 1 here. At the default concurrency 4 the ${max} clusters run in two waves, so even with perfect parallelism they take about 2× one cluster plus the shared steps; the concurrency-6 row shows one wave. Beyond that, every apiserver, etcd and the simulators share the machine's ${
              os.cpus().length
            } cores with the benchmark process, so the installs contend for CPU rather than wait on the network as they would against real clusters; on a real fleet each install mostly waits for its own cluster.`,
          ]
        : [],
    };
  },
};
