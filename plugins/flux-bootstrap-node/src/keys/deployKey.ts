import { attempt, type BitbucketAccess } from '../bitbucket/access';
import { BitbucketServerClient, restPath } from '../bitbucket/client';
import {
  locateBitbucketRepository,
  planRepositoryOutputs,
} from '../bitbucket/repository';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import { redactedSteps } from '../util/checkpoint';
import { accessKeyRequest, fluxAccessKeyLabel } from './accessKey';
import { formatSshHost, parseSshHost, SshEndpoint } from './hostKey';
import {
  describeSshKeyOptions,
  generateSshKeyPair,
  privateKeyRedactions,
  SshKeyOptions,
} from './keyPair';
import { parseSshPublicKey, sameSshPublicKey } from './publicKey';
import {
  applySourceSecret,
  b64,
  FLUX_FIELD_MANAGER,
  inspectSecret,
  inspectWritableSecret,
  SecretKube,
  secretRef,
  SecretTarget,
  settleKnownHosts,
  sourceSecret,
  SourceSecretDeps,
  SourceSecretOutputs,
} from './sourceSecret';

/** Field manager of `known_hosts` alone: updating it then sends (or reads) no `identity`. */
const KNOWN_HOSTS_FIELD_MANAGER = 'flux-bootstrap-known-hosts';

/** A parsed `flux:generate-key` input with `repoUrl`. @public */
export interface DeployKeyRequest {
  bitbucket: BitbucketAccess;
  /** A cluster of `kubernetes.clusterLocatorMethods` (or a kubeconfig context, when allowed). */
  cluster: string;
  namespace: string;
  secretName: string;
  key: SshKeyOptions;
  readWrite: boolean;
  branch: string;
  path?: string;
  /** Where Flux connects over SSH; default the host's `fluxBootstrap.bitbucketServer[].sshHost`. */
  sshHost?: SshEndpoint;
  /** A pinned `SHA256:` host key fingerprint instead of trusting the first scan. */
  hostKeyFingerprint?: string;
  rotate: boolean;
}

/** Everything {@link reconcileDeployKey} works with, resolved and checked. */
type DeployKeyPlan = SecretTarget &
  Pick<DeployKeyRequest, 'key' | 'readWrite' | 'rotate'> & {
    projectKey: string;
    repoSlug: string;
    label: string;
  };

function describePlan(p: DeployKeyPlan, { name }: { name: string }) {
  const where = `${p.namespace}/${p.secretName}`;
  const repo = `${p.projectKey}/${p.repoSlug}`;
  const key = describeSshKeyOptions(p.key);
  const pin = p.hostKeyFingerprint
    ? ` and require fingerprint ${p.hostKeyFingerprint}`
    : '';
  const host = formatSshHost(p.sshHost);
  const permission = p.readWrite ? 'REPO_WRITE' : 'REPO_READ';
  const rotated = p.rotate ? ' and the rotated-out key' : '';
  return [
    `would read Secret ${where} in cluster ${name}`,
    p.rotate
      ? `would rotate: generate a new ${key} key even if the Secret holds one`
      : `when the Secret holds no key: generate a ${key} key; otherwise keep it`,
    `would scan the SSH host key of ${host} for known_hosts${pin}`,
    `would create namespace ${p.namespace} if missing and server-side apply Secret ${where} (identity, identity.pub, known_hosts; field manager ${FLUX_FIELD_MANAGER})`,
    `would register the public key as access key "${p.label}" (${permission}) on ${repo} unless it is registered already`,
    `would remove other access keys labelled "${p.label}"${rotated} from ${repo}`,
  ];
}

/**
 * `flux:generate-key` with `repoUrl`, like `flux bootstrap bitbucket-server` in SSH mode but
 * convergent: a complete Flux Git Secret is kept (`known_hosts` re-scanned when it lacks
 * `sshHost` or the pin), else (or on `rotate`) a new key pair is written; the key is registered
 * on the repository, and the rotated-out and same-label keys are removed by id.
 * @public
 */
