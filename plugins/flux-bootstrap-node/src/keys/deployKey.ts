import type { BitbucketServerClient } from '../bitbucket/client';
import { restPath } from '../bitbucket/client';
import { attempt } from '../bitbucket/repository';
import type { KubeClient, KubeObject } from '../kube/types';
import { redactedSteps, type CheckpointFn } from '../util/checkpoint';
import { FluxBootstrapError } from '../util/errors';
import type { EngineLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import { accessKeyRequest, AccessKeyPermission } from './accessKey';
import {
  formatSshHost,
  HostKeyMismatchError,
  HostKeyScanError,
  KnownHostsEntry,
  knownHostsFor,
  knownHostsHostField,
  scanHostKey,
  ScannedHostKey,
  SshEndpoint,
} from './hostKey';
import {
  describeSshKeyOptions,
  generateSshKeyPair,
  privateKeyRedactions,
  SshKeyOptions,
} from './keyPair';
import { parseSshPublicKey, sameSshPublicKey } from './publicKey';

/** Field manager of the Secret, as flux's own apply uses. @public */
export const FLUX_FIELD_MANAGER = 'flux';
/** Field manager of `known_hosts` alone: updating it then sends (or reads) no `identity`. @public */
export const KNOWN_HOSTS_FIELD_MANAGER = 'flux-bootstrap-known-hosts';

/** What the source secret functions need from the Kubernetes client. @public */
export type DeployKeyKube = Pick<
  KubeClient,
  'get' | 'apply' | 'ensureNamespace' | 'canI'
> & { readonly clusterName?: string };

/** What {@link reconcileFluxDeployKey} needs from the Bitbucket client. @public */
export type DeployKeyBitbucket = Pick<
  BitbucketServerClient,
  'listAccessKeys' | 'addAccessKey' | 'deleteAccessKey' | 'request' | 'host'
>;

/**
 * Validated inputs of {@link reconcileFluxDeployKey}: the Secret (its namespace is created when
 * missing), the key to generate, the repository (`~user` project for personal ones), whether the
 * access key may write, its {@link fluxAccessKeyLabel}, the SSH endpoint with an optional pinned
 * `SHA256:` host key fingerprint and scan budget (default 30 s), and whether to rotate.
 * @public
 */
export interface FluxDeployKeyOptions {
  namespace: string;
  secretName: string;
  key: SshKeyOptions;
  projectKey: string;
  repoSlug: string;
  readWrite: boolean;
  label: string;
  sshHost: SshEndpoint;
  hostKeyFingerprint?: string;
  scanTimeoutMs?: number;
  rotate: boolean;
}

/**
 * Collaborators of {@link reconcileFluxDeployKey}. Every generated private key is registered
 * with `redactor` before anything can log or throw it; each side effect runs in `checkpoint`
 * (`ctx.checkpoint` in an action).
 * @public
 */
export interface FluxDeployKeyDeps {
  kube: DeployKeyKube;
  bitbucket: DeployKeyBitbucket;
  logger: EngineLogger;
  redactor: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
}

/**
 * Outcome of {@link reconcileFluxDeployKey}, public data only: the key in the Secret
 * (`type base64`, fingerprint), its `known_hosts`, the access key holding it, and what changed
 * (`knownHostsUpdated`: only `known_hosts` of the existing Secret; `removedAccessKeyIds`: the
 * rotated-out key and stale keys with the label).
 * @public
 */
export interface FluxDeployKeyResult {
  publicKey: string;
  fingerprint: string;
  knownHosts: string;
  secretName: string;
  namespace: string;
  accessKeyId: number;
  permission: AccessKeyPermission;
  label: string;
  changed: boolean;
  keyGenerated: boolean;
  knownHostsUpdated: boolean;
  accessKeyChanged: boolean;
  removedAccessKeyIds: number[];
}

/**
 * What a source secret holds, read without ever decoding `identity`; complete when `identity`,
 * `identity.pub` and `known_hosts` are present and parseable.
 * @public
 */
export interface SecretState {
  exists: boolean;
  complete: boolean;
  publicKey?: string;
  knownHosts?: string;
  missing: string[];
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** Reads a source secret's state; `identity` is only checked for presence, never decoded. @public */
export function inspectSecret(secret: KubeObject | undefined): SecretState {
  if (!secret) return { exists: false, complete: false, missing: [] };
  const data = (secret.data ?? {}) as Record<string, unknown>;
  const decoded = (field: string) =>
    typeof data[field] === 'string' && data[field]
      ? Buffer.from(data[field] as string, 'base64').toString('utf8')
      : undefined;
  const pub = decoded('identity.pub');
  let publicKey: string | undefined;
  try {
    publicKey = pub && parseSshPublicKey(pub).text;
  } catch {
    publicKey = undefined;
  }
  const knownHosts = decoded('known_hosts')?.trim();
  const missing = [
    ...(data.identity ? [] : ['identity']),
    ...(publicKey ? [] : ['identity.pub']),
    ...(knownHosts ? [] : ['known_hosts']),
  ];
  return {
    exists: true,
    complete: missing.length === 0,
    publicKey,
    knownHosts,
    missing,
  };
}

/**
 * Pre-flight before writing a source secret: may the cluster credentials get, create and patch
 * Secrets in `namespace`? Fails (nothing changed) naming the verbs that are denied.
 * @public
 */
export async function assertMayWriteSecrets(
  kube: Pick<KubeClient, 'canI'> & { readonly clusterName?: string },
  namespace: string,
  signal?: AbortSignal,
): Promise<void> {
  const verbs = ['get', 'create', 'patch'];
  const answers = await kube.canI(
    verbs.map(verb => ({ verb, group: '', resource: 'secrets', namespace })),
    { signal },
  );
  const denied = verbs.filter((_, i) => !answers[i].allowed);
  if (denied.length > 0) {
    throw new FluxBootstrapError(
      'NotAllowedError',
      `The cluster credentials${
        kube.clusterName ? ` of ${kube.clusterName}` : ''
      } may not ${denied.join(
        ', ',
      )} Secrets in namespace ${namespace}; the source secret cannot be written. Nothing was changed.`,
    );
  }
}

/** The Secret object of a source secret. */
export function sourceSecret(
  options: { namespace: string; secretName: string },
  data: Record<string, string>,
): KubeObject {
  const { secretName: name, namespace } = options;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace },
    data,
  };
}

