import type { KubeClient, KubeObject } from '../kube/types';
import type { BitbucketServerClient } from '../bitbucket/client';
import { restPath } from '../bitbucket/client';
import { BitbucketError, isBitbucketError } from '../bitbucket/errors';
import type { BitbucketRepoRef } from '../bitbucket/repoUrl';
import { repositorySlug } from '../bitbucket/repoUrl';
import { resolveProject } from '../bitbucket/repository';
import type { BitbucketAccessKey } from '../bitbucket/types';
import { FluxBootstrapError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import { redactedSteps, type CheckpointFn } from '../util/checkpoint';
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
/**
 * Field manager used when only `known_hosts` of an existing Secret is updated: a separate
 * manager lets server-side apply change that one key without sending (or reading) `identity`.
 * @public
 */
export const KNOWN_HOSTS_FIELD_MANAGER = 'flux-bootstrap-known-hosts';

/** What {@link reconcileFluxDeployKey} needs from the Kubernetes client. @public */
export type DeployKeyKube = Pick<
  KubeClient,
  'get' | 'apply' | 'ensureNamespace' | 'canI'
> & {
  readonly clusterName?: string;
};

/** What {@link reconcileFluxDeployKey} needs from the Bitbucket client. @public */
export type DeployKeyBitbucket = Pick<
  BitbucketServerClient,
  'listAccessKeys' | 'addAccessKey' | 'deleteAccessKey' | 'request'
>;

/** Validated inputs of {@link reconcileFluxDeployKey}. @public */
export interface FluxDeployKeyOptions {
  /** Namespace of the Secret (created when missing). */
  namespace: string;
  secretName: string;
  key: SshKeyOptions;
  /** Bitbucket project key (`~user` for personal repositories) and repository slug. */
  projectKey: string;
  repoSlug: string;
  readWrite: boolean;
  /** Access key label, see {@link fluxAccessKeyLabel}. */
  label: string;
  sshHost: SshEndpoint;
  /** Pinned `SHA256:` fingerprint of the server's host key. */
  hostKeyFingerprint?: string;
  /** Host key scan budget, default 30 s. */
  scanTimeoutMs?: number;
  rotate: boolean;
}

/** Collaborators of {@link reconcileFluxDeployKey}. @public */
export interface FluxDeployKeyDeps {
  kube: DeployKeyKube;
  bitbucket: DeployKeyBitbucket;
  logger: EngineLogger;
  /** Every generated private key is registered here before anything can log or throw it. */
  redactor: Redactor;
  signal?: AbortSignal;
  /** Wraps each side effect (`ctx.checkpoint` in an action); default: run it. */
  checkpoint?: CheckpointFn;
}

/** Outcome of {@link reconcileFluxDeployKey}. Public data only. @public */
export interface FluxDeployKeyResult {
  /** `type base64` of the key in the Secret (no comment, no newline). */
  publicKey: string;
  /** `SHA256:…` of that key. */
  fingerprint: string;
  /** The Secret's `known_hosts`. */
  knownHosts: string;
  secretName: string;
  namespace: string;
  /** Id of the repository access key holding `publicKey`. */
  accessKeyId: number;
  permission: AccessKeyPermission;
  label: string;
  /** Anything changed in the cluster or on Bitbucket. */
  changed: boolean;
  /** A new key pair was generated and written. */
  keyGenerated: boolean;
  /** Only `known_hosts` of the existing Secret was updated. */
  knownHostsUpdated: boolean;
  /** The access key was registered or its permission updated. */
  accessKeyChanged: boolean;
  /** Ids of access keys removed (the rotated-out key, stale keys with this label). */
  removedAccessKeyIds: number[];
}

/** What the Secret holds, read without ever decoding `identity`. @public */
export interface SecretState {
  exists: boolean;
  /** `identity`, `identity.pub` and `known_hosts` all present and parseable. */
  complete: boolean;
  publicKey?: string;
  knownHosts?: string;
  missing: string[];
}

function decodeDataField(
  secret: KubeObject,
  field: string,
): string | undefined {
  const data = secret.data as Record<string, unknown> | undefined;
  const value = data?.[field];
  if (typeof value !== 'string' || value === '') return undefined;
  return Buffer.from(value, 'base64').toString('utf8');
}

/** Reads a source secret's state; `identity` is only checked for presence, never decoded. */
export function inspectSecret(secret: KubeObject | undefined): SecretState {
  if (!secret) return { exists: false, complete: false, missing: [] };
  const data = (secret.data as Record<string, unknown> | undefined) ?? {};
  const hasIdentity = typeof data.identity === 'string' && data.identity !== '';
  const pubText = decodeDataField(secret, 'identity.pub');
  const knownHosts = decodeDataField(secret, 'known_hosts')?.trim();
  let publicKey: string | undefined;
  if (pubText) {
    try {
      publicKey = parseSshPublicKey(pubText).text;
    } catch {
      publicKey = undefined;
    }
  }
  const missing: string[] = [];
  if (!hasIdentity) missing.push('identity');
  if (!publicKey) missing.push('identity.pub');
  if (!knownHosts) missing.push('known_hosts');
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
  const checks = ['get', 'create', 'patch'].map(verb => ({
    verb,
    group: '',
    resource: 'secrets',
    namespace,
  }));
  const answers = await kube.canI(checks, { signal });
  const denied = checks.filter((_, i) => !answers[i].allowed).map(c => c.verb);
  if (denied.length > 0) {
    throw new Error(
      `The cluster credentials${
        kube.clusterName ? ` of ${kube.clusterName}` : ''
      } may not ${denied.join(
        ', ',
      )} Secrets in namespace ${namespace}; the source secret cannot be written. Nothing was changed.`,
    );
  }
}

function secretRef(options: { namespace: string; secretName: string }) {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    name: options.secretName,
    namespace: options.namespace,
  };
}

