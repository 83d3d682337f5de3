/* eslint-disable jest/no-conditional-expect */
// Conditional expects are deliberate: for several faults the issue accepts either outcome — the
// run completes, or it fails with a message that says what to do and a re-run completes — and
// each branch asserts its own outcome.
/**
 * The reliability and security suite (issue #9): the whole bootstrap flow through the real
 * backend, under canary credentials, faults, crashes, hostile input and access control. One world
 * (see world.ts) is shared by every scenario; scenarios run in file order and each records a row
 * of docs/reliability.md (report.ts).
 */
import https from 'node:https';
import path from 'node:path';
import { run, type BitbucketRequestLogEntry } from '@flux-bootstrap/test-peers';
import { SANDBOX } from '../sandbox';
import {
  accessKeysOf,
  BITBUCKET_TEMPLATE,
  DECOMMISSION_TEMPLATE,
  bitbucketValues,
  branchHistory,
  finishScan,
  fluxObjects,
  fluxStatus,
  GIT_TEMPLATE,
  kubeRequestsSince,
  kubeWrites,
  lastSeq,
  ObjectState,
  reposOf,
  runTemplate,
  ScannedTask,
  scanRepositories,
  secretData,
  short,
  until,
} from './helpers';
import { replicaScenarios } from './replicaScenarios';
import { ReliabilityReport } from './report';
import { startWorld, World } from './world';

jest.setTimeout(240_000);

const report = new ReliabilityReport();
let world: World;

const AREA = {
  secrets: '1. Secrets never leak',
  reruns: '2. Re-runs converge',
  faults: '3. Faults survived',
  crash: '4. Crash and resume',
  input: '5. Bad input, zero side effects',
  authz: '6. Authorization',
  tls: '7. TLS and host keys',
  replicas: '8. Replicas: exactly once, failover, shared cache',
};

const RAW_TEMPLATES = [
  'reliability-create-repo',
  'reliability-push-manifests',
  'reliability-generate-key',
  'reliability-install',
  'reliability-other-action',
];
const raw = (name: string) => `template:default/${name}`;

beforeAll(async () => {
  world = await startWorld({
    extraTemplates: RAW_TEMPLATES.map(n =>
      path.join(__dirname, 'templates', `${n}.yaml`),
    ),
    templateNames: RAW_TEMPLATES,
  });
}, 300_000);

/** The task's failure message (the completion error), or a description of how it ended. */
function failure(r: ScannedTask): string {
  return r.error ?? `task ${r.status} without an error`;
}

/** Every request any peer saw so far: to prove that a rejected input sent nothing. */
function peerMarks() {
  return {
    bitbucket: world.bitbucket.requests().length,
    untrusted: world.untrusted.requests().length,
    bundles: world.sandbox.bundles.requests().length,
    clusters: Object.fromEntries(
      Object.values(world.clusters).map(c => [c.name, lastSeq(c.proxy)]),
    ) as Record<string, number>,
  };
}
/**
 * Access-key ids of the keys the clusters' Flux Secrets hold: SSH fetches with them are the Flux
 * controller simulators (standing in for Flux on the clusters, polling every half second), not
 * requests of the backend.
 */
async function fluxKeyIds(): Promise<Set<number>> {
  const blobs = new Set<string>();
  for (const c of Object.values(world.clusters)) {
    const pub = (await secretData(c))?.['identity.pub'];
    const blob = pub?.trim().split(/\s+/)[1];
    if (blob) blobs.add(blob);
  }
  return new Set(
    world.bitbucket
      .state()
      .accessKeys.filter(k => blobs.has(k.text.split(/\s+/)[1]))
      .map(k => k.id),
  );
}

/** A git fetch of a Flux controller simulator: SSH with a cluster's key, or the git CLI with a cluster's token. */
function isFluxControllerFetch(
  r: BitbucketRequestLogEntry,
  fluxKeys: Set<number>,
): boolean {
  if (r.method === 'SSH') {
    const id = Number(r.user?.replace(/^access-key:/, ''));
    return r.query.service === 'git-upload-pack' && fluxKeys.has(id);
  }
  const ua = r.headers['user-agent'] ?? '';
  const fetch =
    r.path.endsWith('/git-upload-pack') ||
    (r.path.endsWith('/info/refs') && r.query.service === 'git-upload-pack');
  return fetch && /^git\//.test(ua) && !/isomorphic-git/.test(ua);
}

async function requestsSince(
  mark: ReturnType<typeof peerMarks>,
): Promise<string[]> {
  const fluxKeys = await fluxKeyIds();
  return [
    ...world.bitbucket
      .requests()
      .slice(mark.bitbucket)
      .filter(r => !isFluxControllerFetch(r, fluxKeys))
      .map(r => `bitbucket ${r.method} ${r.path}`),
    ...world.untrusted
      .requests()
      .slice(mark.untrusted)
      .map(r => `untrusted bitbucket ${r.method} ${r.path}`),
    ...world.sandbox.bundles
      .requests()
      .slice(mark.bundles)
      .map(r => `bundle server ${JSON.stringify(r)}`),
    ...Object.values(world.clusters).flatMap(c =>
      kubeRequestsSince(c.proxy, mark.clusters[c.name]).map(
        r => `cluster ${c.name} ${r.method} ${r.path}`,
      ),
    ),
  ];
}

afterAll(async () => {
  try {
    if (world) {
      report.write({
        logs: {
          'world.log': world.worldLog(),
          'backend.log': world.backendLog(),
        },
        scanner: world.scanner,
        environment: [
          'backend: packages/backend from source, PostgreSQL 15 (throw-away cluster), scaffolder.taskRecovery.enabled',
          'Bitbucket: the test double over HTTPS with a self-signed CA (configured), git over smart HTTP (git http-backend) and SSH (OpenSSH sshd)',
          'Kubernetes: four kube-apiserver v1.20.2 + etcd, each behind a fault-injecting HTTPS proxy; Flux controller simulator (test-only)',
          'replicas (section 8): two more packages/backend processes behind a round-robin TCP load balancer (their common backend.baseUrl), on the same PostgreSQL (databases prefixed replicas_), Backstage cache service on a real redis-server 7 (REDIS_URL, store redis), scaffolder.taskRecovery with an 8 s stale timeout (EXPERIMENTAL_gracefulShutdown only where a row says so), ten more kube-apiservers behind fault proxies',
        ],
      });
    }
  } finally {
    await world?.stop();
  }
}, 120_000);

/** The personal repository of the convergence scenario (three identical runs). */
const personal = { repo: 'fleet-personal', project: '~DEMO' };
let firstRun:
  | {
      objects: Map<string, ObjectState>;
      history: { sha: string; subject: string }[];
    }
  | undefined;

