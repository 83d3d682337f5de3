import type { KubeClient, KubeObject } from '../kube/types';
import { FluxInstallError } from './errors';
import type { FluxInstallPlan } from './plan';
import { waitForFlux } from './wait';

// Stale status: when a re-run points Flux at another repository, the controllers' status still
// describes the previous spec for a moment (found by the reliability suite: the previous
// repository's "Permission denied" failed a healthy bootstrap). These scripted reads check that
// only a status about the current generation / the expected revision counts as a failure.

const REVISION = 'main@sha1:1111111111111111111111111111111111111111';
const OLD = 'main@sha1:2222222222222222222222222222222222222222';

const plan = {
  namespace: 'flux-system',
  fluxVersion: 'v2.9.4',
  components: ['source-controller'],
  componentObjects: [],
  syncObjects: [],
  path: './clusters/a',
  expectedRevision: REVISION,
} as FluxInstallPlan;

function cond(status: 'True' | 'False', reason: string, message = reason) {
  return [{ type: 'Ready', status, reason, message }];
}

function gitRepository(
  generation: number,
  observed: number,
  ready: ReturnType<typeof cond>,
  revision = REVISION,
): KubeObject {
  return {
    apiVersion: 'source.toolkit.fluxcd.io/v1',
    kind: 'GitRepository',
    metadata: { name: 'flux-system', namespace: 'flux-system', generation },
    spec: {},
    status: {
      observedGeneration: observed,
      conditions: ready,
      artifact: { revision },
    },
  };
}

function kustomization(
  attempted: string,
  ready: ReturnType<typeof cond>,
): KubeObject {
  return {
    apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
    kind: 'Kustomization',
    metadata: { name: 'flux-system', namespace: 'flux-system', generation: 1 },
    spec: {},
    status: {
      observedGeneration: 1,
      conditions: ready,
      lastAttemptedRevision: attempted,
      ...(ready[0].status === 'True' ? { lastAppliedRevision: attempted } : {}),
    },
  };
}

const deployment: KubeObject = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'source-controller',
    namespace: 'flux-system',
    generation: 1,
  },
  spec: { replicas: 1 },
  status: {
    observedGeneration: 1,
    replicas: 1,
    readyReplicas: 1,
    updatedReplicas: 1,
    availableReplicas: 1,
    conditions: [{ type: 'Available', status: 'True' }],
  },
};

/**
 * A client whose GitRepository/Kustomization reads follow a script, one entry per poll. Like the
 * controllers, it answers a `reconcile.fluxcd.io/requestedAt` request in the status
 * (`lastHandledReconcileAt`) of the reads that follow; `applied` records what was sent.
 */
function scripted(polls: { git: KubeObject; ks: KubeObject }[]) {
  let i = 0;
  let handled: string | undefined;
  const applied: {
    kind: string;
    annotations?: Record<string, string>;
    fieldManager: string;
  }[] = [];
  const withHandled = (o: KubeObject): KubeObject =>
    handled
      ? {
          ...o,
          status: { ...(o.status as object), lastHandledReconcileAt: handled },
        }
      : o;
  const client = {
    clusterName: 'test',
    async get(ref: { kind: string }) {
      const poll = polls[Math.min(i, polls.length - 1)];
      if (ref.kind === 'GitRepository') return withHandled(poll.git);
      if (ref.kind === 'Kustomization') {
        i++;
        return withHandled(poll.ks);
      }
      return deployment;
    },
    async apply(obj: KubeObject, opts: { fieldManager: string }) {
      applied.push({
        kind: obj.kind,
        annotations: obj.metadata.annotations,
        fieldManager: opts.fieldManager,
      });
      handled = obj.metadata.annotations?.['reconcile.fluxcd.io/requestedAt'];
      return obj;
    },
  };
  return Object.assign(client as unknown as KubeClient, { applied });
}