/**
 * Finds the repository a `repoUrl` names, without creating anything: the project by key (or
 * exact name), `~owner` for personal repositories, then the repository by its slug. Fails with a
 * clear message when it does not exist (create it with `bitbucket:create-repo` first).
 * @public
 */
export async function locateBitbucketRepository(
  client: Pick<
    BitbucketServerClient,
    'request' | 'paginate' | 'getRepository' | 'host'
  >,
  ref: BitbucketRepoRef,
  opts: { signal?: AbortSignal; credentials?: string } = {},
): Promise<{ projectKey: string; repoSlug: string; name: string }> {
  const projectKey = ref.personal
    ? `~${ref.owner}`
    : (await resolveProject(client as BitbucketServerClient, ref.project, opts))
        .key;
  const slug = repositorySlug(ref.repo);
  const repo = await client.getRepository(projectKey, slug, opts.signal);
  if (!repo) {
    throw new BitbucketError(
      `Repository "${ref.repo}" does not exist in ${projectKey} on Bitbucket ${
        ref.host
      } (or ${
        opts.credentials ?? 'the credentials'
      } cannot see it): create it first, e.g. with bitbucket:create-repo`,
      { kind: 'not-found', status: 404 },
    );
  }
  return {
    projectKey: repo.project?.key ?? projectKey,
    repoSlug: repo.slug,
    name: repo.name,
  };
}

/** Rewords Bitbucket permission failures of the access-key API so they name REPO_ADMIN. */
function explainAccessKeyError(
  error: unknown,
  repo: string,
  action: string,
): unknown {
  if (isBitbucketError(error, 'forbidden', 'unauthorized')) {
    const said = error.bitbucketMessage
      ? ` Bitbucket said: ${error.bitbucketMessage}`
      : '';
    return new BitbucketError(
      error.kind === 'unauthorized'
        ? `Bitbucket rejected the credentials while trying to ${action} of ${repo}: the token is invalid, expired or revoked (HTTP ${error.status}).${said}`
        : `The credentials may not ${action} of ${repo}: managing repository access keys needs REPO_ADMIN on the repository (HTTP ${error.status}).${said}`,
      {
        kind: error.kind,
        status: error.status,
        details: error.details,
        request: error.request,
      },
    );
  }
  return error;
}

/**
 * Lines saying what {@link reconcileFluxDeployKey} would do, for dry runs (sends nothing).
 * @public
 */