describe('2. Re-runs converge', () => {
  it('three runs of the same template converge: one repository, one access key, two Flux commits, cluster untouched', async () => {
    await report.scenario(
      AREA.reruns,
      'Bitbucket template, personal repository, SSH deploy key: run 3 times with the same input',
      'the canary token as the template secret; nothing else',
      async () => {
        const values = bitbucketValues(world, { repo: personal.repo });
        const secrets = { token: world.canaries.bitbucketToken };
        const cluster = world.clusters.sandbox;

        const r1 = await runTemplate(
          world,
          'converge run 1',
          BITBUCKET_TEMPLATE,
          values,
          secrets,
        );
        expect(r1.error).toBeUndefined();
        expect(r1.status).toBe('completed');
        const generated = await secretData(cluster);
        expect(generated?.identity).toMatch(/PRIVATE KEY/);
        world.scanner.addPrivateKey(
          'generated deploy key (flux:generate-key)',
          generated!.identity,
          generated!['identity.pub'],
        );
        firstRun = {
          objects: await fluxObjects(cluster.http),
          history: await branchHistory(
            world.bitbucket,
            personal.project,
            personal.repo,
          ),
        };
        expect(firstRun.history.map(c => c.subject)).toEqual([
          expect.any(String), // create-repo's initial commit (empty tree), as flux bootstrap makes
          'Add Flux v2.9.4 component manifests',
          'Add Flux sync manifests',
        ]);

        const seq = lastSeq(cluster.proxy);
        const bbMark = world.bitbucket.requests().length;
        const r2 = await runTemplate(
          world,
          'converge run 2',
          BITBUCKET_TEMPLATE,
          values,
          secrets,
        );
        const r3 = await runTemplate(
          world,
          'converge run 3',
          BITBUCKET_TEMPLATE,
          values,
          secrets,
        );
        for (const r of [r2, r3]) {
          expect(r.error).toBeUndefined();
          expect(r.status).toBe('completed');
        }

        const repos = reposOf(world.bitbucket, personal.project).filter(
          r => r.slug === personal.repo,
        );
        expect(repos).toHaveLength(1);
        const keys = accessKeysOf(
          world.bitbucket,
          personal.project,
          personal.repo,
        );
        expect(keys).toHaveLength(1);
        const history = await branchHistory(
          world.bitbucket,
          personal.project,
          personal.repo,
        );
        expect(history).toEqual(firstRun.history);
        // No Bitbucket write in runs 2 and 3: no POST/PUT/DELETE on REST, no git push.
        const bbWrites = world.bitbucket
          .requests()
          .slice(bbMark)
          .filter(
            r =>
              (r.path.startsWith('/rest/') && r.method !== 'GET') ||
              r.path.endsWith('/git-receive-pack') ||
              (r.method === 'SSH' && r.path.includes('receive-pack')),
          );
        expect(bbWrites.map(r => `${r.method} ${r.path}`)).toEqual([]);

        // No write to the cluster in runs 2 and 3 (server-side dry runs compare, nothing is applied).
        const writes = kubeWrites(kubeRequestsSince(cluster.proxy, seq));
        expect(writes.map(w => `${w.method} ${w.path}`)).toEqual([]);
        const after = await fluxObjects(cluster.http);
        const changed: string[] = [];
        for (const [key, before] of firstRun.objects) {
          const now = after.get(key);
          if (!now) changed.push(`${key} deleted`);
          else if (
            now.content !== before.content ||
            now.generation !== before.generation
          )
            changed.push(`${key} content`);
          else if (now.resourceVersion !== before.resourceVersion)
            changed.push(`${key} resourceVersion`);
        }
        for (const key of after.keys())
          if (!firstRun.objects.has(key)) changed.push(`${key} added`);
        // The Flux simulator (standing in for the controllers) writes status; nothing else may change.
        const statusOnly = changed.filter(c => / resourceVersion$/.test(c));
        expect(changed.filter(c => !/ resourceVersion$/.test(c))).toEqual([]);
        for (const c of statusOnly) {
          const key = c.replace(/ resourceVersion$/, '');
          expect(
            after.get(key)!.managers.filter(m => m.startsWith('flux/')),
          ).toEqual(
            firstRun.objects
              .get(key)!
              .managers.filter(m => m.startsWith('flux/')),
          );
        }
        const untouched = [...firstRun.objects.keys()].filter(
          k => !statusOnly.some(c => c.startsWith(`${k} `)),
        );
        return `3 × completed; 1 repository, ${
          keys.length
        } access key, branch ${history
          .map(c => c.sha.slice(0, 7))
          .join(
            ' → ',
          )} unchanged after run 1 (initial commit + the two Flux commits); Bitbucket writes in runs 2–3: ${
          bbWrites.length
        }; cluster writes in runs 2–3: ${
          writes.length
        } (only server-side dry runs); ${untouched.length} of ${
          firstRun.objects.size
        } Flux objects with the same resourceVersion${
          statusOnly.length
            ? `, ${
                statusOnly.length
              } with only status written by the controller simulator (same generation, content and flux field-manager entries): ${statusOnly
                .map(c => c.split('/')[0])
                .filter((v, i, a) => a.indexOf(v) === i)
                .join(', ')}`
            : ''
        }`;
      },
    );
  });
});

describe('2. Re-runs converge: Flux Operator mode', () => {
  it('two runs of the Bitbucket template with distribution operator converge: one commit, no write in run 2; the canary token only in the cluster Secret', async () => {
    await report.scenario(
      AREA.reruns,
      'Bitbucket template, project repository, token auth, How Flux is installed: Flux Operator (fluxVersion 2.9.x): run 2 times',
      'the canary token as the template secret; nothing else',
      async () => {
        const repo = { repo: 'fleet-operator', project: 'FLEET' };
        const cluster = world.clusters.operator;
        const values = bitbucketValues(world, {
          ...repo,
          auth: 'token',
          cluster: cluster.name,
          extra: {
            username: SANDBOX.user,
            distribution: 'operator',
            fluxVersion: '2.9.x',
          },
        });
        const secrets = { token: world.canaries.bitbucketToken };
        const r1 = await runTemplate(
          world,
          'operator run 1',
          BITBUCKET_TEMPLATE,
          values,
          secrets,
        );
        expect(r1.error).toBeUndefined();
        expect(r1.status).toBe('completed');
        const history = await branchHistory(
          world.bitbucket,
          repo.project,
          repo.repo,
        );
        expect(history.map(c => c.subject)).toEqual([
          expect.any(String), // create-repo's initial commit
          'Add Flux Operator instance',
        ]);
        const status = await world.api.get<{
          state: string;
          flux?: { manager?: string };
        }>(`/api/flux-bootstrap/clusters/${cluster.name}?refresh=true`);
        expect(status).toMatchObject({
          state: 'ready',
          flux: { manager: 'flux-operator' },
        });
        const before = await fluxObjects(cluster.http);

        const seq = lastSeq(cluster.proxy);
        const bbMark = world.bitbucket.requests().length;
        const r2 = await runTemplate(
          world,
          'operator run 2',
          BITBUCKET_TEMPLATE,
          values,
          secrets,
        );
        expect(r2.error).toBeUndefined();
        expect(r2.status).toBe('completed');
        expect(
          await branchHistory(world.bitbucket, repo.project, repo.repo),
        ).toEqual(history);
        const bbWrites = world.bitbucket
          .requests()
          .slice(bbMark)
          .filter(
            r =>
              (r.path.startsWith('/rest/') && r.method !== 'GET') ||
              r.path.endsWith('/git-receive-pack'),
          );
        expect(bbWrites.map(r => `${r.method} ${r.path}`)).toEqual([]);
        // Only the operator's reconcile request annotation may be written (it asks, changes nothing).
        const writes = kubeWrites(kubeRequestsSince(cluster.proxy, seq));
        expect(writes.map(w => `${w.method} ${w.path}`)).toEqual([]);
        const after = await fluxObjects(cluster.http);
        const changed = [...before.keys()].filter(
          k =>
            !after.has(k) ||
            after.get(k)!.content !== before.get(k)!.content ||
            after.get(k)!.generation !== before.get(k)!.generation,
        );
        expect(changed).toEqual([]);
        return `2 × completed; branch ${history
          .map(c => c.sha.slice(0, 7))
          .join(
            ' → ',
          )} (initial commit + "Add Flux Operator instance") unchanged by run 2; Bitbucket writes in run 2: ${
          bbWrites.length
        }; cluster writes in run 2: ${writes.length}; ${
          before.size
        } Flux objects with the same content and generation; FluxInstance Ready, manager ${
          status.flux?.manager
        }`;
      },
    );
  });
});

describe('7. TLS and host keys', () => {
  it('an SSH host key that changes between runs is detected and reported, not accepted', async () => {
    await report.scenario(
      AREA.tls,
      'SSH host key of Bitbucket changes between two runs (re-keyed server or man in the middle)',
      "the sshd's host keys replaced on the same port, then the convergence template run again",
      async () => {
        expect(firstRun).toBeDefined();
        const cluster = world.clusters.sandbox;
        const before = await secretData(cluster);
        const oldFingerprints = world.bitbucket.ssh!.hostKeys.map(
          k => k.fingerprint,
        );
        await world.bitbucket.rotateSshHostKeys();
        const seq = lastSeq(cluster.proxy);
        const r = await runTemplate(
          world,
          'host key changed',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, { repo: personal.repo }),
          { token: world.canaries.bitbucketToken },
        );
        const after = await secretData(cluster);
        // The stored known_hosts must not silently take the new key.
        expect(after?.known_hosts).toBe(before?.known_hosts);
        expect(r.status).toBe('failed');
        expect(r.error).toMatch(/host key/i);
        expect(r.error).toContain(oldFingerprints[0]);
        expect(r.stepStatus.generateKey).toBe('failed');
        const writes = kubeWrites(kubeRequestsSince(cluster.proxy, seq));
        expect(writes).toEqual([]);

        // The documented remedy: the operator checks the new fingerprint and pins it.
        const fresh = world.bitbucket.ssh!.hostKeys.find(
          k => k.type === 'ssh-ed25519',
        )!;
        const pinned = await runTemplate(
          world,
          'host key pinned',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, {
            repo: personal.repo,
            extra: { hostKeyFingerprint: fresh.fingerprint },
          }),
          { token: world.canaries.bitbucketToken },
        );
        expect(failure(pinned)).toBe('task completed without an error');
        expect((await secretData(cluster))?.known_hosts).toContain(
          fresh.publicKey,
        );
        // Pinned once, trusted from then on: a plain re-run passes the check.
        const again = await runTemplate(
          world,
          'after pinning',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, { repo: personal.repo }),
          { token: world.canaries.bitbucketToken },
        );
        expect(failure(again)).toBe('task completed without an error');
        return `run failed in step generateKey before any write: "${short(
          r.error,
          200,
        )}"; known_hosts in the cluster unchanged, cluster writes 0; after pinning the new fingerprint (hostKeyFingerprint ${
          fresh.fingerprint
        }) in the template's field, known_hosts was updated and the run completed; a plain re-run completed too`;
      },
    );
  });
});

