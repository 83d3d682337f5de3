import { findKubectl } from '@flux-bootstrap/test-peers';
import type { JsonObject } from '@backstage/types';
import { DEFAULT_STATUS_CONCURRENCY } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/config/settings';
import { loadBaselineEngine } from '../lib/baseline';
import { defer, tempDir } from '../lib/cleanup';
import { baselineStatus, StatusEngine, todayStatus } from '../lib/engines';
import {
  Endpoint,
  startBlackHole,
  startLatencyProxy,
} from '../lib/latencyProxy';
import { bootstrapHealthyFlux } from '../lib/fluxCluster';
import { Row } from '../lib/report';
import { fmtMs, Measure, runChecked, summarize, timed } from '../lib/stats';
import type { Benchmark } from '../lib/types';
import { freshApiserver } from './install';

export const CLUSTERS = 100;
export const DEAD = 5;
/** Added per direction: a round trip to every cluster is this × 2 slower. */
export const ONE_WAY_MS = 25;
const COLD_GOAL_MS = 1000;
/** The default before the status reader's reads went out together (for comparison). */
const FORMER_DEFAULT_CONCURRENCY = 10;
const WARM_GOAL_MS = 50;

export interface Fleet {
  live: Endpoint[];
  dead: Endpoint[];
  /** `kubernetes` + `fluxBootstrap.status` config for the given endpoints. */
  config(opts?: {
    live?: number;
    dead?: number;
    concurrency?: number;
    timeoutSeconds?: number;
  }): JsonObject;
  kube: {
    url: string;
    adminToken: string;
    caPem: string;
    kubeconfigPath: string;
  };
}

/** A private apiserver with a healthy Flux, reachable as 95 slow clusters and 5 black holes. */
export async function startFleet(
  log: (l: string) => void,
  size = { live: CLUSTERS - DEAD, dead: DEAD },
): Promise<Fleet> {
  log(
    'starting a kube-apiserver and bootstrapping Flux onto it (simulated controllers)',
  );
  const kube = await freshApiserver();
  await bootstrapHealthyFlux(kube);
  const target = new URL(kube.url);
  const live: Endpoint[] = [];
  const dead: Endpoint[] = [];
  for (let i = 0; i < size.live; i++) {
    const p = await startLatencyProxy(
      { host: target.hostname, port: Number(target.port) },
      ONE_WAY_MS,
    );
    defer(`latency proxy ${p.port}`, () => p.stop());
    live.push(p);
  }
  for (let i = 0; i < size.dead; i++) {
    const b = await startBlackHole();
    defer(`black hole ${b.port}`, () => b.stop());
    dead.push(b);
  }
  const caData = Buffer.from(kube.caPem).toString('base64');
  return {
    live,
    dead,
    kube,
    config(opts = {}) {
      const endpoints = [
        ...live
          .slice(0, opts.live ?? live.length)
          .map((e, i) => ({ name: `live-${i + 1}`, e })),
        ...dead
          .slice(0, opts.dead ?? dead.length)
          .map((e, i) => ({ name: `dead-${i + 1}`, e })),
      ];
      return {
        kubernetes: {
          serviceLocatorMethod: { type: 'multiTenant' },
          clusterLocatorMethods: [
            {
              type: 'config',
              clusters: endpoints.map(({ name, e }) => ({
                name,
                url: e.url,
                authProvider: 'serviceAccount',
                serviceAccountToken: kube.adminToken,
                caData,
              })),
            },
          ],
        },
        fluxBootstrap: {
          status: {
            ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
            ...(opts.timeoutSeconds
              ? { clusterTimeoutSeconds: opts.timeoutSeconds }
              : {}),
          },
        },
      };
    },
  };
}

