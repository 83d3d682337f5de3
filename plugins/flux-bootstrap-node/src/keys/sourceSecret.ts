import type { FluxBootstrapSettings } from '../config/settings';
import type { KubeClient, KubeObject } from '../kube/types';
import type { CheckpointFn } from '../util/checkpoint';
import { FluxBootstrapError } from '../util/errors';
import type { EngineLogger } from '../util/logger';
import type { Redactor } from '../util/redact';
import {
  formatSshHost,
  HostKeyMismatchError,
  HostKeyScanError,
  knownHostsFor,
  knownHostsHostField,
  scanHostKey,
  ScannedHostKey,
  SshEndpoint,
} from './hostKey';
import { readSshPublicKey } from './publicKey';

/** Field manager of the Secret, as flux's own apply uses. */
export const FLUX_FIELD_MANAGER = 'flux';

/**
 * Collaborators of {@link provisionDeployKey} and {@link storeSuppliedKey}; every key is
 * registered with `redactor` before anything can log it, `checkpoint` wraps each side effect.
 * @public
 */
export interface SourceSecretDeps {
  settings: Pick<FluxBootstrapSettings, 'clusters' | 'allowKubeconfigContexts'>;
  logger: EngineLogger;
  redactor: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
  /** Log the plan and return what is known; nothing is sent. */
  dryRun?: boolean;
  /** Budget of one SSH host-key scan, default 30 s. */
  scanTimeoutMs?: number;
}

/** The outputs of `flux:generate-key`: public data only. @public */
export interface SourceSecretOutputs {
  /** `<type> <base64>` of the key in the Secret (not in a dry run that generates it). */
  publicKey?: string;
  fingerprint?: string;
  /** The known_hosts line stored in the Secret (not in a dry run). */
  knownHosts?: string;
  secretName: string;
  accessKeyId?: number;
  accessKeyLabel?: string;
  /** Access keys removed: the rotated-out key and stale keys with the same label. */
  removedAccessKeyIds: number[];
  /** Anything was created or changed in the cluster or on Bitbucket. */
  changed: boolean;
}

/** The Kubernetes calls the source secret needs. */
export type SecretKube = Pick<
  KubeClient,
  'get' | 'apply' | 'ensureNamespace' | 'canI' | 'close'
> & { readonly clusterName?: string };

/** Where a source secret lives and how its host key is trusted. */
export interface SecretTarget {
  namespace: string;
  secretName: string;
  sshHost: SshEndpoint;
  hostKeyFingerprint?: string;
  scanTimeoutMs?: number;
}

/** What a source secret holds; `complete`: its three fields present and parseable. */
interface SecretState {
  exists: boolean;
  complete: boolean;
  publicKey?: string;
  knownHosts?: string;
  missing: string[];
}

export const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

type SecretName = Pick<SecretTarget, 'namespace' | 'secretName'>;

export const secretRef = (t: SecretName) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  name: t.secretName,
  namespace: t.namespace,
});

/** The Secret object of a source secret. */
export const sourceSecret = (t: SecretName, data: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: t.secretName, namespace: t.namespace },
  data,
});

/** Reads a source secret's state; `identity` is only checked for presence, never decoded. */
export function inspectSecret(secret: KubeObject | undefined): SecretState {
  if (!secret) return { exists: false, complete: false, missing: [] };
  const data = (secret.data ?? {}) as Record<string, string | undefined>;
  const decoded = (field: string) =>
    Buffer.from(data[field] ?? '', 'base64').toString('utf8');
  const publicKey = readSshPublicKey(decoded('identity.pub'))?.text;
  const knownHosts = decoded('known_hosts').trim() || undefined;
  const fields = { identity: data.identity, 'identity.pub': publicKey };
  const missing = Object.entries({ ...fields, known_hosts: knownHosts })
    .filter(([, value]) => !value)
    .map(([field]) => field);
  const complete = missing.length === 0;
  return { exists: true, complete, publicKey, knownHosts, missing };
}

/**
 * Reads a source secret, then checks before any side effect that the cluster credentials may
 * get, create and patch Secrets in its namespace; fails (nothing changed) naming what is denied.
 */