describe('1. Secrets never leak', () => {
  it('project repository with token auth: the canary token reaches only the cluster Secret', async () => {
    await report.scenario(
      AREA.secrets,
      'Bitbucket template, project repository, token auth (Flux pulls over HTTPS with the token)',
      'the canary token as the template secret, stored by design only in Secret flux-system/flux-system',
      async () => {
        const r = await runTemplate(
          world,
          'project token auth',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, {
            repo: 'fleet-token',
            project: SANDBOX.project,
            auth: 'token',
            extra: { username: SANDBOX.user },
          }),
          { token: world.canaries.bitbucketToken },
        );
        expect(failure(r)).toBe('task completed without an error');
        const data = await secretData(world.clusters.sandbox);
        expect(data?.password).toBe(world.canaries.bitbucketToken);
        expect(Object.keys(data ?? {}).sort()).toEqual(
          expect.arrayContaining(['password', 'username']),
        );
        const repo = await fluxStatus(
          world.clusters.sandbox,
          'gitrepositories',
        );
        expect(repo?.spec?.url).toMatch(
          /^https:\/\/127\.0\.0\.1:\d+\/scm\/fleet\/fleet-token\.git$/,
        );
        return `completed; Secret flux-system holds ${Object.keys(data ?? {})
          .sort()
          .join(', ')} (the token only there); GitRepository url ${
          repo?.spec?.url
        } carries no credentials`;
      },
    );
  });

  it('bootstrap-git template: the canary private key and passphrase reach only the cluster Secret', async () => {
    await report.scenario(
      AREA.secrets,
      'Git template (existing repository over SSH, no token), encrypted private key + passphrase',
      'a canary ed25519 key encrypted with a canary passphrase, registered as a REPO_WRITE access key',
      async () => {
        const bb = world.bitbucket;
        bb.createRepo(SANDBOX.project, 'fleet-git', {
          defaultBranch: 'main',
          initialCommit: true,
        });
        bb.addAccessKey(
          SANDBOX.project,
          'fleet-git',
          { text: world.canaries.publicKey, label: 'canary' },
          'REPO_WRITE',
        );
        const url = bb.cloneUrls(SANDBOX.project, 'fleet-git').ssh!;
        const { privateKey, passphrase } = world.canaries;
        const r = await runTemplate(
          world,
          'git template',
          GIT_TEMPLATE,
          {
            cluster: SANDBOX.cluster,
            owner: 'group:default/platform-team',
            url,
            branch: 'main',
            knownHosts: bb.ssh!.knownHosts,
            sshPrivateKey: '*'.repeat(privateKey.length),
            sshPassphrase: '*'.repeat(passphrase.length),
          },
          { sshPrivateKey: privateKey, sshPassphrase: passphrase },
        );
        expect(failure(r)).toBe('task completed without an error');
        const history = await branchHistory(bb, SANDBOX.project, 'fleet-git');
        expect(history.slice(-2).map(c => c.subject)).toEqual([
          'Add Flux v2.9.4 component manifests',
          'Add Flux sync manifests',
        ]);
        const data = await secretData(world.clusters.sandbox);
        return `completed; pushed ${
          history.length - 1
        } commits over SSH with the encrypted key; Secret flux-system holds ${Object.keys(
          data ?? {},
        )
          .sort()
          .join(', ')}`;
      },
    );
  });
  it('errors from servers and libraries that echo the credentials they were sent are redacted', async () => {
    await report.scenario(
      AREA.secrets,
      'Servers echo the credentials back in their errors (Bitbucket REST, git over HTTPS, kube-apiserver)',
      "500 answers whose message repeats the request's Authorization header and bare credential: Bitbucket REST with the integration token (config, not a task secret), git info/refs with the canary token, the apiserver with the cluster token (config)",
      async () => {
        const bb = world.bitbucket;
        bb.createRepo(SANDBOX.project, 'fleet-echo', {
          defaultBranch: 'main',
          initialCommit: true,
        });
        const errors: string[] = [];

        bb.injectFault({
          method: 'POST',
          path: '/rest/api/1.0/projects/FLEET/repos',
          status: 500,
          echoCredentials: true,
          times: 10,
        });
        const rest = await runTemplate(
          world,
          'echo: Bitbucket REST',
          raw('reliability-create-repo'),
          {
            repoUrl: `${bb.host}?project=FLEET&repo=fleet-echo-new`,
          },
        );
        bb.clearFaults();
        errors.push(failure(rest));

        bb.injectFault({
          path: '/scm/fleet/fleet-echo.git/info/refs',
          status: 500,
          echoCredentials: true,
          times: 10,
        });
        const git = await runTemplate(
          world,
          'echo: git over HTTPS',
          raw('reliability-push-manifests'),
          {
            repoUrl: `${bb.host}?project=FLEET&repo=fleet-echo`,
            path: 'clusters/echo',
          },
          { token: world.canaries.bitbucketToken },
        );
        bb.clearFaults();
        errors.push(failure(git));

        // The sandbox cluster (Flux installed: the Kustomization is read first) — the faults
        // cluster must stay fresh for the restart scenario.
        const cluster = world.clusters.sandbox;
        cluster.proxy.inject({
          method: 'GET',
          path: /\/kustomizations\/flux-system$/,
          status: 500,
          echoCredentials: true,
          times: 50,
        });
        const kube = await runTemplate(
          world,
          'echo: kube-apiserver',
          raw('reliability-install'),
          {
            cluster: cluster.name,
            syncUrl: bb.cloneUrls(SANDBOX.project, 'fleet-echo').ssh,
            path: 'clusters/sandbox',
          },
        );
        cluster.proxy.clearFaults();
        errors.push(failure(kube));

        for (const r of [rest, git, kube]) expect(r.status).toBe('failed');
        // The echo reached the error (so the test means something), with the credential masked.
        expect(errors[0]).toMatch(
          /Authorization: Bearer \*\*\*;? credential \*\*\*/,
        );
        expect(errors[2]).toMatch(
          /Authorization: Bearer \*\*\*;? credential \*\*\*/,
        );
        expect(errors[1]).toMatch(/HTTP Error: 500.*Try again later/);
        for (const e of errors) {
          expect(
            world.scanner.scan(
              'scaffolder task events (logs, errors, outputs): echo check',
              e,
            ),
          ).toEqual([]);
        }
        // Show the part of each error where the echo landed (masked), or its start.
        const excerpt = (e: string) => {
          const at = e.indexOf('(request header Authorization');
          return at >= 0 ? `…${e.slice(at, at + 75)}…` : short(e, 140);
        };
        return `${errors
          .map((e, n) => `${['REST', 'git', 'apiserver'][n]}: "${excerpt(e)}"`)
          .join(
            '; ',
          )} (git's HTTP errors do not carry the server's body; the credential was sent as a Bearer header, never in the URL)`;
      },
    );
  });
});