export function describeFluxDeployKeyPlan(
  options: FluxDeployKeyOptions & { cluster: string },
): string[] {
  const where = `${options.namespace}/${options.secretName}`;
  const repo = `${options.projectKey}/${options.repoSlug}`;
  const permission = options.readWrite ? 'REPO_WRITE' : 'REPO_READ';
  return [
    `would read Secret ${where} in cluster ${options.cluster}`,
    options.rotate
      ? `would rotate: generate a new ${describeSshKeyOptions(
          options.key,
        )} key even if the Secret holds one`
      : `when the Secret holds no key: generate a ${describeSshKeyOptions(
          options.key,
        )} key; otherwise keep it`,
    `would scan the SSH host key of ${formatSshHost(
      options.sshHost,
    )} for known_hosts${
      options.hostKeyFingerprint
        ? ` and require fingerprint ${options.hostKeyFingerprint}`
        : ''
    }`,
    `would create namespace ${options.namespace} if missing and server-side apply Secret ${where} (identity, identity.pub, known_hosts; field manager ${FLUX_FIELD_MANAGER})`,
    `would register the public key as access key "${options.label}" (${permission}) on ${repo} unless it is registered already`,
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
 * Checks that the server still presents one of the host keys `known_hosts` trusts (a pinned scan
 * per trusted key; each tries the server's other key types too). A key that changed between runs
 * is reported, never accepted: Flux would refuse the server, and accepting it silently would
 * trust whoever answers. An unreachable server is only warned about (Flux checks strictly anyway).
 * `ctx.remedy` replaces the closing advice of the error.
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
        logger: silentLogger,
      });
      ctx.logger.info(
        `SSH host key of ${host} is still ${scanned.type} ${scanned.fingerprint}, as known_hosts of ${where} says`,
      );
      return { fingerprint: scanned.fingerprint };
    } catch (error) {
      if (error instanceof HostKeyMismatchError) {
        for (const p of error.presented) presented.add(p);
        continue;
      }
      if (error instanceof HostKeyScanError) {
        ctx.logger.warn(
          `Could not verify the SSH host key of ${host} against known_hosts of ${where}: ${error.message}. Flux will check it when it connects.`,
        );
        return { fingerprint: null };
      }
      throw error;
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
  const repo = `${options.projectKey}/${options.repoSlug}`;
  const permission: AccessKeyPermission = options.readWrite
    ? 'REPO_WRITE'
    : 'REPO_READ';
  const ref = secretRef(options);

  logger.info(`Determining if source secret ${where} exists`);
  const before = await step('inspect-secret', async () => {
    const state = inspectSecret(await kube.get(ref, { signal }));
    // Pre-flight, before any side effect: may we write the Secret and manage access keys?
    await assertMayWriteSecrets(kube, options.namespace, signal);
    try {
      await bitbucket.listAccessKeys(
        options.projectKey,
        options.repoSlug,
        signal,
      );
    } catch (error) {
      throw explainAccessKeyError(error, repo, 'read the access keys');
    }
    // Only public fields are kept (a checkpoint stores its value in the task state).
    return {
      exists: state.exists,
      complete: state.complete,
      publicKey: state.publicKey ?? null,
      knownHosts: state.knownHosts ?? null,
      missing: state.missing,
    };
  });

  let publicKey: string;
  let knownHosts: string;
  let keyGenerated = false;
  let knownHostsUpdated = false;
  const scan = () =>
    step<ScannedHostKey>('host-key', () =>
      scanHostKey({
        sshHost: options.sshHost,
        expectedFingerprint: options.hostKeyFingerprint,
        timeoutMs: options.scanTimeoutMs,
        signal,
        logger,
      }),
    );

  if (before.complete && !options.rotate) {
    publicKey = before.publicKey!;
    knownHosts = before.knownHosts!;
    logger.info(
      `Source secret ${where} holds key ${
        parseSshPublicKey(publicKey).fingerprint
      }; keeping it`,
    );
    const entries = knownHostsFor(knownHosts, options.sshHost);
    const pinned = options.hostKeyFingerprint;
    const needsHostKey =
      entries.length === 0 ||
      (pinned !== undefined && !entries.some(e => e.fingerprint === pinned));
    if (!needsHostKey && pinned === undefined) {
      // The Secret trusts a host key from an earlier run: the server must still hold it.
      await step('verify-host-key', () =>
        verifyKnownHostKey(options, entries, where, {
          signal,
          logger,
        }),
      );
    }
    if (needsHostKey) {
      logger.info(
        entries.length === 0
          ? `known_hosts of ${where} has no key for ${knownHostsHostField(
              options.sshHost,
            )}; scanning it`
          : `known_hosts of ${where} does not hold the pinned host key ${pinned}; scanning it`,
      );
      const scanned = await scan();
      await step('known-hosts', async () => {
        await kube.apply(
          {
            apiVersion: 'v1',
            kind: 'Secret',
            metadata: {
              name: options.secretName,
              namespace: options.namespace,
            },
            data: {
              known_hosts: Buffer.from(scanned.knownHosts, 'utf8').toString(
                'base64',
              ),
            },
          },
          { fieldManager: KNOWN_HOSTS_FIELD_MANAGER, force: true, signal },
        );
        return true;
      });
      knownHosts = scanned.knownHosts;
      knownHostsUpdated = true;
      logger.info(`Updated known_hosts of ${where}: ${scanned.knownHosts}`);
    }
  } else {
    if (options.rotate && before.exists) {
      logger.info(`Rotating the key of source secret ${where}`);
    } else if (before.exists) {
      logger.info(
        `Source secret ${where} lacks ${before.missing.join(
          ', ',
        )}; generating a new key pair`,
      );
    } else {
      logger.info(
        `Source secret ${where} does not exist; generating a key pair`,
      );
    }
    logger.info(
      `Scanning the SSH host key of ${formatSshHost(options.sshHost)}`,
    );
    const scanned = await scan();
    const written = await step('secret', async () => {
      // Idempotent on its own: a Secret already (re)written by an earlier attempt is kept.
      const live = inspectSecret(await kube.get(ref, { signal }));
      const writtenEarlier =
        live.complete &&
        (!before.complete || live.publicKey !== before.publicKey);
      if (writtenEarlier) {
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
      const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
      await kube.apply(
        {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: options.secretName, namespace: options.namespace },
          data: {
            identity: b64(pair.privateKeyPem),
            'identity.pub': b64(pair.publicKey),
            known_hosts: b64(scanned.knownHosts),
          },
        },
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
    publicKey = written.publicKey;
    knownHosts = written.knownHosts;
    keyGenerated = written.generated;
  }

  const fingerprint = parseSshPublicKey(publicKey).fingerprint;
  logger.info(`Public key: ${publicKey}`);

  const previousKey =
    before.publicKey && before.publicKey !== publicKey
      ? before.publicKey
      : undefined;
  const registered = await step('access-key', () =>
    accessKeyStep().catch(error => {
      throw explainAccessKeyError(error, repo, 'register access keys');
    }),
  );
  async function accessKeyStep() {
    const keys: BitbucketAccessKey[] = await bitbucket.listAccessKeys(
      options.projectKey,
      options.repoSlug,
      signal,
    );
    const stale = keys
      .filter(
        k =>
          !sameSshPublicKey(k.key.text, publicKey) &&
          (k.key.label === options.label ||
            (previousKey !== undefined &&
              sameSshPublicKey(k.key.text, previousKey))),
      )
      .map(k => ({
        id: k.key.id,
        label: k.key.label ?? '',
        permission: String(k.permission),
      }));
    const mine = keys.find(k => sameSshPublicKey(k.key.text, publicKey));
    if (mine) {
      if (mine.permission === permission) {
        logger.info(
          `Access key ${mine.key.id} "${
            mine.key.label ?? ''
          }" on ${repo} already holds this key (${permission})`,
        );
        return { id: mine.key.id, changed: false, stale };
      }
      await bitbucket.request(
        'PUT',
        restPath(
          '/rest/keys/1.0/projects/{}/repos/{}/ssh/{}/permission/{}',
          options.projectKey,
          options.repoSlug,
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
      options.projectKey,
      options.repoSlug,
      accessKeyRequest(publicKey, options.label, options.readWrite),
      signal,
    );
    logger.info(
      `Configured access key ${created.key.id} "${options.label}" (${permission}) for ${repo}`,
    );
    return { id: created.key.id, changed: true, stale };
  }

  let removed: number[] = [];
  if (registered.stale.length > 0) {
    removed = await step('access-key-cleanup', async () => {
      const ids: number[] = [];
      for (const old of registered.stale) {
        if (old.id === registered.id) continue;
        const gone = await bitbucket
          .deleteAccessKey(options.projectKey, options.repoSlug, old.id, signal)
          .catch(error => {
            throw explainAccessKeyError(error, repo, 'remove access keys');
          });
        logger.info(
          gone
            ? `Removed access key ${old.id} "${old.label}" (${old.permission}) from ${repo}: it is not the key in ${where}`
            : `Access key ${old.id} was already gone from ${repo}`,
        );
        if (gone) ids.push(old.id);
      }
      return ids;
    });
  }

  const changed =
    keyGenerated ||
    knownHostsUpdated ||
    registered.changed ||
    removed.length > 0;
  logger.info(
    changed
      ? `Source secret ${where} and access key ${registered.id} on ${repo} are reconciled`
      : `Source secret ${where} and access key ${registered.id} on ${repo} are up to date`,
  );
  return {
    publicKey,
    fingerprint,
    knownHosts,
    secretName: options.secretName,
    namespace: options.namespace,
    accessKeyId: registered.id,
    permission,
    label: options.label,
    changed,
    keyGenerated,
    knownHostsUpdated,
    accessKeyChanged: registered.changed,
    removedAccessKeyIds: removed,
  };
}