/** Lines saying what {@link reconcileFluxDeployKey} would do, for dry runs (sends nothing). @public */
export function describeFluxDeployKeyPlan(
  options: FluxDeployKeyOptions & { cluster: string },
): string[] {
  const where = `${options.namespace}/${options.secretName}`;
  const repo = `${options.projectKey}/${options.repoSlug}`;
  const key = describeSshKeyOptions(options.key);
  const pin = options.hostKeyFingerprint;
  return [
    `would read Secret ${where} in cluster ${options.cluster}`,
    options.rotate
      ? `would rotate: generate a new ${key} key even if the Secret holds one`
      : `when the Secret holds no key: generate a ${key} key; otherwise keep it`,
    `would scan the SSH host key of ${formatSshHost(
      options.sshHost,
    )} for known_hosts${pin ? ` and require fingerprint ${pin}` : ''}`,
    `would create namespace ${options.namespace} if missing and server-side apply Secret ${where} (identity, identity.pub, known_hosts; field manager ${FLUX_FIELD_MANAGER})`,
    `would register the public key as access key "${options.label}" (${
      options.readWrite ? 'REPO_WRITE' : 'REPO_READ'
    }) on ${repo} unless it is registered already`,
    `would remove other access keys labelled "${options.label}"${
      options.rotate ? ' and the rotated-out key' : ''
    } from ${repo}`,
  ];
}

/**
 * The SSH host key of `sshHost` no longer matches the `known_hosts` a source secret holds: the
 * server was re-keyed, or something else answers in its name (a `ConflictError`). @public
 */
export class HostKeyChangedError extends FluxBootstrapError {
  constructor(
    message: string,
    readonly known: string[],
    readonly presented: string[],
  ) {
    super('ConflictError', message);
  }
}

/**
 * Checks that the server still presents a host key `known_hosts` trusts (a pinned scan per
 * trusted key). A changed key is reported ({@link HostKeyChangedError}), never accepted: Flux
 * would refuse the server, and accepting it would trust whoever answers. An unreachable server is
 * only warned about (Flux checks strictly anyway). `ctx.remedy` replaces the error's advice.
 * @public
 */