describe('3. Faults survived', () => {
  it('Bitbucket 429 with Retry-After, a 5xx burst and one response slower than the request timeout are survived', async () => {
    const timeout = () => world.bitbucketRequestTimeoutMs;
    await report.scenario(
      AREA.faults,
      'Transient Bitbucket faults during a first bootstrap',
      `429 + Retry-After: 1 (×2) on repository creation; 503 (×3) on the access-key list; one answer delayed past the ${timeout()} ms request timeout on the project lookup`,
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-transient';
        bb.injectFault({
          method: 'POST',
          path: '/rest/api/1.0/projects/FLEET/repos',
          status: 429,
          retryAfter: 1,
          times: 2,
        });
        bb.injectFault({
          method: 'GET',
          path: `/rest/keys/1.0/projects/FLEET/repos/${repo}/ssh`,
          status: 503,
          times: 3,
        });
        bb.injectFault({
          method: 'GET',
          path: '/rest/api/1.0/projects/FLEET',
          delayMs: timeout() + 2000,
          times: 1,
        });
        const mark = bb.requests().length;
        const r = await runTemplate(
          world,
          'transient faults',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, { repo, project: SANDBOX.project }),
          { token: world.canaries.bitbucketToken },
        );
        bb.clearFaults();
        expect(failure(r)).toBe('task completed without an error');
        const seen = bb.requests().slice(mark);
        const creates = seen.filter(
          q =>
            q.method === 'POST' &&
            q.path === '/rest/api/1.0/projects/FLEET/repos',
        );
        expect(creates.map(q => q.status)).toEqual([429, 429, 201]);
        const keyLists = seen.filter(
          q =>
            q.method === 'GET' &&
            q.path === `/rest/keys/1.0/projects/FLEET/repos/${repo}/ssh`,
        );
        expect(keyLists.slice(0, 3).map(q => q.status)).toEqual([
          503, 503, 503,
        ]);
        expect(
          reposOf(bb, SANDBOX.project).filter(x => x.slug === repo),
        ).toHaveLength(1);
        expect(accessKeysOf(bb, SANDBOX.project, repo)).toHaveLength(1);
        const retryLines = r.log.filter(l => /retry \d+ of \d+/i.test(l));
        expect(retryLines.some(l => /in 1000 ms/.test(l))).toBe(true);
        return `completed; repository created on the 3rd POST (429, 429, 201) after waiting the Retry-After second; access keys listed after 3 × 503; 1 repository, 1 access key; ${
          retryLines.length
        } retries logged, e.g. "${short(retryLines[0], 160)}"`;
      },
    );
  });

  it('a 5xx burst longer than the retries fails with a clear message, nothing half-made, and a re-run completes', async () => {
    await report.scenario(
      AREA.faults,
      'Bitbucket outage longer than the retry budget',
      '503 on every repository creation (×20), then the fault cleared and the same template run again',
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-outage';
        bb.injectFault({
          method: 'POST',
          path: '/rest/api/1.0/projects/FLEET/repos',
          status: 503,
          times: 20,
        });
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
        });
        const r1 = await runTemplate(
          world,
          'outage',
          BITBUCKET_TEMPLATE,
          values,
          { token: world.canaries.bitbucketToken },
        );
        bb.clearFaults();
        expect(r1.status).toBe('failed');
        expect(r1.error).toMatch(/503/);
        expect(r1.error).toMatch(/try again later/);
        expect(
          reposOf(bb, SANDBOX.project).filter(x => x.slug === repo),
        ).toHaveLength(0);
        const r2 = await runTemplate(
          world,
          'outage re-run',
          BITBUCKET_TEMPLATE,
          values,
          { token: world.canaries.bitbucketToken },
        );
        expect(failure(r2)).toBe('task completed without an error');
        expect(
          reposOf(bb, SANDBOX.project).filter(x => x.slug === repo),
        ).toHaveLength(1);
        return `run 1 failed in step ${
          Object.entries(r1.stepStatus).find(([, v]) => v === 'failed')?.[0]
        }: "${short(r1.error, 260)}"; no repository created; re-run completed`;
      },
    );
  });

  it('a connection reset in the middle of a git push fails or recovers, and a re-run leaves exactly the two Flux commits', async () => {
    await report.scenario(
      AREA.faults,
      'Connection reset during the git push of the Flux manifests',
      'the first git-receive-pack request (the pack upload of the components commit) reset by the server',
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-reset';
        bb.createRepo(SANDBOX.project, repo, {
          defaultBranch: 'main',
          initialCommit: true,
        });
        bb.injectFault({
          method: 'POST',
          path: `/scm/fleet/${repo}.git/git-receive-pack`,
          drop: true,
          times: 1,
        });
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
        });
        const r1 = await runTemplate(
          world,
          'push reset',
          BITBUCKET_TEMPLATE,
          values,
          { token: world.canaries.bitbucketToken },
        );
        bb.clearFaults();
        const dropped = bb
          .requests()
          .filter(
            q =>
              q.path === `/scm/fleet/${repo}.git/git-receive-pack` &&
              q.status === 0,
          );
        expect(dropped).toHaveLength(1);
        let outcome: string;
        if (r1.status === 'failed') {
          expect(r1.error).toMatch(/push|reset|socket|connection/i);
          const r2 = await runTemplate(
            world,
            'push reset re-run',
            BITBUCKET_TEMPLATE,
            values,
            {
              token: world.canaries.bitbucketToken,
            },
          );
          expect(failure(r2)).toBe('task completed without an error');
          outcome = `run 1 failed in step ${
            Object.entries(r1.stepStatus).find(([, v]) => v === 'failed')?.[0]
          }: "${short(r1.error, 220)}"; re-run completed`;
        } else {
          expect(failure(r1)).toBe('task completed without an error');
          outcome = 'the push was retried within the run, which completed';
        }
        const history = await branchHistory(bb, SANDBOX.project, repo);
        expect(history.slice(1).map(c => c.subject)).toEqual([
          'Add Flux v2.9.4 component manifests',
          'Add Flux sync manifests',
        ]);
        return `${outcome}; branch: initial commit + exactly the two Flux commits`;
      },
    );
  });

  it('a request that outlives its timeout while the server still applies it does not duplicate the access key', async () => {
    await report.scenario(
      AREA.faults,
      'Slow Bitbucket: the access-key POST answers after the request timeout (and is applied)',
      `every access-key POST delayed ${
        world.bitbucketRequestTimeoutMs + 2000
      } ms (> the ${
        world.bitbucketRequestTimeoutMs
      } ms timeout); the server still adds the key; then a re-run without the fault`,
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-slow';
        const delay = world.bitbucketRequestTimeoutMs + 2000;
        bb.injectFault({
          method: 'POST',
          path: `/rest/keys/1.0/projects/FLEET/repos/${repo}/ssh`,
          delayMs: delay,
          times: 20,
        });
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
        });
        const r1 = await runTemplate(
          world,
          'slow access key',
          BITBUCKET_TEMPLATE,
          values,
          { token: world.canaries.bitbucketToken },
        );
        bb.clearFaults();
        const r2 =
          r1.status === 'completed'
            ? r1
            : await runTemplate(
                world,
                'slow access key re-run',
                BITBUCKET_TEMPLATE,
                values,
                {
                  token: world.canaries.bitbucketToken,
                },
              );
        expect(failure(r2)).toBe('task completed without an error');
        const keys = accessKeysOf(bb, SANDBOX.project, repo);
        expect(keys).toHaveLength(1);
        if (r1.status === 'failed')
          expect(r1.error).toMatch(/timed out|timeout|no answer/i);
        return `${
          r1.status === 'failed'
            ? `run 1 failed in step ${
                Object.entries(r1.stepStatus).find(
                  ([, v]) => v === 'failed',
                )?.[0]
              }: "${short(r1.error, 220)}"; re-run completed`
            : 'completed within the run'
        }; ${keys.length} access key on the repository`;
      },
    );
  });

  it('a restart of the kube-apiserver in the middle of the install fails clearly or recovers; a re-run completes', async () => {
    const cluster = world.clusters.faults;
    await report.scenario(
      AREA.faults,
      'kube-apiserver restarts while the Flux components are being applied (first install)',
      'the apiserver stopped ~2 s and started again as soon as the first CRD is server-side applied',
      async () => {
        const values = bitbucketValues(world, {
          repo: 'fleet-k-restart',
          project: SANDBOX.project,
          cluster: cluster.name,
        });
        const seq = lastSeq(cluster.proxy);
        let restarted = false;
        const r1 = await runTemplate(
          world,
          'apiserver restart',
          BITBUCKET_TEMPLATE,
          values,
          { token: world.canaries.bitbucketToken },
          {
            onTaskId: async (_id, ended) => {
              const applying = await until(
                () =>
                  ended() ||
                  kubeRequestsSince(cluster.proxy, seq).some(
                    q =>
                      q.method === 'PATCH' &&
                      q.path.includes('/customresourcedefinitions/') &&
                      !q.query.includes('dryRun'),
                  ),
                20,
              );
              if (applying && !ended()) {
                await cluster.kube.restart({ downtimeMs: 2000 });
                restarted = true;
              }
            },
          },
        );
        // The scenario needs a first install (a fresh cluster): the CRDs must really be applied.
        expect(restarted).toBe(true);
        const failedDuring = kubeRequestsSince(cluster.proxy, seq).filter(q =>
          q.fault?.includes('upstream error'),
        );
        let outcome: string;
        if (r1.status === 'failed') {
          expect(r1.error).toMatch(/Run the template again/);
          expect(r1.error).toMatch(/Done before that|Nothing was applied/);
          const r2 = await runTemplate(
            world,
            'apiserver restart re-run',
            BITBUCKET_TEMPLATE,
            values,
            {
              token: world.canaries.bitbucketToken,
            },
          );
          expect(failure(r2)).toBe('task completed without an error');
          outcome = `run 1 failed: "${short(r1.error, 260)}"; re-run completed`;
        } else {
          expect(failure(r1)).toBe('task completed without an error');
          outcome = 'the install retried through the outage and completed';
        }
        const objects = await fluxObjects(cluster.http);
        // Nothing half-applied: the same objects as the cluster installed without faults.
        const reference = await fluxObjects(world.clusters.sandbox.http);
        expect([...objects.keys()].sort()).toEqual(
          [...reference.keys()].sort(),
        );
        const kustomization = await fluxStatus(cluster, 'kustomizations');
        expect(kustomization?.status?.lastAppliedRevision).toMatch(
          /^main@sha1:/,
        );
        return `${outcome}; ${
          failedDuring.length
        } requests hit the outage; afterwards ${
          objects.size
        } Flux objects on the cluster and Flux synced ${kustomization.status.lastAppliedRevision.slice(
          0,
          20,
        )}…`;
      },
    );
  });

  it('apiserver 500s: a short burst is retried; a long one fails clearly and a re-run completes', async () => {
    const cluster = world.clusters.faults;
    await report.scenario(
      AREA.faults,
      'kube-apiserver answers 500',
      '500 on the first 2 server-side applies of the sync objects (short burst), then on every one of them (×40, long burst)',
      async () => {
        const values = bitbucketValues(world, {
          repo: 'fleet-k-restart',
          project: SANDBOX.project,
          cluster: cluster.name,
        });
        const path500 = /\/(gitrepositories|kustomizations)\/flux-system$/;
        cluster.proxy.inject({
          method: 'PATCH',
          path: path500,
          status: 500,
          times: 2,
        });
        const seq = lastSeq(cluster.proxy);
        const r1 = await runTemplate(
          world,
          'apiserver 500 short',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        cluster.proxy.clearFaults();
        expect(failure(r1)).toBe('task completed without an error');
        const hit = kubeRequestsSince(cluster.proxy, seq).filter(
          q => q.fault === 'status 500',
        );
        expect(hit).toHaveLength(2);

        cluster.proxy.inject({
          method: 'PATCH',
          path: path500,
          status: 500,
          times: 40,
        });
        const r2 = await runTemplate(
          world,
          'apiserver 500 long',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        cluster.proxy.clearFaults();
        expect(r2.status).toBe('failed');
        expect(r2.error).toMatch(/500/);
        expect(r2.error).toMatch(/Run the template again/);
        const r3 = await runTemplate(
          world,
          'apiserver 500 re-run',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        expect(failure(r3)).toBe('task completed without an error');
        return `short burst: completed after 2 retried applies; long burst: failed: "${short(
          r2.error,
          240,
        )}"; re-run completed`;
      },
    );
  });
  it('an apply the apiserver made but whose answer was lost is retried harmlessly', async () => {
    const cluster = world.clusters.faults;
    await report.scenario(
      AREA.faults,
      'kube-apiserver applies a change but the connection resets before the answer',
      'the first real (non-dry-run) server-side apply of the GitRepository forwarded, applied, then the client connection reset',
      async () => {
        const repo = 'fleet-k-lost';
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
          cluster: cluster.name,
        });
        cluster.proxy.inject({
          method: 'PATCH',
          path: /\/gitrepositories\/flux-system$/,
          notQuery: 'dryRun=All',
          resetAfterForward: true,
        });
        const seq = lastSeq(cluster.proxy);
        const r = await runTemplate(
          world,
          'lost answer',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        cluster.proxy.clearFaults();
        expect(failure(r)).toBe('task completed without an error');
        const applies = kubeRequestsSince(cluster.proxy, seq).filter(
          q =>
            q.method === 'PATCH' &&
            q.path.endsWith('/gitrepositories/flux-system') &&
            !q.query.includes('dryRun'),
        );
        expect(applies[0]?.fault).toBe('reset after forward');
        const source = await fluxStatus(cluster, 'gitrepositories');
        expect(source?.spec?.url).toMatch(new RegExp(`/fleet/${repo}\\.git$`));
        return `completed; the lost apply was sent again (${applies.length} real applies of the GitRepository, the first one's answer lost) and server-side apply made the retry a no-op; GitRepository points at ${repo}`;
      },
    );
  });

  it('an apiserver answer slower than the request timeout is retried', async () => {
    const cluster = world.clusters.faults;
    await report.scenario(
      AREA.faults,
      'kube-apiserver answers slower than the client request timeout (30 s)',
      'the first read of Kustomization flux-system held 35 s by the proxy',
      async () => {
        const values = bitbucketValues(world, {
          repo: 'fleet-k-lost',
          project: SANDBOX.project,
          cluster: cluster.name,
        });
        cluster.proxy.inject({
          method: 'GET',
          path: /\/kustomizations\/flux-system$/,
          delayMs: 35_000,
        });
        const seq = lastSeq(cluster.proxy);
        const r = await runTemplate(
          world,
          'slow apiserver',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        cluster.proxy.clearFaults();
        expect(failure(r)).toBe('task completed without an error');
        const slow = kubeRequestsSince(cluster.proxy, seq).filter(q =>
          q.fault?.startsWith('delay'),
        );
        expect(slow).toHaveLength(1);
        const retried = r.log.filter(l => /retry|retrying/i.test(l));
        return `completed; the slow read timed out on the client and was retried (${
          short(retried[0], 160) || 'retry logged at debug level'
        })`;
      },
    );
  }, 300_000);
});

describe('4. Crash and resume', () => {
  it('kill -9 of the backend during flux:install: the task resumes from its checkpoints after restart and finishes', async () => {
    const cluster = world.clusters.crash;
    await report.scenario(
      AREA.crash,
      'Backend process killed (SIGKILL) during flux:install, restarted on the same PostgreSQL',
      'the first Deployment apply held by the proxy (so the kill lands mid-install, after the CRDs), then kill -9 of the backend, then a restart',
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-crash';
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
          cluster: cluster.name,
        });
        const seq = lastSeq(cluster.proxy);
        cluster.proxy.inject({
          method: 'PATCH',
          path: /\/apis\/apps\/v1\/namespaces\/flux-system\/deployments\//,
          blackhole: true,
          times: 1,
        });
        const id = await world.api.createTask(BITBUCKET_TEMPLATE, values, {
          token: world.canaries.bitbucketToken,
        });
        await until(
          () =>
            kubeRequestsSince(cluster.proxy, seq).some(
              q => q.fault === 'black hole',
            ),
          50,
        );
        const crdsApplied = kubeRequestsSince(cluster.proxy, seq).filter(
          q =>
            q.method === 'PATCH' &&
            q.path.includes('/customresourcedefinitions/') &&
            !q.query.includes('dryRun'),
        ).length;
        const pid = world.sandbox.backendProcess().pid;
        await world.restartBackend({ kill: true });
        cluster.proxy.clearFaults();
        const result = await finishScan(
          world,
          'crash',
          await world.api.waitForTask(id, l => world.log(`[crash] ${l}`)),
        );
        expect(failure(result)).toBe('task completed without an error');
        expect(result.events.some(e => e.type === 'recovered')).toBe(true);
        const skipped = result.log.filter(l =>
          /Skipping step .* already completed/.test(l),
        );
        expect(skipped.map(l => l.split(':')[0])).toEqual([
          'createRepo',
          'pushManifests',
          'generateKey',
        ]);
        expect(
          reposOf(bb, SANDBOX.project).filter(r => r.slug === repo),
        ).toHaveLength(1);
        expect(accessKeysOf(bb, SANDBOX.project, repo)).toHaveLength(1);
        const history = await branchHistory(bb, SANDBOX.project, repo);
        expect(history.map(c => c.subject).slice(1)).toEqual([
          'Add Flux v2.9.4 component manifests',
          'Add Flux sync manifests',
        ]);
        const kustomization = await fluxStatus(cluster, 'kustomizations');
        expect(kustomization?.status?.lastAppliedRevision).toBe(
          `main@sha1:${history.at(-1)!.sha}`,
        );
        return `backend pid ${pid} killed after ${crdsApplied} CRD applies; after the restart the task was recovered (event "recovered"), skipped ${
          skipped.length
        } completed steps (${skipped
          .map(l => l.split(':')[0])
          .join(
            ', ',
          )}), re-ran flux:install from its checkpoints and completed; 1 repository, 1 access key, initial + 2 Flux commits; Flux synced the pushed revision`;
      },
    );
  });
});