export async function provisionDeployKey(
  req: DeployKeyRequest,
  deps: SourceSecretDeps,
): Promise<SourceSecretOutputs> {
  const { logger, redactor, signal } = deps;
  const { ref, host, auth, credentials } = req.bitbucket;
  const cluster = resolveCluster(deps.settings, req.cluster, 'cluster');
  const { projectKey, repoSlug } = planRepositoryOutputs(host, {
    ref,
    defaultBranch: '',
  });
  const plan: DeployKeyPlan = {
    ...req,
    sshHost: req.sshHost ?? parseSshHost(host.sshHost, 'sshHost'),
    projectKey,
    repoSlug,
    label: fluxAccessKeyLabel(req),
    scanTimeoutMs: deps.scanTimeoutMs,
  };
  if (deps.dryRun) {
    logger.info('Dry run of flux:generate-key; no request is sent. Plan:');
    describePlan(plan, cluster).forEach(line => logger.info(`  ${line}`));
    const { secretName, label: accessKeyLabel } = plan;
    return {
      secretName,
      accessKeyLabel,
      removedAccessKeyIds: [],
      changed: false,
    };
  }
  logger.info(
    `Using ${credentials} for Bitbucket ${host.host} and cluster ${cluster.name}`,
  );
  const bitbucket = new BitbucketServerClient(host, auth, { logger, redactor });
  const kube = await createKubeClient(cluster, { logger, redactor });
  try {
    const repo = await locateBitbucketRepository(bitbucket, ref, {
      signal,
      credentials,
    });
    return await reconcileDeployKey(
      { ...plan, ...repo },
      { ...deps, kube, bitbucket },
    );
  } finally {
    kube.close();
  }
}