export async function verifyKnownHostKey(
  options: Pick<FluxDeployKeyOptions, 'sshHost' | 'scanTimeoutMs'>,
  entries: KnownHostsEntry[],
  where: string,
  ctx: { signal?: AbortSignal; logger: EngineLogger; remedy?: string },
): Promise<{ fingerprint: string | null }> {
  const host = formatSshHost(options.sshHost);
  const presented = new Set<string>();
  for (const entry of entries) {
    try {
      const scanned = await scanHostKey({
        sshHost: options.sshHost,
        expectedFingerprint: entry.fingerprint,
        timeoutMs: options.scanTimeoutMs,
        signal: ctx.signal,
      });
      ctx.logger.info(
        `SSH host key of ${host} is still ${scanned.type} ${scanned.fingerprint}, as known_hosts of ${where} says`,
      );
      return { fingerprint: scanned.fingerprint };
    } catch (error) {
      if (error instanceof HostKeyScanError) {
        ctx.logger.warn(
          `Could not verify the SSH host key of ${host} against known_hosts of ${where}: ${error.message}. Flux will check it when it connects.`,
        );
        return { fingerprint: null };
      }
      if (!(error instanceof HostKeyMismatchError)) throw error;
      error.presented.forEach(p => presented.add(p));
    }
  }
  const known = entries.map(e => `${e.type} ${e.fingerprint}`);
  const now = [...presented];
  throw new HostKeyChangedError(
    `The SSH host key of ${host} changed: known_hosts of source secret ${where} trusts ${known.join(
      ', ',
    )}, but the server now presents ${
      now.join(', ') || 'another key'
    }. Flux would refuse to connect, and the new key is not trusted automatically: the server may have been re-keyed, or someone may be intercepting the connection. Nothing was changed. ${
      ctx.remedy ??
      'Check the new fingerprint with the Bitbucket administrators; if it is right, run again with hostKeyFingerprint set to it (or rotate the key).'
    }`,
    known,
    now,
  );
}

/**
 * The `known_hosts` a source secret should hold for `sshHost`, given what it holds now: kept
 * when it trusts the pinned key, or (nothing pinned) when the server still presents a key it
 * trusts ({@link verifyKnownHostKey}); otherwise scanned (a pinned fingerprint is checked).
 * Each network step runs in `step` under the keys given.
 * @public
 */
export async function settleKnownHosts(
  options: Pick<
    FluxDeployKeyOptions,
    'sshHost' | 'hostKeyFingerprint' | 'scanTimeoutMs'
  >,
  current: string | undefined,
  ctx: {
    where: string;
    step: CheckpointFn;
    keys: { verify: string; scan: string };
    signal?: AbortSignal;
    logger: EngineLogger;
    remedy?: string;
  },
): Promise<{ knownHosts: string; scanned: boolean }> {
  const { sshHost, hostKeyFingerprint: pinned } = options;
  const { where, logger, signal } = ctx;
  const entries = current ? knownHostsFor(current, sshHost) : [];
  if (current && entries.length > 0 && !pinned) {
    await ctx.step(ctx.keys.verify, () =>
      verifyKnownHostKey(options, entries, where, ctx),
    );
    return { knownHosts: current, scanned: false };
  }
  const host = formatSshHost(sshHost);
  if (current && entries.some(e => e.fingerprint === pinned)) {
    logger.info(
      `known_hosts of ${where} already trusts the pinned host key ${pinned} of ${host}`,
    );
    return { knownHosts: current, scanned: false };
  }
  logger.info(
    current
      ? `known_hosts of ${where} has no ${
          pinned ? `pinned key ${pinned}` : 'key'
        } for ${knownHostsHostField(
          sshHost,
        )}; scanning the SSH host key of ${host}`
      : `Scanning the SSH host key of ${host}`,
  );
  const scanned = await ctx.step<ScannedHostKey>(ctx.keys.scan, () =>
    scanHostKey({
      sshHost,
      expectedFingerprint: pinned,
      timeoutMs: options.scanTimeoutMs,
      signal,
      logger,
    }),
  );
  return { knownHosts: scanned.knownHosts, scanned: true };
}

/**
 * Makes the cluster's Flux Git Secret and the repository's access key agree, like
 * `flux bootstrap bitbucket-server` in SSH mode, but convergent:
 *
 * - Secret complete and its key registered → nothing changes.
 * - Secret complete, key not registered (or with another permission) → register it (or fix the permission).
 * - Secret missing or incomplete, or `rotate` → scan the host key (pinned fingerprint checked
 *   first, so a mismatch writes nothing), generate a key pair, apply the Secret, register the key,
 *   then remove the rotated-out key and stale keys carrying the same label, by their ids.
 * - Secret complete but its `known_hosts` has no key for `sshHost` (or not the pinned one) →
 *   re-scan and update `known_hosts` only.
 *
 * The private key is generated and written inside one step and never leaves it.
 * @public
 */