describe('7. TLS and host keys: certificates', () => {
  it('a Bitbucket with a self-signed certificate whose CA is not configured is refused (fails closed)', async () => {
    await report.scenario(
      AREA.tls,
      'Bitbucket over HTTPS with a self-signed CA that is NOT configured',
      'a second Bitbucket double (TLS, own CA) in integrations.bitbucketServer without caFile/caData',
      async () => {
        const mark = world.untrusted.requests().length;
        const r = await runTemplate(
          world,
          'untrusted TLS',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, {
            repo: 'fleet-untrusted',
            host: world.untrusted.host,
          }),
          { token: world.untrustedToken },
        );
        expect(r.status).toBe('failed');
        expect(r.error).toMatch(/certificate|TLS|CA/i);
        const seen = world.untrusted.requests().slice(mark);
        expect(seen).toEqual([]);
        expect(world.untrusted.state().repos).toEqual([]);
        return `failed before any HTTP request reached the server (TLS handshake refused; server request log empty): "${short(
          r.error,
          260,
        )}"`;
      },
    );
  });

  it('a cluster whose CA does not match is refused (fails closed)', async () => {
    await report.scenario(
      AREA.tls,
      'Kubernetes cluster whose configured caData does not match its certificate',
      'cluster "wrong-ca": the faults cluster URL with another CA',
      async () => {
        const seq = lastSeq(world.clusters.faults.proxy);
        const r = await runTemplate(
          world,
          'wrong CA',
          raw('reliability-install'),
          {
            cluster: 'wrong-ca',
            syncUrl: world.bitbucket.cloneUrls(
              SANDBOX.project,
              'fleet-k-restart',
            ).ssh,
            path: 'clusters/faults',
          },
        );
        expect(r.status).toBe('failed');
        expect(r.error).toMatch(/certificate|TLS|CA/i);
        expect(kubeRequestsSince(world.clusters.faults.proxy, seq)).toEqual([]);
        return `failed without any HTTP request reaching the apiserver: "${short(
          r.error,
          260,
        )}"`;
      },
    );
  });
});
interface BadInput {
  what: string;
  template: string;
  field: string;
  values: Record<string, unknown>;
}

