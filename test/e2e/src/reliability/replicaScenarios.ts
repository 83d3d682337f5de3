/* eslint-disable jest/no-export */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '@flux-bootstrap/test-peers';
import { SANDBOX } from '../sandbox';
import type { TaskResult } from '../scaffolder';
import {
  accessKeysOf,
  BITBUCKET_TEMPLATE,
  bitbucketValues,
  branchHistory,
  finishScan,
  fluxStatus,
  GIT_TEMPLATE,
  kubeRequestsSince,
  kubeWrites,
  lastSeq,
  reposOf,
  ScannedTask,
  short,
  until,
} from './helpers';
import { Replica, ReplicaWorld, startReplicaWorld } from './replicas';
import { RESULTS_FILE, ReliabilityReport } from './report';
import type { World } from './world';

/** The apiserver request that starts every status read (the Flux CRD's metadata): one per read. */
const isStatusRead = (q: { method: string; path: string }) =>
  q.method === 'GET' &&
  q.path.endsWith(
    '/customresourcedefinitions/gitrepositories.source.toolkit.fluxcd.io',
  );

const FLUX_COMMITS = [
  'Add Flux v2.9.4 component manifests',
  'Add Flux sync manifests',
];

/**
 * The two-replica scenarios of the reliability suite (issue #20): exactly once, failover on
 * SIGKILL, drain on SIGTERM, the shared status cache and a Redis outage — against two real
 * backend processes on the suite's PostgreSQL and a real Redis (see replicas.ts).
 */