export async function reconcileFluxDeployKey(
  options: FluxDeployKeyOptions,
  deps: FluxDeployKeyDeps,
): Promise<FluxDeployKeyResult> {
  const { kube, bitbucket, logger, redactor, signal } = deps;
  const step = redactedSteps(redactor, deps.checkpoint);
  const where = `${options.namespace}/${options.secretName}`;
  const { projectKey, repoSlug, label } = options;
  const repo = `${projectKey}/${repoSlug}`;
  const permission = options.readWrite ? 'REPO_WRITE' : 'REPO_READ';
  const ref = { apiVersion: 'v1', kind: 'Secret', name: options.secretName };
  const secretRef = { ...ref, namespace: options.namespace };
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
    const state = inspectSecret(await kube.get(secretRef, { signal }));
    // Pre-flight, before any side effect: may we write the Secret and manage access keys?
    await assertMayWriteSecrets(kube, options.namespace, signal);
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
  let keyGenerated = false;
  let knownHostsUpdated = false;
  const hostKeyCtx = {
    where,
    step,
    keys: { verify: 'verify-host-key', scan: 'host-key' },
    signal,
    logger,
  };
  if (before.complete && !options.rotate) {
    publicKey = before.publicKey!;
    logger.info(
      `Source secret ${where} holds key ${
        parseSshPublicKey(publicKey).fingerprint
      }; keeping it`,
    );
    const settled = await settleKnownHosts(
      options,
      before.knownHosts!,
      hostKeyCtx,
    );
    knownHosts = settled.knownHosts;
    if (settled.scanned) {
      await step('known-hosts', async () => {
        await kube.apply(
          sourceSecret(options, { known_hosts: b64(knownHosts) }),
          {
            fieldManager: KNOWN_HOSTS_FIELD_MANAGER,
            force: true,
            signal,
          },
        );
        return true;
      });
      knownHostsUpdated = true;
      logger.info(`Updated known_hosts of ${where}: ${knownHosts}`);
    }
  } else {
    if (!before.exists) {
      logger.info(
        `Source secret ${where} does not exist; generating a key pair`,
      );
    } else if (options.rotate) {
      logger.info(`Rotating the key of source secret ${where}`);
    } else {
      logger.info(
        `Source secret ${where} lacks ${before.missing.join(
          ', ',
        )}; generating a new key pair`,
      );
    }
    const scanned = await settleKnownHosts(options, undefined, hostKeyCtx);
    const written = await step('secret', async () => {
      // Idempotent on its own: a Secret already (re)written by an earlier attempt is kept.
      const live = inspectSecret(await kube.get(secretRef, { signal }));
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
      await kube.ensureNamespace(options.namespace, {
        fieldManager: FLUX_FIELD_MANAGER,
        signal,
      });
      const pair = await generateSshKeyPair(options.key, signal);
      for (const secret of privateKeyRedactions(pair)) redactor.add(secret);
      await kube.apply(
        sourceSecret(options, {
          identity: b64(pair.privateKeyPem),
          'identity.pub': b64(pair.publicKey),
          known_hosts: b64(scanned.knownHosts),
        }),
        // force: the Secret may have been written by `flux bootstrap` (an Update by "flux").
        { fieldManager: FLUX_FIELD_MANAGER, force: true, signal },
      );
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
    keyGenerated = written.generated;
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
      if (mine?.permission === permission) {
        logger.info(
          `Access key ${mine.key.id} "${
            mine.key.label ?? ''
          }" on ${repo} already holds this key (${permission})`,
        );
        return { id: mine.key.id, changed: false, stale };
      }
      if (mine) {
        await bitbucket.request(
          'PUT',
          restPath(
            '/rest/keys/1.0/projects/{}/repos/{}/ssh/{}/permission/{}',
            projectKey,
            repoSlug,
            mine.key.id,
            permission,
          ),
          { signal },
        );
        logger.info(
          `Changed access key ${mine.key.id} on ${repo} from ${mine.permission} to ${permission}`,
        );
        return { id: mine.key.id, changed: true, stale };
      }
      const created = await bitbucket.addAccessKey(
        projectKey,
        repoSlug,
        accessKeyRequest(publicKey, label, options.readWrite),
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

  const changed =
    keyGenerated ||
    knownHostsUpdated ||
    registered.changed ||
    removed.length > 0;
  logger.info(
    `Source secret ${where} and access key ${registered.id} on ${repo} are ${
      changed ? 'reconciled' : 'up to date'
    }`,
  );
  return {
    publicKey,
    fingerprint: parseSshPublicKey(publicKey).fingerprint,
    knownHosts,
    secretName: options.secretName,
    namespace: options.namespace,
    accessKeyId: registered.id,
    permission,
    label,
    changed,
    keyGenerated,
    knownHostsUpdated,
    accessKeyChanged: registered.changed,
    removedAccessKeyIds: removed,
  };
}
