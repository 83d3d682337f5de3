import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import yaml from 'yaml';
import {
  freePort,
  startTestRedis,
  TestRedis,
} from '@flux-bootstrap/test-peers';
import { BackstageApi } from '../scaffolder';
import { startWorldCluster, World, WorldCluster } from './world';

// Plain CommonJS helpers shared with `npm start` (frontend build, backend process).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const runner = require('backend/scripts/app-runner') as {
  repoRoot: string;
  startBackend(opts: {
    configPaths?: string[];
    includeLocalConfig?: boolean;
    env?: NodeJS.ProcessEnv;
    onLine?: (line: string) => void;
  }): ChildProcess;
  waitForBackend(
    baseUrl: string,
    opts?: { child?: ChildProcess; log?: (line: string) => void },
  ): Promise<number>;
};

/** One `packages/backend` process of the two-replica ground. */
export interface Replica {
  name: string;
  /** Its own address (a load balancer would send traffic here). */
  url: string;
  api: BackstageApi;
  /** Every log line of this replica (stdout + stderr, across restarts). */
  logs: string[];
  pid(): number | undefined;
  running(): boolean;
  /**
   * Starts the process (again) and waits until it is ready and signed in; `gracefulShutdown`
   * adds `scaffolder.EXPERIMENTAL_gracefulShutdown: true` for this start.
   */
  start(opts?: { gracefulShutdown?: boolean }): Promise<void>;
  /**
   * Sends `signal` and waits for the exit; resolves with how it ended and how long it took
   * (SIGTERM: Backstage's graceful shutdown; SIGKILL: a crash).
   */
  stop(
    signal: NodeJS.Signals,
  ): Promise<{ code: number | null; signal: string | null; ms: number }>;
}

/**
 * The production topology on one machine: two `packages/backend` processes (different ports)
 * behind a round-robin TCP load balancer that is their common `backend.baseUrl`, sharing the
 * suite's PostgreSQL (their own databases, prefix `replicas_`) and one real Redis (Backstage's
 * cache service through REDIS_URL, i.e. app-config.redis.yaml), with scaffolder task recovery
 * on, and their own clusters (fresh kube-apiservers behind fault proxies).
 */
export interface ReplicaWorld {
  redis: TestRedis;
  replicas: [Replica, Replica];
  /** The load balancer's URL (`backend.baseUrl` of both). */
  baseUrl: string;
  clusters: WorldCluster[];
  /** `scaffolder.taskRecovery.staleTimeout` of the replicas (s). */
  staleTimeoutSeconds: number;
  /** `fluxBootstrap.status.cacheTtlSeconds` of the replicas. */
  cacheTtlSeconds: number;
  stop(): Promise<void>;
}