/** Hostile and malformed inputs, each passed straight to one action (the raw test templates). */
function badInputs(): BadInput[] {
  const host = world.bitbucket.host;
  const good = `${host}?project=FLEET&repo=fleet-transient`;
  const sshUrl = world.bitbucket.cloneUrls(SANDBOX.project, 'fleet-transient')
    .ssh!;
  const cr = raw('reliability-create-repo');
  const pm = raw('reliability-push-manifests');
  const gk = raw('reliability-generate-key');
  const inst = raw('reliability-install');
  const cluster = SANDBOX.cluster;
  return [
    {
      what: 'repository name with ../ (path traversal)',
      template: cr,
      field: 'repoUrl',
      values: { repoUrl: `${host}?project=FLEET&repo=../../admin` },
    },
    {
      what: 'URL-encoded traversal %2e%2e%2f in the repository',
      template: cr,
      field: 'repoUrl',
      values: { repoUrl: `${host}?project=FLEET&repo=%2e%2e%2fadmin` },
    },
    {
      what: 'credentials embedded in repoUrl',
      template: cr,
      field: 'repoUrl',
      values: {
        repoUrl: `demo:${'p'.repeat(12)}@${host}?project=FLEET&repo=x`,
      },
    },
    {
      what: 'another scheme in repoUrl (file://)',
      template: cr,
      field: 'repoUrl',
      values: { repoUrl: 'file:///etc/passwd?project=FLEET&repo=x' },
    },
    {
      what: 'host not in integrations.bitbucketServer',
      template: cr,
      field: 'repoUrl',
      values: { repoUrl: 'bitbucket.evil.example?project=FLEET&repo=x' },
    },
    {
      what: 'over-long repository name (300 characters)',
      template: cr,
      field: 'repoUrl',
      values: { repoUrl: `${host}?project=FLEET&repo=${'a'.repeat(300)}` },
    },
    {
      what: 'newline injection in the default branch',
      template: cr,
      field: 'defaultBranch',
      values: { repoUrl: good, defaultBranch: 'main\nrefs/heads/evil' },
    },
    {
      what: 'cluster path with ../ (path traversal)',
      template: pm,
      field: 'path',
      values: { repoUrl: good, path: '../../etc' },
    },
    {
      what: 'absolute cluster path',
      template: pm,
      field: 'path',
      values: { repoUrl: good, path: '/etc/flux' },
    },
    {
      what: 'URL-encoded traversal in the cluster path',
      template: pm,
      field: 'path',
      values: { repoUrl: good, path: '%2e%2e/%2e%2e/etc' },
    },
    {
      what: 'YAML injection in the path (newline + key)',
      template: pm,
      field: 'path',
      values: { repoUrl: good, path: 'clusters/a\n  prune: false' },
    },
    {
      what: 'YAML injection in the branch',
      template: pm,
      field: 'branch',
      values: {
        repoUrl: good,
        path: 'clusters/x',
        branch: 'main\n  ref: evil',
      },
    },
    {
      what: 'YAML injection in the Flux version',
      template: pm,
      field: 'fluxVersion',
      values: {
        repoUrl: good,
        path: 'clusters/x',
        fluxVersion: 'v2.9.4\nkind: Secret',
      },
    },
    {
      what: 'unknown component',
      template: pm,
      field: 'components',
      values: {
        repoUrl: good,
        path: 'clusters/x',
        components: [
          'source-controller',
          'kustomize-controller',
          'evil-controller',
        ],
      },
    },
    {
      what: 'credentials in the sync URL',
      template: pm,
      field: 'syncUrl',
      values: {
        repoUrl: good,
        path: 'clusters/x',
        syncUrl: `https://demo:${'p'.repeat(12)}@${host}/scm/fleet/x.git`,
      },
    },
    {
      what: 'another scheme in the sync URL (file://)',
      template: pm,
      field: 'syncUrl',
      values: {
        repoUrl: good,
        path: 'clusters/x',
        syncUrl: 'file:///etc/passwd',
      },
    },
    {
      what: 'ssh URL with a shell metacharacter',
      template: pm,
      field: 'url',
      values: {
        url: `${sshUrl};touch /tmp/pwned`,
        path: 'clusters/x',
        knownHosts: world.bitbucket.ssh!.knownHosts,
      },
    },
    {
      what: 'RSA key of 1024 bits',
      template: gk,
      field: 'rsaBits',
      values: { cluster, repoUrl: good, algorithm: 'rsa', rsaBits: 1024 },
    },
    {
      what: 'newline injection in the access-key label (path)',
      template: gk,
      field: 'path',
      values: { cluster, repoUrl: good, path: 'clusters/x\nlabel: evil' },
    },
    {
      what: 'SSH host with a scheme and credentials',
      template: gk,
      field: 'sshHost',
      values: { cluster, repoUrl: good, sshHost: 'ssh://git:pw@127.0.0.1:22' },
    },
    {
      what: 'unknown cluster',
      template: gk,
      field: 'cluster',
      values: { cluster: 'prod-not-configured', repoUrl: good },
    },
    {
      what: 'unknown cluster (install)',
      template: inst,
      field: 'cluster',
      values: {
        cluster: 'prod-not-configured',
        syncUrl: sshUrl,
        path: 'clusters/x',
      },
    },
    {
      what: 'credentials in the sync URL (install)',
      template: inst,
      field: 'syncUrl',
      values: {
        cluster,
        syncUrl: `https://demo:${'p'.repeat(12)}@${host}/scm/fleet/x.git`,
        path: 'clusters/x',
      },
    },
    {
      what: 'YAML injection in the Flux version (install)',
      template: inst,
      field: 'fluxVersion',
      values: {
        cluster,
        syncUrl: sshUrl,
        path: 'clusters/x',
        fluxVersion: 'v2.9.4\n---\nkind: Namespace',
      },
    },
    {
      what: 'over-long namespace (70 characters)',
      template: inst,
      field: 'namespace',
      values: {
        cluster,
        syncUrl: sshUrl,
        path: 'clusters/x',
        namespace: 'n'.repeat(70),
      },
    },
    {
      what: 'unknown extra component (install)',
      template: inst,
      field: 'componentsExtra',
      values: {
        cluster,
        syncUrl: sshUrl,
        path: 'clusters/x',
        componentsExtra: ['image-reflector-controller', 'evil'],
      },
    },
  ];
}