export function replicaScenarios(ctx: {
  world: () => World;
  report: ReliabilityReport;
  area: string;
}): void {
  const { area } = ctx;
  let rw: ReplicaWorld;
  let world: World;
  let tmp: string;
  /** Like report.scenario, and a failure is in the world log at once (the suite runs for minutes). */
  const report = {
    scenario: async (
      a: string,
      scenario: string,
      injected: string,
      body: () => Promise<string>,
    ) =>
      ctx.report.scenario(a, scenario, injected, async () => {
        try {
          return await body();
        } catch (e) {
          world.log(
            `[replicas] scenario failed: ${scenario}: ${
              e instanceof Error ? e.stack ?? e.message : e
            }`,
          );
          throw e;
        }
      }),
    note: (text: string) => ctx.report.note(text),
  };

  /** Whether a log line is the scaffolder's audit event of a worker starting to execute the task. */
  const executes = (line: string, taskId: string) =>
    line.includes(taskId) && line.includes('"actionType":"execution"');
  /** Replicas whose task worker executed the task (the audit event carries the task id). */
  const ranOn = (taskId: string) =>
    rw.replicas.filter(r => r.logs.some(l => executes(l, taskId)));
  /** Waits for a task through a replica that is running. */
  const waitTask = async (id: string, label: string, via?: Replica) => {
    const r = via ?? rw.replicas.find(x => x.running())!;
    const result = await r.api.waitForTask(id, l =>
      world.log(`[${label}] ${l}`),
    );
    return finishScan(world, label, result, r.api);
  };
  const createTask = (
    r: Replica,
    template: string,
    values: Record<string, unknown>,
    secrets?: Record<string, string>,
  ) => r.api.createTask(template, values, secrets);
  const stepStarts = (t: TaskResult) =>
    t.events
      .filter(
        e => e.type === 'log' && /^Beginning step /.test(e.body.message ?? ''),
      )
      .map(e => e.body.stepId ?? '?');

  // eslint-disable-next-line jest/valid-title
  describe(area, () => {
    beforeAll(async () => {
      world = ctx.world();
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-replicas-'));
      const started = Date.now();
      rw = await startReplicaWorld(world, { clusters: 10, tmp });
      report.note(
        `Two-replica ground (section ${area}): Redis, 10 kube-apiservers and two backends started in ${Math.round(
          (Date.now() - started) / 1000,
        )} s.`,
      );
    }, 900_000);

    afterAll(async () => {
      if (rw) {
        for (const r of rw.replicas) {
          world.scanner.scan(
            `replica backend logs (two processes): ${r.name}`,
            r.logs.join('\n'),
          );
          fs.mkdirSync(path.dirname(RESULTS_FILE), { recursive: true });
          fs.writeFileSync(
            path.join(path.dirname(RESULTS_FILE), `${r.name}.log`),
            `${r.logs.join('\n')}\n`,
          );
        }
        await rw.stop();
      }
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }, 180_000);

    it('exactly once: 10 template runs submitted at the same moment, alternating between the replicas, each run once', async () => {
      await report.scenario(
        area,
        'Exactly once: 10 template runs (7 Bitbucket, 3 git; 10 clusters, 10 repositories) submitted at the same moment, alternating between two replicas',
        'two backend processes claiming from one PostgreSQL task queue; no fault',
        async () => {
          const bb = world.bitbucket;
          const specs = await Promise.all(
            rw.clusters.map(async (cluster, i) => {
              if (i % 3 === 2) {
                const repo = `replica-git-${i + 1}`;
                bb.createRepo(SANDBOX.project, repo, {
                  defaultBranch: 'main',
                  initialCommit: true,
                });
                const keyFile = path.join(tmp, `key-${i}`);
                await run('ssh-keygen', [
                  '-q',
                  '-t',
                  'ed25519',
                  '-N',
                  '',
                  '-C',
                  repo,
                  '-f',
                  keyFile,
                ]);
                const privateKey = fs.readFileSync(keyFile, 'utf8');
                const publicKey = fs
                  .readFileSync(`${keyFile}.pub`, 'utf8')
                  .trim();
                world.scanner.addPrivateKey(
                  `git template key ${repo}`,
                  privateKey,
                  publicKey,
                );
                bb.addAccessKey(
                  SANDBOX.project,
                  repo,
                  { text: publicKey, label: repo },
                  'REPO_WRITE',
                );
                return {
                  cluster,
                  kind: 'git' as const,
                  auth: 'ssh' as 'ssh' | 'token',
                  project: SANDBOX.project,
                  repo,
                  template: GIT_TEMPLATE,
                  values: {
                    cluster: cluster.name,
                    owner: 'group:default/platform-team',
                    url: bb.cloneUrls(SANDBOX.project, repo).ssh!,
                    branch: 'main',
                    knownHosts: bb.ssh!.knownHosts,
                    sshPrivateKey: '*'.repeat(privateKey.length),
                  },
                  secrets: { sshPrivateKey: privateKey } as Record<
                    string,
                    string
                  >,
                };
              }
              const repo = `replica-fleet-${i + 1}`;
              const project = i % 2 ? SANDBOX.project : `~${SANDBOX.user}`;
              const auth: 'ssh' | 'token' = i % 4 === 1 ? 'token' : 'ssh';
              return {
                cluster,
                kind: 'bitbucket' as const,
                auth,
                project,
                repo,
                template: BITBUCKET_TEMPLATE,
                values: bitbucketValues(world, {
                  repo,
                  project,
                  cluster: cluster.name,
                  auth,
                  // Token auth: Flux signs in over HTTPS as the token's owner.
                  extra: auth === 'token' ? { username: SANDBOX.user } : {},
                }),
                secrets: { token: world.canaries.bitbucketToken } as Record<
                  string,
                  string
                >,
              };
            }),
          );
          const marks = specs.map(s => lastSeq(s.cluster.proxy));
          const t0 = Date.now();
          const ids = await Promise.all(
            specs.map((s, i) =>
              createTask(rw.replicas[i % 2], s.template, s.values, s.secrets),
            ),
          );
          const results: ScannedTask[] = await Promise.all(
            ids.map((id, i) =>
              waitTask(id, `replicas run ${i + 1}`, rw.replicas[i % 2]),
            ),
          );
          const seconds = Math.round((Date.now() - t0) / 1000);

          const problems: string[] = [];
          const claimedBy: Record<string, number> = {};
          let writes = 0;
          results.forEach((r, i) => {
            const s = specs[i];
            const label = `run ${i + 1} (${s.kind}, ${s.cluster.name})`;
            if (r.status !== 'completed')
              problems.push(`${label}: ${r.status} ${short(r.error, 200)}`);
            if (r.events.some(e => e.type === 'recovered'))
              problems.push(`${label}: was recovered`);
            const starts = stepStarts(r);
            if (new Set(starts).size !== starts.length)
              problems.push(`${label}: a step began twice: ${starts}`);
            const on = ranOn(ids[i]).map(x => x.name);
            if (on.length > 1) problems.push(`${label}: in the logs of ${on}`);
            for (const n of on) claimedBy[n] = (claimedBy[n] ?? 0) + 1;
            const cw = kubeWrites(kubeRequestsSince(s.cluster.proxy, marks[i]));
            writes += cw.length;
            const seen = new Map<string, number>();
            for (const w of cw) {
              const k = `${w.method} ${w.path}`;
              seen.set(k, (seen.get(k) ?? 0) + 1);
            }
            // flux:generate-key (or the git template's Secret step) ensures the namespace of the
            // Secret it writes, and flux:install applies the Namespace of gotk-components.yaml:
            // two steps, one write each. Every other object is written by one step only.
            const ns = 'PATCH /api/v1/namespaces/flux-system';
            if ((seen.get(ns) ?? 0) > 2)
              problems.push(`${label}: ${ns} ×${seen.get(ns)}`);
            seen.delete(ns);
            const twice = [...seen].filter(([, n]) => n > 1);
            if (twice.length)
              problems.push(
                `${label}: written more than once: ${twice
                  .map(([k, n]) => `${k} ×${n}`)
                  .join(', ')}`,
              );
          });
          for (const s of specs) {
            const repos = reposOf(world.bitbucket, s.project).filter(
              r => r.slug === s.repo,
            );
            if (repos.length !== 1)
              problems.push(`${s.repo}: ${repos.length} repositories`);
            if (s.kind === 'bitbucket') {
              // SSH: Flux's deploy key; token auth: Flux reads with the token, no key.
              const want = s.auth === 'token' ? 0 : 1;
              const keys = accessKeysOf(world.bitbucket, s.project, s.repo);
              if (keys.length !== want)
                problems.push(
                  `${s.repo}: ${keys.length} access keys, want ${want}`,
                );
            }
            const history = await branchHistory(
              world.bitbucket,
              s.project,
              s.repo,
            );
            const subjects = history.slice(1).map(c => c.subject);
            if (JSON.stringify(subjects) !== JSON.stringify(FLUX_COMMITS))
              problems.push(`${s.repo}: commits ${JSON.stringify(subjects)}`);
          }
          expect(problems).toEqual([]);
          return `10 of 10 completed in ${seconds} s, none recovered, every step began once; 10 repositories, each with exactly initial + the 2 Flux commits, 1 access key per SSH run (none for the 2 token-auth runs); ${writes} apiserver writes over the 10 clusters, no object written twice (the flux-system Namespace once by the key step and once by flux:install); runs executed per replica (audit events): ${
            Object.entries(claimedBy)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || 'not in the logs'
          }`;
        },
      );
    });

    it('shared status cache: 50 concurrent requests for 3 clusters over both replicas read each cluster once', async () => {
      await report.scenario(
        area,
        'Shared status cache: 50 concurrent status requests for the same 3 clusters, alternating between the replicas, within one TTL',
        'empty shared cache (Redis entries deleted); backend.cache on Redis; read leases in PostgreSQL',
        async () => {
          const clusters = rw.clusters.slice(2, 5);
          for (const k of await rw.redis.keys('flux-bootstrap:*'))
            await rw.redis.command('DEL', k);
          const wave = async () => {
            const marks = clusters.map(c => lastSeq(c.proxy));
            const t0 = Date.now();
            const answers = await Promise.all(
              Array.from({ length: 50 }, (_, i) =>
                rw.replicas[i % 2].api.request<{
                  state: string;
                  checkedAt: string;
                  cluster: string;
                }>(
                  'GET',
                  `/api/flux-bootstrap/clusters/${clusters[i % 3].name}`,
                ),
              ),
            );
            const ms = Date.now() - t0;
            for (const a of answers) {
              expect(a.status).toBe(200);
              expect(a.body.state).toBe('ready');
              world.scanner.scan('status API answers: replicas', a.text);
            }
            const reads = clusters.map(
              (c, i) =>
                kubeRequestsSince(c.proxy, marks[i]).filter(isStatusRead)
                  .length,
            );
            const checkedAts = clusters.map(
              c =>
                new Set(
                  answers
                    .filter(a => a.body.cluster === c.name)
                    .map(a => a.body.checkedAt),
                ).size,
            );
            return { reads, checkedAts, ms };
          };
          const cold = await wave();
          expect(cold.reads).toEqual([1, 1, 1]);
          expect(cold.checkedAts).toEqual([1, 1, 1]);
          const warm = await wave();
          expect(warm.reads).toEqual([0, 0, 0]);
          const keys = await rw.redis.keys('flux-bootstrap:*');
          expect(keys.length).toBeGreaterThanOrEqual(3);
          return `cold: 50 answers in ${
            cold.ms
          } ms from both replicas, apiserver reads per cluster ${cold.reads.join(
            '/',
          )} (every answer of a cluster with the same checkedAt); again within the TTL: 50 answers in ${
            warm.ms
          } ms, reads ${warm.reads.join('/')}; ${
            keys.length
          } status entries in Redis`;
        },
      );
    });

    it('failover: a replica killed (SIGKILL) during flux:install; the other recovers the task after the stale timeout and completes it', async () => {
      await report.scenario(
        area,
        'Failover: the replica running a bootstrap killed with SIGKILL during flux:install; the other replica takes the task over',
        `the GitRepository apply of a re-bootstrap (new repository) held by the fault proxy, then kill -9 of the replica running the task; scaffolder.taskRecovery.staleTimeout ${rw.staleTimeoutSeconds} s`,
        async () => {
          const cluster = rw.clusters[0];
          const repo = 'replica-failover';
          const seq = lastSeq(cluster.proxy);
          cluster.proxy.inject({
            method: 'PATCH',
            path: /\/gitrepositories\/flux-system$/,
            notQuery: 'dryRun=All',
            blackhole: true,
            times: 1,
          });
          const id = await createTask(
            rw.replicas[0],
            BITBUCKET_TEMPLATE,
            bitbucketValues(world, {
              repo,
              project: SANDBOX.project,
              cluster: cluster.name,
            }),
            { token: world.canaries.bitbucketToken },
          );
          await until(
            () =>
              kubeRequestsSince(cluster.proxy, seq).some(
                q => q.fault === 'black hole',
              ),
            100,
          );
          const [victim, ...others] = ranOn(id);
          expect(others).toEqual([]);
          expect(victim).toBeDefined();
          const survivor = rw.replicas.find(r => r !== victim)!;
          const killedAt = Date.now();
          await victim.stop('SIGKILL');
          cluster.proxy.clearFaults();
          const result = await waitTask(id, 'failover', survivor);
          const tookMs = Date.now() - killedAt;
          expect(result.status).toBe('completed');
          const recovered = result.events.find(e => e.type === 'recovered');
          expect(recovered).toBeDefined();
          const recoveredAfter = Date.parse(recovered!.createdAt) - killedAt;
          const skipped = result.log
            .filter(l => /Skipping step .* already completed/.test(l))
            .map(l => l.split(':')[0]);
          expect(skipped).toEqual([
            'createRepo',
            'pushManifests',
            'generateKey',
          ]);
          expect(survivor.logs.some(l => executes(l, id))).toBe(true);
          expect(
            reposOf(world.bitbucket, SANDBOX.project).filter(
              r => r.slug === repo,
            ),
          ).toHaveLength(1);
          expect(
            accessKeysOf(world.bitbucket, SANDBOX.project, repo),
          ).toHaveLength(1);
          const history = await branchHistory(
            world.bitbucket,
            SANDBOX.project,
            repo,
          );
          expect(history.slice(1).map(c => c.subject)).toEqual(FLUX_COMMITS);
          const ks = await fluxStatus(cluster, 'kustomizations');
          expect(ks?.status?.lastAppliedRevision).toBe(
            `main@sha1:${history.at(-1)!.sha}`,
          );
          const restartStarted = Date.now();
          await victim.start();
          return `${victim.name} killed while its apply was held; ${
            survivor.name
          } recovered the task ${Math.round(
            recoveredAfter / 1000,
          )} s later (stale timeout ${
            rw.staleTimeoutSeconds
          } s; each replica looks for stale tasks every 10 s; load average ${os
            .loadavg()[0]
            .toFixed(0)} on 2 cores), skipped ${skipped.join(
            ', ',
          )}, re-ran flux:install from its checkpoints and completed ${Math.round(
            tookMs / 1000,
          )} s after the kill; 1 repository, 1 access key, initial + 2 Flux commits; Flux synced the new head; ${
            victim.name
          } restarted in ${Math.round((Date.now() - restartStarted) / 1000)} s`;
        },
      );
    });

    /** Starts a re-bootstrap of `cluster` with a new repository and returns when its GitRepository apply is held back. */
    const bootstrapUntilSyncApply = async (
      cluster: (typeof rw.clusters)[number],
      repo: string,
      via: Replica,
    ) => {
      const seq = lastSeq(cluster.proxy);
      cluster.proxy.inject({
        method: 'PATCH',
        path: /\/gitrepositories\/flux-system$/,
        notQuery: 'dryRun=All',
        delayMs: 8000,
        times: 1,
      });
      const id = await createTask(
        via,
        BITBUCKET_TEMPLATE,
        bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
          cluster: cluster.name,
        }),
        { token: world.canaries.bitbucketToken },
      );
      await until(
        () =>
          kubeRequestsSince(cluster.proxy, seq).some(q =>
            /delay/.test(q.fault ?? ''),
          ),
        100,
      );
      return id;
    };

    it('SIGTERM (default settings): the replica stops at once and the other takes the task over', async () => {
      await report.scenario(
        area,
        'SIGTERM to the replica running a bootstrap, during flux:install (Backstage default: no scaffolder.EXPERIMENTAL_gracefulShutdown)',
        'the GitRepository apply of a re-bootstrap delayed 8 s by the fault proxy; SIGTERM to the replica running the task while it waits',
        async () => {
          const cluster = rw.clusters[1];
          const repo = 'replica-sigterm';
          const id = await bootstrapUntilSyncApply(
            cluster,
            repo,
            rw.replicas[1],
          );
          const [stopped, ...others] = ranOn(id);
          expect(others).toEqual([]);
          const other = rw.replicas.find(r => r !== stopped)!;
          const sigtermAt = Date.now();
          const how = await stopped.stop('SIGTERM');
          const result = await waitTask(id, 'sigterm', other);
          const tookMs = Date.now() - sigtermAt;
          const restartStarted = Date.now();
          await stopped.start();
          const restartS = Math.round((Date.now() - restartStarted) / 1000);
          expect(how.code).toBe(0);
          expect(result.status).toBe('completed');
          expect(result.events.some(e => e.type === 'recovered')).toBe(true);
          expect(other.logs.some(l => executes(l, id))).toBe(true);
          const skipped = result.log
            .filter(l => /Skipping step .* already completed/.test(l))
            .map(l => l.split(':')[0]);
          expect(skipped).toEqual([
            'createRepo',
            'pushManifests',
            'generateKey',
          ]);
          expect(
            accessKeysOf(world.bitbucket, SANDBOX.project, repo),
          ).toHaveLength(1);
          const history = await branchHistory(
            world.bitbucket,
            SANDBOX.project,
            repo,
          );
          expect(history.slice(1).map(c => c.subject)).toEqual(FLUX_COMMITS);
          return `${stopped.name} exited with code ${how.code} ${Math.round(
            how.ms / 1000,
          )} s after SIGTERM, its step cut off; ${
            other.name
          } recovered the task after the stale timeout, skipped ${skipped.join(
            ', ',
          )} and completed ${Math.round(
            tookMs / 1000,
          )} s after the signal; 1 access key, initial + 2 Flux commits; ${
            stopped.name
          } restarted in ${restartS} s`;
        },
      );
    });

    it('SIGTERM with EXPERIMENTAL_gracefulShutdown: the task worker drains, but the catalog of the stopping replica is gone; a re-run completes', async () => {
      await report.scenario(
        area,
        'SIGTERM to the replica running a bootstrap, during flux:install, with scaffolder.EXPERIMENTAL_gracefulShutdown: true (drain)',
        'only that replica running (the other stopped), the GitRepository apply delayed 8 s, SIGTERM while it waits; then both replicas again and a re-run',
        async () => {
          const [draining, other] = rw.replicas;
          await other.stop('SIGTERM');
          await draining.stop('SIGTERM');
          await draining.start({ gracefulShutdown: true });
          const cluster = rw.clusters[5];
          const repo = 'replica-drain';
          const id = await bootstrapUntilSyncApply(cluster, repo, draining);
          const sigtermAt = Date.now();
          const exit = draining.stop('SIGTERM');
          await other.start();
          const how = await exit;
          const result = await waitTask(id, 'drain', other);
          const completedAt = Date.parse(
            result.events.find(e => e.type === 'completion')!.createdAt,
          );
          await draining.start();
          expect(how.code).toBe(0);
          expect(completedAt).toBeLessThanOrEqual(sigtermAt + how.ms);
          expect(result.events.some(e => e.type === 'recovered')).toBe(false);
          expect(result.stepStatus.install).toBe('completed');
          expect(result.status).toBe('failed');
          const failedStep = Object.entries(result.stepStatus).find(
            ([, st]) => st === 'failed',
          )?.[0];
          expect(failedStep).toBe('waitForCluster');

          const rerun = await waitTask(
            await createTask(
              other,
              BITBUCKET_TEMPLATE,
              bitbucketValues(world, {
                repo,
                project: SANDBOX.project,
                cluster: cluster.name,
              }),
              { token: world.canaries.bitbucketToken },
            ),
            'drain re-run',
            other,
          );
          expect(rerun.status).toBe('completed');
          expect(
            accessKeysOf(world.bitbucket, SANDBOX.project, repo),
          ).toHaveLength(1);
          const history = await branchHistory(
            world.bitbucket,
            SANDBOX.project,
            repo,
          );
          expect(history.slice(1).map(c => c.subject)).toEqual(FLUX_COMMITS);
          return `${
            draining.name
          } stopped claiming and finished flux:install (the task ended ${Math.round(
            (completedAt - sigtermAt) / 1000,
          )} s after SIGTERM, before the process exited with code ${
            how.code
          } after ${Math.round(
            how.ms / 1000,
          )} s, not recovered elsewhere); but Backstage shuts every plugin down at once, so the catalog of that replica already answered 503 and the task failed in step ${failedStep}: "${short(
            result.error,
            120,
          )}". A re-run on ${
            other.name
          } completed: 1 access key, initial + 2 Flux commits. (Hence docs/production.md: keep the default, recovery hands the task over.)`;
        },
      );
    });

    it('Redis down: status requests are still answered, each replica reads for itself, and says so', async () => {
      await report.scenario(
        area,
        'Redis stopped while both replicas serve status requests',
        'redis-server stopped (SIGTERM), then 20 status requests for 3 clusters over both replicas; then Redis started again',
        async () => {
          const clusters = rw.clusters.slice(2, 5);
          const marks = clusters.map(c => lastSeq(c.proxy));
          await rw.redis.kill();
          const t0 = Date.now();
          const timings: number[] = [];
          const answers = await Promise.all(
            Array.from({ length: 20 }, async (_, i) => {
              const t = Date.now();
              const a = await rw.replicas[i % 2].api.request<{
                state: string;
              }>('GET', `/api/flux-bootstrap/clusters/${clusters[i % 3].name}`);
              timings.push(Date.now() - t);
              return a;
            }),
          );
          const ms = Date.now() - t0;
          for (const a of answers) {
            expect(a.status).toBe(200);
            expect(a.body.state).toBe('ready');
          }
          const reads = clusters.map(
            (c, i) =>
              kubeRequestsSince(c.proxy, marks[i]).filter(isStatusRead).length,
          );
          for (const n of reads) expect(n).toBeLessThanOrEqual(2);
          const said = rw.replicas.map(r =>
            r.logs.some(l => /Shared status cache unavailable/.test(l)),
          );
          expect(said).toEqual([true, true]);
          // Redis back: does the cache service find it again?
          await rw.redis.start();
          let shared = false;
          for (let i = 0; i < 20 && !shared; i++) {
            await new Promise(r => setTimeout(r, 1000));
            await rw.replicas[i % 2].api.request(
              'GET',
              `/api/flux-bootstrap/clusters/${clusters[0].name}?refresh=true`,
            );
            shared = (await rw.redis.keys('flux-bootstrap:*')).length > 0;
          }
          return `20 answers in ${ms} ms (slowest ${Math.max(
            ...timings,
          )} ms: the first calls wait for the 1 s cache timeout, then Redis is skipped), apiserver reads per cluster ${reads.join(
            '/',
          )} (at most one per replica); both replicas logged "Shared status cache unavailable … cached in this replica's memory"; after Redis came back ${
            shared
              ? 'status entries were written to it again within 20 s'
              : "no entry reached it within 20 s: the redis store's client does not reconnect after an outage (backstage/backstage#31742) — the replicas stay on their own caches until restarted; the valkey store reconnects (docs/production.md)"
          }`;
        },
      );
    });
  });
}