/** Accepts on 127.0.0.1 and forwards each connection to the next live target, round robin. */
async function startLoadBalancer(
  ports: () => number[],
): Promise<{ port: number; stop(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let next = 0;
  const server = net.createServer(client => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    client.pause();
    const targets = ports();
    const tryTarget = (attempt: number) => {
      if (attempt >= targets.length) {
        client.destroy();
        return;
      }
      const port = targets[next++ % targets.length];
      const upstream = net.connect(port, '127.0.0.1');
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        client.pipe(upstream).pipe(client);
        client.resume();
      });
      upstream.on('error', () => {
        if (connected) client.destroy();
        else tryTarget(attempt + 1);
      });
    };
    tryTarget(0);
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () =>
      resolve((server.address() as net.AddressInfo).port),
    );
  });
  return {
    port,
    stop: () =>
      new Promise(resolve => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

export async function startReplicaWorld(
  world: World,
  opts: { clusters: number; tmp: string },
): Promise<ReplicaWorld> {
  const { log } = world;
  const stops: { name: string; stop: () => Promise<void> }[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log(`stopping ${s.name} failed: ${e instanceof Error ? e.message : e}`);
      }
    }
    stops.length = 0;
  };
  try {
    const redisPassword = `CANARY-redis-${crypto
      .randomBytes(12)
      .toString('hex')}`;
    world.scanner.add('Redis password', redisPassword);
    const redis = await startTestRedis({ password: redisPassword });
    stops.push({ name: 'Redis', stop: () => redis.stop() });
    log(`Redis ${redis.host}:${redis.port} (no persistence, requirepass)`);

    const clusters: WorldCluster[] = [];
    // Two at a time: each is an etcd + kube-apiserver starting on a shared 2-core machine.
    for (let i = 0; i < opts.clusters; i += 2) {
      clusters.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(2, opts.clusters - i) }, (_, j) =>
            startWorldCluster(`replica-c${i + j + 1}`, {
              log,
              stops,
              simulatorIntervalMs: 1000,
            }),
          ),
        )),
      );
    }
    for (const c of clusters)
      world.scanner.add(`${c.name} cluster token`, c.kube.adminToken);

    const ports = [await freePort(), await freePort()];
    const live = new Set<number>();
    const lb = await startLoadBalancer(() => ports.filter(p => live.has(p)));
    stops.push({ name: 'load balancer', stop: () => lb.stop() });
    const baseUrl = `http://127.0.0.1:${lb.port}`;

    const staleTimeoutSeconds = 8;
    const cacheTtlSeconds = 15;
    const base = yaml.parse(
      fs.readFileSync(path.join(runner.repoRoot, 'app-config.yaml'), 'utf8'),
    );
    const configFor = (port: number) => ({
      app: { baseUrl },
      backend: {
        baseUrl,
        listen: { host: '127.0.0.1', port },
        cors: { origin: baseUrl },
        // Their own databases on the suite's PostgreSQL (the main backend keeps backstage_plugin_*).
        database: { prefix: 'replicas_' },
      },
      scaffolder: {
        taskRecovery: {
          enabled: true,
          staleTimeout: { seconds: staleTimeoutSeconds },
        },
      },
      fluxBootstrap: { status: { cacheTtlSeconds } },
      kubernetes: {
        serviceLocatorMethod: { type: 'multiTenant' },
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: clusters.map(c => ({
              name: c.name,
              url: c.proxy.url,
              authProvider: 'serviceAccount',
              serviceAccountToken: c.kube.adminToken,
              caData: b64(c.proxy.caPem),
            })),
          },
        ],
      },
      catalog: { locations: base?.catalog?.locations ?? [] },
    });
    const env = {
      ...world.sandbox.env,
      POSTGRES_HOST: world.pg.host,
      POSTGRES_PORT: String(world.pg.port),
      POSTGRES_USER: world.pg.user,
      POSTGRES_PASSWORD: world.pg.password,
      REDIS_URL: redis.url,
    };

    const replicas = ports.map((port, i): Replica => {
      const name = `replica-${i + 1}`;
      const configPath = path.join(opts.tmp, `app-config.${name}.yaml`);
      fs.writeFileSync(configPath, JSON.stringify(configFor(port), null, 2));
      const url = `http://127.0.0.1:${port}`;
      const logs: string[] = [];
      let child: ChildProcess | undefined;
      let api: BackstageApi | undefined;
      const running = () =>
        !!child && child.exitCode === null && child.signalCode === null;
      const replica: Replica = {
        name,
        url,
        get api() {
          if (!api) throw new Error(`${name} has not started`);
          return api;
        },
        logs,
        pid: () => child?.pid,
        running,
        async start(o = {}) {
          if (running()) return;
          const started = Date.now();
          const graceful = path.join(
            opts.tmp,
            `app-config.${name}.graceful.yaml`,
          );
          if (o.gracefulShutdown) {
            fs.writeFileSync(
              graceful,
              JSON.stringify({
                scaffolder: { EXPERIMENTAL_gracefulShutdown: true },
              }),
            );
          }
          child = runner.startBackend({
            configPaths: [
              path.join(runner.repoRoot, 'app-config.sandbox.yaml'),
              world.sandbox.configPath,
              configPath,
              ...(o.gracefulShutdown ? [graceful] : []),
            ],
            includeLocalConfig: false,
            env,
            onLine: line => logs.push(line),
          });
          await runner.waitForBackend(url, { child });
          live.add(port);
          api = await BackstageApi.asGuest(url);
          log(
            `${name} (pid ${child.pid}) ready at ${url} in ${Math.round(
              (Date.now() - started) / 1000,
            )} s`,
          );
        },
        async stop(signal) {
          const c = child;
          if (!c || !running()) return { code: null, signal: null, ms: 0 };
          const started = Date.now();
          const exited = new Promise<{
            code: number | null;
            signal: string | null;
          }>(resolve =>
            c.once('exit', (code, sig) => resolve({ code, signal: sig })),
          );
          // Like a Service's endpoints: no new connections once the pod is terminating.
          live.delete(port);
          c.kill(signal);
          const how = await exited;
          log(
            `${name} (pid ${c.pid}) ${signal}: exited ${JSON.stringify(
              how,
            )} after ${Date.now() - started} ms`,
          );
          return { ...how, ms: Date.now() - started };
        },
      };
      stops.push({
        name,
        stop: async () => {
          if (running()) {
            const t = setTimeout(() => child?.kill('SIGKILL'), 15_000);
            await replica.stop('SIGTERM');
            clearTimeout(t);
          }
        },
      });
      return replica;
    });
    // One after the other: the first creates the databases and runs the migrations.
    for (const r of replicas) await r.start();
    for (const name of [
      'flux-bootstrap-bitbucket-server',
      'flux-bootstrap-git',
    ]) {
      await replicas[1].api.waitForEntity({ kind: 'Template', name });
    }
    log('replicas: both ready, templates in their catalog');
    return {
      redis,
      replicas: replicas as [Replica, Replica],
      baseUrl,
      clusters,
      staleTimeoutSeconds,
      cacheTtlSeconds,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