describe('5. Bad input, zero side effects', () => {
  it('every hostile or malformed input is rejected with an error naming the field, and no request is sent', async () => {
    const cases = badInputs();
    const problems: string[] = [];
    for (const c of cases) {
      const mark = peerMarks();
      let r: ScannedTask | undefined;
      let error: string;
      try {
        r = await runTemplate(
          world,
          `bad input: ${c.what}`,
          c.template,
          c.values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        error = r.error ?? `task ${r.status}`;
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
      const sent = await requestsSince(mark);
      const namesField = new RegExp(
        `["'\`.]${c.field}["'\`]|\\b${c.field}\\b`,
      ).test(error);
      const ok = r?.status === 'failed' && namesField && sent.length === 0;
      if (!ok) {
        problems.push(
          `${c.what}: status ${r?.status}, error "${short(
            error,
            200,
          )}", sent ${JSON.stringify(sent.slice(0, 5))}`,
        );
      }
      report.add({
        area: AREA.input,
        scenario: c.what,
        injected: `\`${c.field}\` = ${short(
          JSON.stringify(c.values[c.field]),
          80,
        )} (${c.template.split('/')[1]})`,
        outcome: `${r?.status ?? 'error'}: "${short(
          error,
          160,
        )}"; requests to Bitbucket, apiservers, bundle server: ${sent.length}`,
        passed: ok,
      });
    }
    expect(problems).toEqual([]);
  });
});
describe('1. Secrets never leak: decommission', () => {
  it('Remove Flux from a cluster under the canary token: nothing of Flux, the key or the folder is left, nothing leaks, a second run is a no-op', async () => {
    const cluster = world.clusters.crash;
    await report.scenario(
      AREA.secrets,
      'Decommission template (flux:uninstall, bitbucket:delete-access-keys, flux:remove-cluster-path, fleet:unregister-cluster) on a bootstrapped cluster, twice',
      'the canary token as the template secret; the cluster of the crash scenario, bootstrapped again first so this scenario stands alone',
      async () => {
        const bb = world.bitbucket;
        const repo = 'fleet-crash';
        const secrets = { token: world.canaries.bitbucketToken };
        const bootstrap = await runTemplate(
          world,
          'decommission: bootstrap first',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, {
            repo,
            project: SANDBOX.project,
            cluster: cluster.name,
          }),
          secrets,
        );
        expect(failure(bootstrap)).toBe('task completed without an error');
        const label = `flux-system-main-flux-system-./clusters/${cluster.name}`;
        expect(
          accessKeysOf(bb, SANDBOX.project, repo).filter(
            k => k.label === label,
          ),
        ).toHaveLength(1);

        const values = {
          cluster: cluster.name,
          confirm: cluster.name,
          cleanRepository: true,
          repoUrl: `${bb.host}?project=${SANDBOX.project}&repo=${repo}`,
          branch: 'main',
        };
        const run1 = await runTemplate(
          world,
          'decommission',
          DECOMMISSION_TEMPLATE,
          values,
          secrets,
        );
        expect(failure(run1)).toBe('task completed without an error');
        const crds = await cluster.http.expect(
          'GET',
          '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
          { query: { labelSelector: 'app.kubernetes.io/part-of=flux' } },
        );
        expect(crds.body.items).toEqual([]);
        expect(await secretData(cluster)).toBeUndefined();
        expect(
          accessKeysOf(bb, SANDBOX.project, repo).filter(
            k => k.label === label,
          ),
        ).toEqual([]);
        const history = await branchHistory(bb, SANDBOX.project, repo);
        expect(history[history.length - 1].subject).toBe(
          `Remove Flux from ${cluster.name}`,
        );
        const entity = await world.api.request(
          'GET',
          `/api/catalog/entities/by-name/resource/default/${cluster.name}`,
        );
        expect(entity.status).toBe(404);

        const mark = peerMarks();
        const run2 = await runTemplate(
          world,
          'decommission again',
          DECOMMISSION_TEMPLATE,
          values,
          secrets,
        );
        expect(failure(run2)).toBe('task completed without an error');
        const writes = (await requestsSince(mark)).filter(
          r =>
            // a git fetch POSTs to git-upload-pack: a read
            (/^bitbucket (POST|PUT|DELETE) /.test(r) &&
              !r.endsWith('/git-upload-pack')) ||
            r.endsWith('/git-receive-pack') ||
            /^cluster \S+ (POST|PUT|PATCH|DELETE) /.test(r),
        );
        // access reviews are questions, not changes (none in a no-op run anyway)
        expect(
          writes.filter(w => !w.includes('selfsubjectaccessreviews')),
        ).toEqual([]);
        expect(await branchHistory(bb, SANDBOX.project, repo)).toEqual(history);
        return `run 1 completed: no Flux CRD and no flux-system Secret left on cluster ${
          cluster.name
        }, its access key deleted (${
          accessKeysOf(bb, SANDBOX.project, repo).length
        } other key(s) on ${repo}), "Remove Flux from ${
          cluster.name
        }" committed, the entity unregistered; run 2 completed with 0 writes to Bitbucket, git or the cluster; the canary token in no task answer (scanned) nor, see the final scan, anywhere else`;
      },
    );
  });
});

describe('6. Authorization', () => {
  it('status answers hold no secret and no Secret data; the status API reads no Secret', async () => {
    await report.scenario(
      AREA.authz,
      "Status API cannot be used to read a cluster's Secret data",
      'status, cluster and entity routes with ?refresh=true, plus path tricks (encoded ../, secrets paths) as a permitted user',
      async () => {
        const seqs = Object.values(world.clusters).map(
          c => [c, lastSeq(c.proxy)] as const,
        );
        const answers: string[] = [];
        for (const p of [
          '/api/flux-bootstrap/clusters?state=true&refresh=true',
          ...Object.keys(world.clusters).map(
            n => `/api/flux-bootstrap/clusters/${n}?refresh=true`,
          ),
          '/api/flux-bootstrap/entity/resource/default/sandbox/clusters?refresh=true',
        ]) {
          const res = await world.api.request('GET', p);
          expect(res.status).toBe(200);
          world.scanner.scan(`status API answers: ${p}`, res.text);
          answers.push(res.text);
        }
        const tricks: string[] = [];
        for (const p of [
          '/api/flux-bootstrap/clusters/sandbox%2F..%2F..%2Fapi%2Fv1%2Fsecrets',
          '/api/flux-bootstrap/clusters/..%2F..%2Fapi%2Fv1%2Fnamespaces%2Fflux-system%2Fsecrets%2Fflux-system',
          '/api/flux-bootstrap/clusters/sandbox/secrets',
          '/api/flux-bootstrap/clusters/sandbox/status/../../../api/v1/secrets',
          '/api/flux-bootstrap/entity/secret/flux-system/flux-system/clusters',
        ]) {
          const res = await world.api.request('GET', p);
          expect(res.status).toBeGreaterThanOrEqual(400);
          world.scanner.scan(`status API answers: ${p}`, res.text);
          tricks.push(`${res.status}`);
        }
        // Nothing under the answers looks like Secret data, and no Secret was read on any cluster.
        for (const a of answers)
          expect(a).not.toMatch(
            /"(identity|known_hosts|password|ca\.crt)"\s*:/,
          );
        const secretReads = seqs.flatMap(([c, seq]) =>
          kubeRequestsSince(c.proxy, seq)
            .filter(q => /\/secrets(\/|$)/.test(q.path))
            .map(q => `${c.name} ${q.method} ${q.path}`),
        );
        expect(secretReads).toEqual([]);
        const reads = seqs.reduce(
          (n, [c, seq]) => n + kubeRequestsSince(c.proxy, seq).length,
          0,
        );
        return `${
          answers.length
        } answers with no Secret data and no credential; path tricks answered ${tricks.join(
          ', ',
        )}; of ${reads} apiserver requests made for these answers, 0 touched a Secret`;
      },
    );
  });

  let restorePolicy: (() => Promise<void>) | undefined;
  afterAll(async () => {
    await restorePolicy?.();
  });

  it('with a restrictive policy: 401 without credentials, 403 without the permission, bootstrap actions denied before any side effect', async () => {
    await report.scenario(
      AREA.authz,
      'Permission policy restricting the bootstrap actions and the status API to a group the user is not in',
      'permission.fluxBootstrap.bootstrappers and statusReaders = [group:default/flux-admins]; the backend restarted; requests as the guest user and with no credentials',
      async () => {
        world.setPolicy({
          bootstrappers: ['group:default/flux-admins'],
          statusReaders: ['group:default/flux-admins'],
        });
        await world.restartBackend();
        // The scenarios after this one run templates as the guest user again.
        restorePolicy = async () => {
          world.setPolicy({});
          await world.restartBackend();
        };
        const anonymous = await fetch(
          `${world.sandbox.baseUrl}/api/flux-bootstrap/clusters`,
        );
        expect(anonymous.status).toBe(401);
        const forbidden = await world.api.request(
          'GET',
          `/api/flux-bootstrap/clusters/${SANDBOX.cluster}`,
        );
        expect(forbidden.status).toBe(403);
        world.scanner.scan('status API answers: 403', forbidden.text);
        const mark = peerMarks();
        const denied = await runTemplate(
          world,
          'denied by policy',
          BITBUCKET_TEMPLATE,
          bitbucketValues(world, {
            repo: 'fleet-denied',
            project: SANDBOX.project,
          }),
          { token: world.canaries.bitbucketToken },
        );
        expect(denied.status).toBe('failed');
        expect(denied.error).toMatch(
          /not allowed|permission|unauthori[sz]ed|denied/i,
        );
        expect(await requestsSince(mark)).toEqual([]);
        const other = await runTemplate(
          world,
          'other action allowed',
          raw('reliability-other-action'),
          {},
        );
        expect(failure(other)).toBe('task completed without an error');
        return `no credentials → ${anonymous.status}; guest → ${
          forbidden.status
        } "${short(
          JSON.parse(forbidden.text)?.error?.message,
          120,
        )}"; the Bitbucket template failed: "${short(
          denied.error,
          160,
        )}" with 0 requests to Bitbucket or any apiserver; a template without bootstrap actions still completed`;
      },
    );
  });
});

// Two backend processes on PostgreSQL and Redis (issue #20); before the final scan, which also
// covers their logs and answers.
replicaScenarios({ world: () => world, report, area: AREA.replicas });

describe('2. Re-runs converge: upgrade', () => {
  it('re-running the template with the next Flux version makes one commit touching only gotk-components.yaml and applies no component to the cluster', async () => {
    const cluster = world.clusters.faults;
    await report.scenario(
      AREA.reruns,
      'Bitbucket template re-run on a bootstrapped cluster with fluxVersion v2.10.0 (from v2.9.4): the upgrade',
      'the canary token as the template secret; the cluster and repository of the slow-apiserver scenario (the last bootstrap on that cluster)',
      async () => {
        // The repository Flux on this cluster syncs now: the fault scenarios above bootstrapped
        // fleet-k-restart, then fleet-k-lost, on it.
        const repo = 'fleet-k-lost';
        const values = bitbucketValues(world, {
          repo,
          project: SANDBOX.project,
          cluster: cluster.name,
          extra: { fluxVersion: 'v2.10.0' },
        });
        const before = await branchHistory(
          world.bitbucket,
          SANDBOX.project,
          repo,
        );
        const seq = lastSeq(cluster.proxy);
        const r = await runTemplate(
          world,
          'upgrade',
          BITBUCKET_TEMPLATE,
          values,
          {
            token: world.canaries.bitbucketToken,
          },
        );
        expect(failure(r)).toBe('task completed without an error');
        const after = await branchHistory(
          world.bitbucket,
          SANDBOX.project,
          repo,
        );
        expect(after.slice(0, before.length)).toEqual(before);
        expect(after.slice(before.length).map(c => c.subject)).toEqual([
          'Add Flux v2.10.0 component manifests',
        ]);
        const changed = await run('git', [
          '-C',
          world.bitbucket.repoPath(SANDBOX.project, repo),
          'diff',
          '--name-only',
          before[before.length - 1].sha,
          after[after.length - 1].sha,
        ]);
        expect(changed.stdout.trim()).toBe(
          `clusters/${cluster.name}/flux-system/gotk-components.yaml`,
        );
        // Flux manages itself: flux:install touches only the sync objects (a server-side dry run
        // finds them unchanged), never a component.
        const requests = kubeRequestsSince(cluster.proxy, seq);
        const patched = [
          ...new Set(
            requests
              .filter(q => q.method === 'PATCH')
              .map(q => q.path.split('/').slice(-2)[0]),
          ),
        ].sort();
        expect(patched).toEqual(['gitrepositories', 'kustomizations']);
        expect(kubeWrites(requests).map(w => `${w.method} ${w.path}`)).toEqual(
          [],
        );
        expect(r.output?.text?.[0]?.content ?? '').toContain('v2.10.0');
        return `completed; 1 new commit "${
          after[after.length - 1].subject
        }" touching only ${changed.stdout.trim()}; the install's only PATCHes were server-side dry runs of the GitRepository and Kustomization (${
          requests.filter(q => q.method === 'PATCH').length
        }), 0 writes to the cluster; the canary token in no task answer (scanned)`;
      },
    );
  });
});

/** A REST call to the suite's Bitbucket (HTTPS, its own CA) with `token`, answer scanned. */
function bitbucketRest(
  method: string,
  urlPath: string,
  token: string,
): Promise<{ status: number; body: any }> {
  const url = new URL(`${world.bitbucket.apiBaseUrl}${urlPath}`);
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: world.bitbucket.caPem,
        headers: {
          authorization: `Bearer ${token}`,
          accept: 'application/json',
          'x-atlassian-token': 'no-check',
        },
      },
      res => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', c => {
          text += c;
        });
        res.on('end', () => {
          world.scanner.scan(
            `Bitbucket REST answers: ${method} ${urlPath}`,
            text,
          );
          resolve({
            status: res.statusCode ?? 0,
            body: text ? JSON.parse(text) : undefined,
          });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('2. Re-runs converge: pull request', () => {
  it('pull-request mode on a protected main: a re-run while the pull request is open changes nothing, a run after the merge is a no-op, nothing leaks', async () => {
    const cluster = world.clusters.prmode;
    await report.scenario(
      AREA.reruns,
      'Bitbucket template with "open a pull request" on a main with a pull-request-only restriction: a run, a re-run while the pull request is open, the merge through the REST API, a run after it',
      'the canary token as the template secret; a 20 s merge wait (mergeTimeout) while the pull request is open, so those runs end before the merge',
      async () => {
        const bb = world.bitbucket;
        const findings0 = world.scanner.findings().length;
        const repo = 'fleet-prmode';
        const reviewer = 'rel-reviewer';
        bb.addUser({ name: reviewer, email: 'rel-reviewer@example.com' });
        bb.grantProject(SANDBOX.project, { user: reviewer }, 'PROJECT_READ');
        bb.createRepo(SANDBOX.project, repo, {
          defaultBranch: 'main',
          initialCommit: true,
        });
        bb.addRestriction(SANDBOX.project, repo, {
          type: 'pull-request-only',
          matcher: 'main',
        });
        const secrets = { token: world.canaries.bitbucketToken };
        const values = (mergeTimeout: string) =>
          bitbucketValues(world, {
            repo,
            project: SANDBOX.project,
            cluster: cluster.name,
            extra: {
              changes: 'pull-request',
              reviewers: [reviewer],
              mergeTimeout,
            },
          });
        const source = `flux/${cluster.name}`;
        const prsOf = () =>
          bb.state().pullRequests.filter(p => p.slug === repo);
        const main0 = await branchHistory(bb, SANDBOX.project, repo);

        const run1 = await runTemplate(
          world,
          'pull request: first run',
          BITBUCKET_TEMPLATE,
          values('20s'),
          secrets,
        );
        expect(run1.stepStatus.pushManifests).toBe('completed');
        expect(failure(run1)).toMatch(
          /pull request #\d+ \(\S+\) was not merged within \d+ s; Flux is installed and applies it once it is merged/,
        );
        expect(prsOf()).toHaveLength(1);
        const pr = prsOf()[0];
        expect(pr.state).toBe('OPEN');
        expect(await branchHistory(bb, SANDBOX.project, repo)).toEqual(main0);
        const branch1 = await branchHistory(bb, SANDBOX.project, repo, source);
        expect(branch1.slice(main0.length).map(c => c.subject)).toEqual([
          'Add Flux v2.9.4 component manifests',
          'Add Flux sync manifests',
        ]);
        const waiting = await world.api.request<any>(
          'GET',
          `/api/flux-bootstrap/clusters/${cluster.name}?refresh=true`,
        );
        world.scanner.scan('status API answers: awaiting merge', waiting.text);
        expect(waiting.body.state).toBe('awaiting-merge');
        expect(waiting.body.pullRequest).toMatchObject({
          id: pr.id,
          state: 'OPEN',
          reviewers: [expect.objectContaining({ name: reviewer })],
        });

        const run2 = await runTemplate(
          world,
          'pull request: re-run while open',
          BITBUCKET_TEMPLATE,
          values('20s'),
          secrets,
        );
        expect(run2.stepStatus.pushManifests).toBe('completed');
        expect(failure(run2)).toContain(`pull request #${pr.id} (`);
        expect(prsOf()).toHaveLength(1);
        expect(prsOf()[0].version).toBe(pr.version);
        expect(await branchHistory(bb, SANDBOX.project, repo, source)).toEqual(
          branch1,
        );
        expect(await branchHistory(bb, SANDBOX.project, repo)).toEqual(main0);

        const prPath = `/projects/${SANDBOX.project}/repos/${repo}/pull-requests/${pr.id}`;
        const current = await bitbucketRest('GET', prPath, secrets.token);
        expect(current.status).toBe(200);
        const merged = await bitbucketRest(
          'POST',
          `${prPath}/merge?version=${current.body.version}`,
          secrets.token,
        );
        expect(merged.status).toBe(200);
        const mergeCommit = merged.body.properties.mergeCommit.id as string;
        const main1 = await branchHistory(bb, SANDBOX.project, repo);
        expect(main1[main1.length - 1].sha).toBe(mergeCommit);

        const run3 = await runTemplate(
          world,
          'pull request: run after the merge',
          BITBUCKET_TEMPLATE,
          values('2m'),
          secrets,
        );
        expect(failure(run3)).toBe('task completed without an error');
        expect(await branchHistory(bb, SANDBOX.project, repo)).toEqual(main1);
        expect(prsOf()).toHaveLength(1);
        const ks = await fluxStatus(cluster, 'kustomizations');
        expect(ks?.status?.lastAppliedRevision).toBe(
          `main@sha1:${mergeCommit}`,
        );
        const ready = await world.api.request<any>(
          'GET',
          `/api/flux-bootstrap/clusters/${cluster.name}?refresh=true`,
        );
        world.scanner.scan('status API answers: after the merge', ready.text);
        expect(ready.body.state).toBe('ready');
        expect(ready.body.pullRequest).toBeUndefined();
        // What pull-request mode adds to Bitbucket: titles, descriptions, branch names.
        world.scanner.scan(
          'pull requests (titles, descriptions, branches, reviewers)',
          JSON.stringify(prsOf()),
        );
        expect(world.scanner.findings().slice(findings0)).toEqual([]);
        return `run 1: pull request #${
          pr.id
        } from ${source} with the 2 Flux commits, main untouched, status awaiting-merge, task ended at its merge wait; run 2 while open: no commit, no second pull request (version ${
          pr.version
        } unchanged); merged through REST (${short(
          mergeCommit,
          12,
        )}); run 3: completed, no commit, still 1 pull request, Flux applied the merge commit, status ready without the pull request; the canary token in no pull request, task answer or status answer (scanned)`;
      },
    );
  });
});

describe('1. Secrets never leak: final scan', () => {
  it('no secret appears in any log, output, error, API answer, commit or file', async () => {
    await report.scenario(
      AREA.secrets,
      'Scan of everything every scenario above produced (successes, failures, retries, crash, bad input, denials)',
      `canaries: ${world.scanner.secrets().join(', ')}`,
      async () => {
        const repos = await scanRepositories(world);
        world.scanner.scan(
          'backend log (stdout and stderr, across restarts)',
          world.backendLog().join('\n'),
        );
        const entities = await world.api.request(
          'GET',
          '/api/catalog/entities?filter=kind=resource',
        );
        world.scanner.scan(
          'catalog entities (registered clusters)',
          entities.text,
        );
        for (const bb of [world.bitbucket, world.untrusted]) {
          world.scanner.scan(
            'Bitbucket state (repositories, access keys, permissions)',
            JSON.stringify(bb.state()),
          );
        }
        for (const c of Object.values(world.clusters)) {
          const objects = await fluxObjects(c.http);
          for (const [key, o] of objects) {
            // Secret flux-system holds credentials by design (Flux reads them); everything else must not.
            if (key === 'secrets/flux-system/flux-system') continue;
            world.scanner.scan(
              `cluster objects other than the Flux Git Secret: ${c.name} ${key}`,
              o.content,
            );
          }
        }
        const findings = world.scanner.findings();
        expect(findings).toEqual([]);
        const stats = world.scanner.stats();
        return `0 occurrences in ${Object.values(stats).reduce(
          (n, st) => n + st.items,
          0,
        )} artifacts: ${repos} repositories (every commit, ref and object), ${
          world.backendLog().length
        } backend log lines, every task's API answers and events, status API answers, catalog entities, Bitbucket state, cluster objects`;
      },
    );
  });
});