/** Status fan-out of the status backend's engine over 100 clusters. */
export const statusBenchmark: Benchmark = {
  id: 'status',
  title: 'Status fan-out over 100 clusters',
  baseline: true,
  async run(ctx) {
    const runs = ctx.runs ?? 5;
    const { dir } = tempDir('status');
    // A smoke run reads 10 clusters and 1 black hole (its figures are not kept).
    const fleet = await startFleet(
      ctx.log,
      ctx.smoke ? { live: 10, dead: 1 } : undefined,
    );
    const LIVE = fleet.live.length;
    const DEAD_N = fleet.dead.length;
    const ALL = LIVE + DEAD_N;
    const timeoutMs = 5000; // fluxBootstrap.status.clusterTimeoutSeconds default

    /** One cold read: a new reader (no cache, no connections) over the given clusters. */
    const baseline = ctx.baseline
      ? await loadBaselineEngine(ctx.baseline, ctx.log)
      : undefined;
    const baseEngine = baseline ? baselineStatus(baseline) : undefined;
    /** Today's engine, then the baseline's when there is one (each case runs for every engine). */
    const engines: { engine: StatusEngine; label: string }[] = [
      { engine: todayStatus, label: 'today' },
      ...(baseEngine
        ? [{ engine: baseEngine, label: `baseline ${baseline!.commit}` }]
        : []),
    ];
    /** Runs `fn` for every engine, the order rotating with `round`; results in engine order. */
    const eachEngine = async <T>(
      round: number,
      fn: (e: (typeof engines)[number], index: number) => Promise<T>,
    ): Promise<T[]> => {
      const out: T[] = new Array(engines.length);
      for (let k = 0; k < engines.length; k++) {
        const j = (round + k) % engines.length;
        out[j] = await fn(engines[j], j);
      }
      return out;
    };

    const cold = async (
      engine: StatusEngine,
      opts: Parameters<Fleet['config']>[0],
    ) => {
      const reader = await engine.reader(fleet.config(opts));
      const names = reader.listClusters().map(c => c.name);
      try {
        const t = await timed(() => reader.readMany(names));
        const states = t.value.map(s => s.state);
        const liveStates = t.value.filter(s => s.cluster.startsWith('live-'));
        const bad = liveStates.filter(s => s.state === 'unreachable');
        if (bad.length)
          throw new Error(
            `${bad.length} live clusters unreachable: ${bad[0].reason}`,
          );
        const deadStates = t.value.filter(s => s.cluster.startsWith('dead-'));
        if (deadStates.some(s => s.state !== 'unreachable'))
          throw new Error('a black hole was not reported unreachable');
        const warm = await timed(() => reader.readMany(names));
        return { ms: t.ms, warmMs: warm.ms, states, reader };
      } finally {
        await reader.close();
      }
    };

    await eachEngine(0, async ({ engine, label }) => {
      const first = await cold(engine, { dead: 0 });
      const ready = first.states.filter(s => s === 'ready').length;
      if (ready !== LIVE)
        throw new Error(
          `${label}: expected ${LIVE} ready clusters, got states ${[
            ...new Set(first.states),
          ].join(', ')}`,
        );
      ctx.log(`${label}: all ${ready} live clusters report ready`);
    });

    /** `runs` cold reads per engine, alternating engines; one summary per engine. */
    const series = async (
      label: string,
      opts: Parameters<Fleet['config']>[0],
    ) => {
      const cs = engines.map(() => [] as number[]);
      const ws = engines.map(() => [] as number[]);
      for (let i = 0; i < runs; i++) {
        await eachEngine(i, async (e, j) => {
          const r = await cold(e.engine, opts);
          cs[j].push(r.ms);
          ws[j].push(r.warmMs);
          ctx.log(
            `  ${label}, ${e.label}: cold ${r.ms.toFixed(
              0,
            )} ms, warm ${r.warmMs.toFixed(1)} ms`,
          );
        });
      }
      return engines.map((_, j) => ({
        cold: summarize(cs[j]),
        warm: summarize(ws[j]),
      }));
    };

    ctx.log(`${runs} runs per case`);
    // The 95 live clusters alone and the same plus the black holes, in the same rounds (alternating
    // which goes first), so that the black holes' cost is a per-round difference, not the
    // difference of two series measured minutes apart on a machine whose load drifts.
    const perEngine = engines.map(() => ({
      live: { cold: [] as number[], warm: [] as number[] },
      all: { cold: [] as number[], warm: [] as number[] },
      diffs: [] as number[],
    }));
    for (let i = 0; i < runs; i++) {
      await eachEngine(i, async (e, j) => {
        const order =
          i % 2 === 0 ? (['live', 'all'] as const) : (['all', 'live'] as const);
        const got: Record<string, { ms: number; warmMs: number }> = {};
        for (const which of order)
          got[which] = await cold(
            e.engine,
            which === 'live' ? { dead: 0 } : {},
          );
        const x = perEngine[j];
        x.live.cold.push(got.live.ms);
        x.live.warm.push(got.live.warmMs);
        x.all.cold.push(got.all.ms);
        x.all.warm.push(got.all.warmMs);
        x.diffs.push(got.all.ms - got.live.ms);
        ctx.log(
          `  round ${i + 1}, ${
            e.label
          }: ${LIVE} live cold ${got.live.ms.toFixed(
            0,
          )} ms; ${ALL} incl. ${DEAD_N} dead cold ${got.all.ms.toFixed(
            0,
          )} ms, warm ${got.all.warmMs.toFixed(1)} ms`,
        );
      });
    }
    const fanOut = perEngine.map(x => ({
      liveOnly: { cold: summarize(x.live.cold), warm: summarize(x.live.warm) },
      all: { cold: summarize(x.all.cold), warm: summarize(x.all.warm) },
      deadCost: summarize(x.diffs),
    }));
    const { liveOnly, all } = fanOut[0];
    const deadCostM = fanOut[0].deadCost;

    // One black hole on its own: how long until it is reported unreachable.
    const lones = engines.map(() => [] as number[]);
    for (let i = 0; i < (ctx.smoke ? 1 : 3); i++) {
      await eachEngine(i, async (e, j) => {
        const reader = await e.engine.reader(
          fleet.config({ live: 0, dead: 1 }),
        );
        try {
          const t = await timed(() => reader.read('dead-1'));
          if (t.value.state !== 'unreachable')
            throw new Error(
              `${e.label}: the black hole was not reported unreachable`,
            );
          lones[j].push(t.ms);
        } finally {
          await reader.close();
        }
      });
    }
    const lone = lones[0];
    const allNarrowAll = await series(
      `${ALL} incl. ${DEAD_N} dead, concurrency ${FORMER_DEFAULT_CONCURRENCY}`,
      { concurrency: FORMER_DEFAULT_CONCURRENCY },
    );
    const liveNarrowAll = await series(
      `${LIVE} live, concurrency ${FORMER_DEFAULT_CONCURRENCY}`,
      { dead: 0, concurrency: FORMER_DEFAULT_CONCURRENCY },
    );
    const allNarrow = allNarrowAll[0];
    const liveNarrow = liveNarrowAll[0];

    // One cluster: our cold read vs kubectl reading the same objects through the same proxy.
    const ones = engines.map(() => [] as number[]);
    const kubectl: number[] = [];
    const kubeconfig = `${dir}/kubeconfig`;
    const fs = await import('node:fs');
    fs.writeFileSync(
      kubeconfig,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: one\n  cluster:\n    server: ${
          fleet.live[0].url
        }\n    certificate-authority-data: ${Buffer.from(
          fleet.kube.caPem,
        ).toString('base64')}`,
        'users:',
        `- name: admin\n  user:\n    token: ${fleet.kube.adminToken}`,
        'contexts:',
        '- name: one\n  context:\n    cluster: one\n    user: admin',
        'current-context: one',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    for (let i = 0; i < (ctx.smoke ? 1 : Math.max(5, runs)); i++) {
      // Every engine and kubectl, the order rotating per round.
      const readers = async () =>
        eachEngine(i, async (e, j) => {
          ones[j].push((await cold(e.engine, { live: 1, dead: 0 })).ms);
        });
      if (i % 2 === 1) await readers();
      const k = await runChecked(
        findKubectl(),
        [
          '--kubeconfig',
          kubeconfig,
          '--cache-dir',
          `${dir}/kcache-${i}`,
          'get',
          'gitrepositories.source.toolkit.fluxcd.io,kustomizations.kustomize.toolkit.fluxcd.io,deployments',
          '-n',
          'flux-system',
          '-o',
          'name',
        ],
        { env: { PATH: process.env.PATH, HOME: dir } },
      );
      kubectl.push(k.ms);
      if (i % 2 === 0) await readers();
    }
    const oneS = summarize(ones[0]);
    const kS = summarize(kubectl);

    const deadCost = deadCostM.median;
    const hasBase = engines.length > 1;
    /** The baseline engine's figure for a row (the same case, same rounds). */
    const vs = (m: Measure | undefined, peer?: Measure) =>
      hasBase && m
        ? {
            baseline: m,
            baselineRatio: peer ? m.median / peer.median : undefined,
          }
        : {};
    const b = hasBase
      ? {
          fan: fanOut[1],
          lone: summarize(lones[1]),
          liveNarrow: liveNarrowAll[1].cold,
          allNarrow: allNarrowAll[1].cold,
          one: summarize(ones[1]),
        }
      : undefined;
    const rows: Row[] = [
      {
        case: `cold: ${LIVE} live clusters (default concurrency ${DEFAULT_STATUS_CONCURRENCY})`,
        ours: liveOnly.cold,
        goal: `< ${COLD_GOAL_MS} ms`,
        met: liveOnly.cold.median < COLD_GOAL_MS,
        ...vs(b?.fan.liveOnly.cold),
      },
      {
        case: `cold: ${ALL} clusters incl. ${DEAD_N} black holes (default concurrency ${DEFAULT_STATUS_CONCURRENCY})`,
        ours: all.cold,
        ...vs(b?.fan.all.cold),
      },
      {
        case: `cost of the ${DEAD_N} black holes (per round: with them − without them)`,
        ours: deadCostM,
        goal: `≤ the per-cluster timeout (${timeoutMs / 1000} s)`,
        met: deadCost <= timeoutMs,
        ...vs(b?.fan.deadCost),
      },
      {
        case: 'one black hole read alone: time until it is reported unreachable',
        ours: summarize(lone),
        ...vs(b?.lone),
      },
      {
        case: `warm (cached): ${ALL} clusters`,
        ours: all.warm,
        goal: `< ${WARM_GOAL_MS} ms`,
        met: all.warm.median < WARM_GOAL_MS,
        ...vs(b?.fan.all.warm),
      },
      {
        case: `cold: ${LIVE} live clusters, concurrency ${FORMER_DEFAULT_CONCURRENCY} (the former default)`,
        ours: liveNarrow.cold,
        ...vs(b?.liveNarrow),
      },
      {
        case: `cold: ${ALL} clusters incl. ${DEAD_N} black holes, concurrency ${FORMER_DEFAULT_CONCURRENCY} (the former default)`,
        ours: allNarrow.cold,
        ...vs(b?.allNarrow),
      },
      {
        case: 'cold: one cluster, our reader vs kubectl get of the same objects',
        ours: oneS,
        peer: kS,
        ratio: oneS.median / kS.median,
        ...vs(b?.one, kS),
      },
    ];
    const analysis: string[] = [];
    const perCluster = oneS.median;
    const waves = Math.ceil(LIVE / DEFAULT_STATUS_CONCURRENCY);
    analysis.push(
      `Cold over ${LIVE} clusters: one cold cluster costs ${Math.round(
        perCluster,
      )} ms here — one TLS connection (HTTP/2), then its independent requests together on it (the Flux CRD's metadata, the FluxReports, the Deployments, the Kustomization and its GitRepository; these well-known kinds are read without discovery requests), so about one ${
        2 * ONE_WAY_MS
      } ms round trip after the handshake instead of a chain of ten. With \`fluxBootstrap.status.concurrency\` at its default of ${DEFAULT_STATUS_CONCURRENCY} the fleet is read in ${waves} wave${
        waves > 1 ? 's' : ''
      }; what the fan-out adds to one cluster's time is CPU (on this machine also the bench's own 95 latency proxies and the apiserver): ${LIVE} TLS handshakes and JSON decoding at once on a shared 2-core machine. The former default of ${FORMER_DEFAULT_CONCURRENCY} needs ${Math.ceil(
        LIVE / FORMER_DEFAULT_CONCURRENCY,
      )} waves (${fmtMs(liveNarrow.cold.median)}).${
        liveOnly.cold.median >= COLD_GOAL_MS
          ? ' Missed in this run: the CPU of the handshakes on this loaded machine is what remains.'
          : ''
      }`,
    );
    const deadNote = `Black holes: a dead cluster is reported unreachable after ${fmtMs(
      summarize(lone).median,
    )} when read alone (the ${
      timeoutMs / 1000
    } s deadline holds). With the default concurrency every cluster has its own slot, so the dead ones end at their deadline alongside the live ones and the fan-out takes the timeout itself (${fmtMs(
      all.cold.median,
    )}); with a concurrency below the number of clusters each dead one also holds a slot for that long, and the queued live clusters wait behind it (concurrency ${FORMER_DEFAULT_CONCURRENCY}: ${fmtMs(
      allNarrow.cold.median,
    )}).`;
    if (deadCost > timeoutMs) {
      analysis.push(
        `${deadNote} The per-round cost above the timeout is slots taken from the live clusters queued beside the dead ones, plus machine noise; a concurrency above the number of clusters (or reading known-unreachable clusters on their own budget) removes it.`,
      );
    } else {
      analysis.push(deadNote);
    }
    if (all.warm.median >= WARM_GOAL_MS) {
      analysis.push(
        "Warm reads go through Backstage's cache service (one get per cluster); a miss here means the cache entries expired or were not written.",
      );
    }
    return {
      oursLabel: 'FluxStatusReader.readMany',
      peerLabel: 'kubectl get (process)',
      rows,
      baseline: baseline && {
        rev: baseline.rev,
        commit: baseline.commit,
        todayCalls: todayStatus.calls,
        baselineCalls: `${
          baseEngine!.calls
        }; every case runs both engines in the same rounds (the order alternating), the same config (default concurrency = the engine's own default unless a line sets it) and the same cache service`,
      },
      method: [
        `One private kube-apiserver with Flux bootstrapped by the engine (token auth over smart HTTP) and the Flux controller simulator keeping it Ready, exposed as ${LIVE} clusters through loopback TCP proxies that delay every byte by ${ONE_WAY_MS} ms in each direction (+${
          2 * ONE_WAY_MS
        } ms per round trip), and ${DEAD_N} black holes that accept connections and never answer.`,
        `The reader as the status backend builds it: \`createFluxStatusReader(config, { cache })\` with Backstage's \`ConfigReader\` over \`kubernetes.clusterLocatorMethods\` and the cache service of \`@backstage/backend-defaults\` (memory store), \`fluxBootstrap.status\` defaults (5 s per-cluster timeout, 15 s cache TTL, concurrency ${DEFAULT_STATUS_CONCURRENCY}) unless a line says otherwise.`,
        'Cold: a new reader each run (no cache, no connections, no discovery) reading every cluster with `readMany`; warm: the same reader again right after (within the TTL). Every live cluster must come back with its status and every black hole as unreachable, or the run fails.',
        'Peer line: kubectl as a process, with a fresh discovery cache, reading the GitRepositories, Kustomizations and Deployments of flux-system through the same proxy (what a person would run to check one cluster).',
      ],
      analysis,
    };
  },
};
