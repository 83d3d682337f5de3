/**
 * startBootstrappedCluster on its real peers: the Bitbucket double's fleet repository (REST and
 * git with flux's token), a private apiserver with Flux's components and sync objects, the
 * simulator reconciling them, a minted token limited to its rules, and one stop() for all.
 */
import { KubeHttp } from '../kube/http';
import {
  OPERATE_FLUX_RULES,
  READ_ALL_RULES,
  startBootstrappedCluster,
} from './bootstrappedCluster';
import { eventually, kubeAccess, readyOf } from './simTestUtils';

jest.setTimeout(240_000);

const TOKEN = 'bb-token-bootstrapped-cluster-2c7e91';
const CANARY = 'canary-bootstrapped-cluster-8d03f5';
const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('startBootstrappedCluster', () => {
  it('bootstraps: fleet repository readable with the token, Flux synced by the simulator, canary in the Secret, suspend and resume, the token limited to its rules; stop() ends every peer', async () => {
    const c = await startBootstrappedCluster({
      token: TOKEN,
      canary: CANARY,
      tokenRules: READ_ALL_RULES,
      tokenName: 'bc-reader',
    });
    const k = kubeAccess(c.kube.info());
    let stopped = false;
    try {
      expect(c.namespace).toBe('flux-system');
      expect(c.repo).toEqual({
        project: 'FLUX',
        slug: 'fleet',
        cloneUrl: c.bb.cloneUrls('FLUX', 'fleet').http,
      });
      // Bitbucket: flux's token reads the repository over REST and git, nothing else does.
      const branches = await fetch(
        `${c.bb.apiBaseUrl}/projects/FLUX/repos/fleet/branches`,
        { headers: { Authorization: `Bearer ${TOKEN}` } },
      );
      expect(branches.status).toBe(200);
      expect(
        (await branches.json()).values.map((b: any) => b.displayId),
      ).toEqual(['main']);
      const refs = `${c.repo.cloneUrl}/info/refs?service=git-upload-pack`;
      expect(
        (
          await fetch(refs, {
            headers: { Authorization: basic('flux', TOKEN) },
          })
        ).status,
      ).toBe(200);
      expect(
        (
          await fetch(refs, {
            headers: { Authorization: basic('flux', 'wrong-token') },
          })
        ).status,
      ).toBe(401);

      // The sync objects point at the repository; the Secret holds flux's token and the canary.
      const secret = await k.get(
        k.p('v1', 'secrets', 'flux-system', 'flux-system'),
      );
      expect(secret.data).toEqual({
        username: Buffer.from('flux').toString('base64'),
        password: Buffer.from(TOKEN).toString('base64'),
        canary: Buffer.from(CANARY).toString('base64'),
      });
      const source = await eventually(
        'GitRepository Ready',
        async () => {
          const g = await k.get(k.gitRepository('flux-system', 'flux-system'));
          return readyOf(g)?.status === 'True' && g;
        },
        () => c.sim!.events(),
        90_000,
      );
      expect(source.spec.url).toBe(c.repo.cloneUrl);
      await eventually(
        'Kustomization Ready',
        async () =>
          readyOf(await k.get(k.kustomization('flux-system', 'flux-system')))
            ?.status === 'True',
        () => c.sim!.events(),
        90_000,
      );
      expect(
        (await k.get(k.deployment('flux-system', 'source-controller'))).metadata
          .name,
      ).toBe('source-controller');

      // setSyncSuspended flips only the Kustomization's spec.suspend, back and forth.
      const ks = k.kustomization('flux-system', 'flux-system');
      const generation = (await k.get(ks)).metadata.generation;
      await c.setSyncSuspended(true);
      const suspended = await k.get(ks);
      expect(suspended.spec.suspend).toBe(true);
      expect(suspended.spec.path).toBe('./');
      expect(suspended.metadata.generation).toBe(generation + 1);
      await c.setSyncSuspended(false);
      expect((await k.get(ks)).spec.suspend).toBe(false);
      expect(
        (await k.get(k.gitRepository('flux-system', 'flux-system'))).metadata
          .generation,
      ).toBe(source.metadata.generation);

      // The minted token reads, but may not patch.
      expect(c.serviceAccountUser).toMatch(
        /^system:serviceaccount:flux-test-tokens:bc-reader-/,
      );
      const asReader = new KubeHttp(c.kube.info(), c.serviceAccountToken!);
      try {
        const at = k.gitRepository('flux-system', 'flux-system');
        expect((await asReader.request('GET', at)).status).toBe(200);
        expect(
          (
            await asReader.request('PATCH', at, {
              body: { spec: { suspend: true } },
              contentType: 'application/merge-patch+json',
            })
          ).status,
        ).toBe(403);
      } finally {
        asReader.close();
      }

      await c.stop();
      stopped = true;
      const after = new KubeHttp(c.kube.info());
      try {
        await expect(after.request('GET', '/readyz')).rejects.toThrow();
      } finally {
        after.close();
      }
      await expect(fetch(refs)).rejects.toThrow();
    } finally {
      k.close();
      if (!stopped) await c.stop();
    }
  });

  it("with flux: 'none' and no simulator: the apiserver and the repository only, nothing to suspend; the operate token may patch Flux's objects", async () => {
    const c = await startBootstrappedCluster({
      token: TOKEN,
      flux: 'none',
      simulator: false,
      tokenRules: OPERATE_FLUX_RULES,
    });
    const k = kubeAccess(c.kube.info());
    try {
      expect(c.sim).toBeUndefined();
      expect(
        (
          await k.api.request(
            'GET',
            k.crd('gitrepositories.source.toolkit.fluxcd.io'),
          )
        ).status,
      ).toBe(404);
      expect(c.serviceAccountUser).toMatch(
        /^system:serviceaccount:flux-test-tokens:cluster-reader-/,
      );
      const review = await k.api.request(
        'POST',
        '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        {
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: c.serviceAccountUser,
              resourceAttributes: {
                group: 'kustomize.toolkit.fluxcd.io',
                resource: 'kustomizations',
                verb: 'patch',
                namespace: 'flux-system',
              },
            },
          },
        },
      );
      expect(review.status).toBe(201);
      expect(review.body.status.allowed).toBe(true);
      await expect(c.setSyncSuspended(true)).rejects.toThrow(
        "setSyncSuspended needs flux: 'components'",
      );
    } finally {
      k.close();
      await c.stop();
    }
  });
});