async function reconcileDeployKey(
  o: DeployKeyPlan,
  deps: SourceSecretDeps & {
    kube: SecretKube;
    bitbucket: BitbucketServerClient;
  },
): Promise<SourceSecretOutputs> {
  const { kube, bitbucket, logger, redactor, signal } = deps;
  const step = redactedSteps(redactor, deps.checkpoint);
  const where = `${o.namespace}/${o.secretName}`;
  const { projectKey, repoSlug, label } = o;
  const repo = `${projectKey}/${repoSlug}`;
  const permission = o.readWrite ? 'REPO_WRITE' : 'REPO_READ';
  const onBitbucket = <T>(action: string, fn: () => Promise<T>) =>
    attempt(
      {
        client: bitbucket,
        credentials: 'the credentials',
        action: `${action} of ${repo}`,
        needs: `REPO_ADMIN on repository ${repo} (managing repository access keys)`,
      },
      fn,
    );

  logger.info(`Determining if source secret ${where} exists`);
  const before = await step('inspect-secret', async () => {
    // Pre-flight, before any side effect: may we write the Secret and manage access keys?
    const state = await inspectWritableSecret(kube, o, signal);
    await onBitbucket('read the access keys', () =>
      bitbucket.listAccessKeys(projectKey, repoSlug, signal),
    );
    // Only public fields are kept (a checkpoint stores its value in the task state).
    return {
      ...state,
      publicKey: state.publicKey ?? null,
      knownHosts: state.knownHosts ?? null,
    };
  });

  let publicKey: string;
  let knownHosts: string;
  let changed = false;
  const settle = {
    ...deps,
    step,
    remedy:
      'Check the new fingerprint with the Bitbucket administrators; if it is right, run again with hostKeyFingerprint set to it (or rotate the key).',
  };
  if (before.complete && !o.rotate) {
    publicKey = before.publicKey!;
    const { fingerprint } = parseSshPublicKey(publicKey);
    logger.info(`Source secret ${where} holds key ${fingerprint}; keeping it`);
    const settled = await settleKnownHosts(o, before.knownHosts!, settle);
    knownHosts = settled.knownHosts;
    if (settled.scanned) {
      await step('known-hosts', async () => {
        await kube.apply(sourceSecret(o, { known_hosts: b64(knownHosts) }), {
          fieldManager: KNOWN_HOSTS_FIELD_MANAGER,
          force: true,
          signal,
        });
        return true;
      });
      changed = true;
      logger.info(`Updated known_hosts of ${where}: ${knownHosts}`);
    }
  } else {
    let why = `lacks ${before.missing.join(', ')}; generating a new key pair`;
    if (!before.exists) why = 'does not exist; generating a key pair';
    logger.info(
      o.rotate
        ? `Rotating the key of source secret ${where}`
        : `Source secret ${where} ${why}`,
    );
    const scanned = await settleKnownHosts(o, undefined, settle);
    const written = await step('secret', async () => {
      // Idempotent on its own: a Secret already (re)written by an earlier attempt is kept.
      const live = inspectSecret(await kube.get(secretRef(o), { signal }));
      if (
        live.complete &&
        (!before.complete || live.publicKey !== before.publicKey)
      ) {
        logger.info(
          `Source secret ${where} was written by an earlier attempt; keeping it`,
        );
        return {
          publicKey: live.publicKey!,
          knownHosts: live.knownHosts!,
          generated: false,
        };
      }
      const pair = await generateSshKeyPair(o.key, signal);
      for (const secret of privateKeyRedactions(pair)) redactor.add(secret);
      const data = {
        identity: b64(pair.privateKeyPem),
        'identity.pub': b64(pair.publicKey),
        known_hosts: b64(scanned.knownHosts),
      };
      await applySourceSecret(kube, o, data, signal);
      logger.info(
        `Generated a ${pair.description} key ${pair.fingerprint} and applied source secret ${where}`,
      );
      return {
        publicKey: pair.publicKey.trim(),
        knownHosts: scanned.knownHosts,
        generated: true,
      };
    });
    ({ publicKey, knownHosts } = written);
    changed = written.generated;
  }

  logger.info(`Public key: ${publicKey}`);
  const previousKey =
    before.publicKey !== publicKey ? before.publicKey ?? undefined : undefined;
  const registered = await step('access-key', () =>
    onBitbucket('register access keys', async () => {
      const keys = await bitbucket.listAccessKeys(projectKey, repoSlug, signal);
      const isOurs = (text: string) => sameSshPublicKey(text, publicKey);
      const stale = keys
        .filter(
          k =>
            !isOurs(k.key.text) &&
            (k.key.label === label ||
              sameSshPublicKey(k.key.text, previousKey)),
        )
        .map(k => ({
          id: k.key.id,
          label: k.key.label ?? '',
          permission: String(k.permission),
        }));
      const mine = keys.find(k => isOurs(k.key.text));
      const id = mine?.key.id;
      if (mine?.permission === permission) {
        logger.info(
          `Access key ${id} "${
            mine.key.label ?? ''
          }" on ${repo} already holds this key (${permission})`,
        );
        return { id: mine.key.id, changed: false, stale };
      }
      if (mine) {
        const path = '/rest/keys/1.0/projects/{}/repos/{}/ssh/{}/permission/{}';
        await bitbucket.request(
          'PUT',
          restPath(path, projectKey, repoSlug, mine.key.id, permission),
          { signal },
        );
        logger.info(
          `Changed access key ${id} on ${repo} from ${mine.permission} to ${permission}`,
        );
        return { id: mine.key.id, changed: true, stale };
      }
      const created = await bitbucket.addAccessKey(
        projectKey,
        repoSlug,
        accessKeyRequest(publicKey, label, o.readWrite),
        signal,
      );
      logger.info(
        `Configured access key ${created.key.id} "${label}" (${permission}) for ${repo}`,
      );
      return { id: created.key.id, changed: true, stale };
    }),
  );

  const removed = !registered.stale.length
    ? []
    : await step('access-key-cleanup', async () => {
        const ids: number[] = [];
        for (const old of registered.stale) {
          if (old.id === registered.id) continue;
          const gone = await onBitbucket('remove access keys', () =>
            bitbucket.deleteAccessKey(projectKey, repoSlug, old.id, signal),
          );
          logger.info(
            gone
              ? `Removed access key ${old.id} "${old.label}" (${old.permission}) from ${repo}: it is not the key in ${where}`
              : `Access key ${old.id} was already gone from ${repo}`,
          );
          if (gone) ids.push(old.id);
        }
        return ids;
      });

  changed ||= registered.changed || removed.length > 0;
  logger.info(
    `Source secret ${where} and access key ${registered.id} on ${repo} are ${
      changed ? 'reconciled' : 'up to date'
    }`,
  );
  return {
    publicKey,
    fingerprint: parseSshPublicKey(publicKey).fingerprint,
    knownHosts,
    secretName: o.secretName,
    accessKeyId: registered.id,
    accessKeyLabel: label,
    removedAccessKeyIds: removed,
    changed,
  };
}