export async function inspectWritableSecret(
  kube: SecretKube,
  t: SecretName,
  signal?: AbortSignal,
): Promise<SecretState> {
  const state = inspectSecret(await kube.get(secretRef(t), { signal }));
  const { namespace } = t;
  const verbs = ['get', 'create', 'patch'];
  const answers = await kube.canI(
    verbs.map(verb => ({ verb, group: '', resource: 'secrets', namespace })),
    { signal },
  );
  const denied = verbs.filter((_, i) => !answers[i].allowed).join(', ');
  if (denied) {
    const of = kube.clusterName ? ` of ${kube.clusterName}` : '';
    throw new FluxBootstrapError(
      'NotAllowedError',
      `The cluster credentials${of} may not ${denied} Secrets in namespace ${namespace}; the source secret cannot be written. Nothing was changed.`,
    );
  }
  return state;
}

/** Creates the namespace if missing and applies the Secret, forced (`flux bootstrap` may own it). */
export async function applySourceSecret(
  kube: SecretKube,
  t: SecretName,
  data: Record<string, string>,
  signal?: AbortSignal,
): Promise<KubeObject> {
  const opts = { fieldManager: FLUX_FIELD_MANAGER, signal };
  await kube.ensureNamespace(t.namespace, opts);
  return kube.apply(sourceSecret(t, data), { ...opts, force: true });
}

/** The server no longer presents a host key the source secret's `known_hosts` trusts (a `ConflictError`). */
export class HostKeyChangedError extends FluxBootstrapError {
  constructor(message: string) {
    super('ConflictError', message);
  }
}

/**
 * Checks with a pinned scan per trusted key that the server still presents one. A changed key
 * is never accepted (that trusts whoever answers); an unreachable server is only warned about.
 */
async function verifyKnownHostKey(
  t: SecretTarget,
  knownHosts: string,
  ctx: SettleContext,
): Promise<{ fingerprint: string | null }> {
  const host = formatSshHost(t.sshHost);
  const where = `${t.namespace}/${t.secretName}`;
  const presented = new Set<string>();
  const entries = knownHostsFor(knownHosts, t.sshHost);
  for (const entry of entries) {
    try {
      const scanned = await scanHostKey({
        sshHost: t.sshHost,
        expectedFingerprint: entry.fingerprint,
        timeoutMs: t.scanTimeoutMs,
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
  const trusted = entries.map(e => `${e.type} ${e.fingerprint}`).join(', ');
  const shown = [...presented].join(', ') || 'another key';
  throw new HostKeyChangedError(
    `The SSH host key of ${host} changed: known_hosts of source secret ${where} trusts ${trusted}, but the server now presents ${shown}. Flux would refuse to connect, and the new key is not trusted automatically: the server may have been re-keyed, or someone may be intercepting the connection. Nothing was changed. ${ctx.remedy}`,
  );
}

/** How {@link settleKnownHosts} runs: its checkpoint keys' prefix and what errors advise. */
interface SettleContext extends Pick<SourceSecretDeps, 'logger' | 'signal'> {
  step: CheckpointFn;
  keyPrefix?: string;
  remedy: string;
}

/**
 * The `known_hosts` a source secret should hold for `sshHost`: the current one when it trusts
 * the pinned key (or, unpinned, a key the server still presents), else a new scan.
 */
export async function settleKnownHosts(
  t: SecretTarget,
  current: string | undefined,
  ctx: SettleContext,
): Promise<{ knownHosts: string; scanned: boolean }> {
  const { sshHost, hostKeyFingerprint: pinned } = t;
  const entries = current ? knownHostsFor(current, sshHost) : [];
  if (current && entries.length > 0 && !pinned) {
    await ctx.step(`${ctx.keyPrefix ?? ''}verify-host-key`, () =>
      verifyKnownHostKey(t, current, ctx),
    );
    return { knownHosts: current, scanned: false };
  }
  const host = formatSshHost(sshHost);
  const where = `${t.namespace}/${t.secretName}`;
  if (current && entries.some(e => e.fingerprint === pinned)) {
    ctx.logger.info(
      `known_hosts of ${where} already trusts the pinned host key ${pinned} of ${host}`,
    );
    return { knownHosts: current, scanned: false };
  }
  const what = pinned ? `pinned key ${pinned}` : 'key';
  const field = knownHostsHostField(sshHost);
  ctx.logger.info(
    current
      ? `known_hosts of ${where} has no ${what} for ${field}; scanning the SSH host key of ${host}`
      : `Scanning the SSH host key of ${host}`,
  );
  const scanned = await ctx.step<ScannedHostKey>(
    `${ctx.keyPrefix ?? ''}host-key`,
    () =>
      scanHostKey({
        sshHost,
        expectedFingerprint: pinned,
        timeoutMs: t.scanTimeoutMs,
        signal: ctx.signal,
        logger: ctx.logger,
      }),
  );
  return { knownHosts: scanned.knownHosts, scanned: true };
}