describe('waitForFlux and stale controller status', () => {
  it('a Ready=False of an older generation is not a failure: it waits for the current one', async () => {
    const client = scripted([
      {
        git: gitRepository(
          2,
          1,
          cond('False', 'GitOperationFailed', 'Permission denied (publickey)'),
          OLD,
        ),
        ks: kustomization(OLD, cond('True', 'ReconciliationSucceeded')),
      },
      {
        git: gitRepository(2, 2, cond('True', 'Succeeded')),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    const result = await waitForFlux(client, plan, { pollIntervalMs: 1 });
    expect(result.ready).toBe(true);
    expect(result.revision).toBe(REVISION);
  });

  it('a Ready=True at the expected revision counts only once the current generation is observed', async () => {
    // Both objects report success, but for an older spec (say, the previous path or URL).
    const staleKs = kustomization(
      REVISION,
      cond('True', 'ReconciliationSucceeded'),
    );
    staleKs.metadata.generation = 2;
    const client = scripted([
      { git: gitRepository(2, 1, cond('True', 'Succeeded')), ks: staleKs },
    ]);
    const err = await waitForFlux(client, plan, {
      pollIntervalMs: 1,
      timeoutMs: 300,
    }).catch(e => e);
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('timeout');
    expect(err.missing).toEqual([
      'GitRepository flux-system/flux-system: generation 2 not observed by its controller yet (Ready=True (Succeeded): Succeeded)',
      'Kustomization flux-system/flux-system: generation 2 not observed by its controller yet (Ready=True (ReconciliationSucceeded): ReconciliationSucceeded)',
    ]);
  });

  it("a Kustomization's failure on an older revision is not a failure while the expected one is pending", async () => {
    const client = scripted([
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(
          OLD,
          cond('False', 'ReconciliationFailed', 'kustomization path not found'),
        ),
      },
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    await expect(
      waitForFlux(client, plan, { pollIntervalMs: 1 }),
    ).resolves.toEqual(expect.objectContaining({ ready: true }));
  });

  it('a Kustomization that ran before its source had an artifact (ArtifactFailed) is waited for, not failed', async () => {
    const notFetched = cond(
      'False',
      'ArtifactFailed',
      'Source artifact not found, retrying in 30s',
    );
    const client = scripted([
      {
        // The source is ready by now; the Kustomization's status is from just before.
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: {
          ...kustomization(REVISION, notFetched),
          status: { observedGeneration: 1, conditions: notFetched },
        },
      },
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    await expect(
      waitForFlux(client, plan, { pollIntervalMs: 1 }),
    ).resolves.toEqual(
      expect.objectContaining({ ready: true, revision: REVISION }),
    );
  });

  it('a failure of the current generation reported before this run (e.g. old credentials) asks Flux to reconcile, and the fresh status decides', async () => {
    const client = scripted([
      {
        git: gitRepository(
          1,
          1,
          cond('False', 'GitOperationFailed', 'Host key verification failed'),
        ),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    const result = await waitForFlux(client, plan, { pollIntervalMs: 1 });
    expect(result.ready).toBe(true);
    // Only the annotation, under its own field manager, on both sync objects.
    expect(client.applied).toEqual([
      {
        kind: 'GitRepository',
        annotations: { 'reconcile.fluxcd.io/requestedAt': expect.any(String) },
        fieldManager: 'flux-bootstrap-reconcile',
      },
      {
        kind: 'Kustomization',
        annotations: { 'reconcile.fluxcd.io/requestedAt': expect.any(String) },
        fieldManager: 'flux-bootstrap-reconcile',
      },
    ]);
  });

  it('a healthy cluster is not asked to reconcile (a converged re-run writes nothing)', async () => {
    const client = scripted([
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(REVISION, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    await waitForFlux(client, plan, { pollIntervalMs: 1 });
    expect(client.applied).toEqual([]);
  });

  it('fails on a failure about the current generation or the expected revision once Flux handled the reconcile request', async () => {
    const current = scripted([
      {
        git: gitRepository(
          2,
          2,
          cond('False', 'GitOperationFailed', 'Permission denied (publickey)'),
        ),
        ks: kustomization(OLD, cond('True', 'ReconciliationSucceeded')),
      },
    ]);
    const err = await waitForFlux(current, plan, { pollIntervalMs: 1 }).catch(
      e => e,
    );
    expect(err).toBeInstanceOf(FluxInstallError);
    expect(err.reason).toBe('sync-failed');
    expect(err.message).toContain('Permission denied (publickey)');

    const expected = scripted([
      {
        git: gitRepository(1, 1, cond('True', 'Succeeded')),
        ks: kustomization(
          REVISION,
          cond('False', 'ReconciliationFailed', 'kustomization path not found'),
        ),
      },
    ]);
    const err2 = await waitForFlux(expected, plan, { pollIntervalMs: 1 }).catch(
      e => e,
    );
    expect(err2.reason).toBe('sync-failed');
    expect(err2.message).toContain('kustomization path not found');
  });
});
