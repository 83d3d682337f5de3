import { redactedSteps } from '../util/checkpoint';
import type { Redactor } from '../util/redact';
import {
  assertMayWriteSecrets,
  FLUX_FIELD_MANAGER,
  FluxDeployKeyDeps,
  FluxDeployKeyOptions,
  inspectSecret,
  settleKnownHosts,
  sourceSecret,
} from './deployKey';
import { formatSshHost } from './hostKey';
import { privateKeyRedactions } from './keyPair';
import type { SuppliedSshKey } from './suppliedKey';

/** Validated inputs of {@link reconcileFluxGitSecret}: its Secret and SSH endpoint. @public */
export type FluxGitSecretOptions = Pick<
  FluxDeployKeyOptions,
  | 'namespace'
  | 'secretName'
  | 'sshHost'
  | 'hostKeyFingerprint'
  | 'scanTimeoutMs'
>;

/** Collaborators of {@link reconcileFluxGitSecret}: those of the deploy key but Bitbucket. @public */
export type FluxGitSecretDeps = Omit<FluxDeployKeyDeps, 'bitbucket'>;

/** Outcome of {@link reconcileFluxGitSecret}. Public data only. @public */
export interface FluxGitSecretResult {
  /** `type base64` of the user's key (identity.pub without newline). */
  publicKey: string;
  fingerprint: string;
  knownHosts: string;
  namespace: string;
  secretName: string;
  /** The Secret holds `password` (the key is encrypted). */
  password: boolean;
  changed: boolean;
  /** The host key was scanned (no trusted key for the host in the Secret, or a new pin). */
  hostKeyScanned: boolean;
}

/** Registers every form of the key and passphrase that could leak with `redactor`. @public */
export function registerSuppliedKeySecrets(
  redactor: Redactor,
  key: Pick<SuppliedSshKey, 'privateKey' | 'publicKey' | 'passphrase'>,
): void {
  for (const secret of privateKeyRedactions({
    privateKeyPem: key.privateKey,
    publicKey: key.publicKey,
  })) {
    redactor.add(secret);
  }
  redactor.add(key.privateKey);
  redactor.add(key.passphrase);
}

/**
 * Lines saying what {@link reconcileFluxGitSecret} would do, for dry runs (sends nothing).
 * @public
 */
export function describeFluxGitSecretPlan(
  options: FluxGitSecretOptions & { cluster: string },
  key: Pick<SuppliedSshKey, 'type' | 'fingerprint' | 'encrypted'>,
): string[] {
  const where = `${options.namespace}/${options.secretName}`;
  return [
    `would read Secret ${where} in cluster ${options.cluster}`,
    `would keep the trusted SSH host key of ${formatSshHost(
      options.sshHost,
    )} if the Secret has one and the server still presents it; otherwise scan it${
      options.hostKeyFingerprint
        ? ` and require fingerprint ${options.hostKeyFingerprint}`
        : ''
    }`,
    `would create namespace ${
      options.namespace
    } if missing and server-side apply Secret ${where} with your ${
      key.type
    } key ${key.fingerprint} (identity, identity.pub, known_hosts${
      key.encrypted ? ', password' : ''
    }; field manager ${FLUX_FIELD_MANAGER}) unless it already holds exactly that`,
    'would not generate a key nor call Bitbucket: the public key must already be registered on the repository',
  ];
}

/**
 * Stores a key the user supplied as Flux's Git Secret, like `flux bootstrap git
 * --private-key-file=… --password=…`: `identity` (the key as supplied), `identity.pub` (derived
 * from it), `known_hosts` (the scanned host key of `sshHost`) and `password` for an encrypted key
 * (source-controller reads it to decrypt `identity`). No key is generated and nothing is
 * registered anywhere: the user registered the public key on the repository in advance.
 *
 * Convergent:
 * - The Secret already holds exactly this → nothing is written.
 * - It trusts a host key for `sshHost` (and no other pin is asked) → the server must still
 *   present it ({@link HostKeyChangedError} otherwise, nothing written), and it is kept.
 * - Else the host key is scanned (a pinned fingerprint is checked before anything is written).
 * @public
 */
export async function reconcileFluxGitSecret(
  options: FluxGitSecretOptions,
  key: SuppliedSshKey,
  deps: FluxGitSecretDeps,
): Promise<FluxGitSecretResult> {
  const { kube, logger, redactor, signal } = deps;
  registerSuppliedKeySecrets(redactor, key);
  const step = redactedSteps(redactor, deps.checkpoint);
  const where = `${options.namespace}/${options.secretName}`;
  const ref = {
    apiVersion: 'v1',
    kind: 'Secret',
    name: options.secretName,
    namespace: options.namespace,
  };
  logger.info(
    `Using your ${key.type} key ${key.fingerprint}${
      key.encrypted
        ? ' (encrypted; its passphrase goes into the Secret as password)'
        : ''
    }; no key is generated and Bitbucket is not called`,
  );
  if (key.passphraseIgnored) {
    logger.warn(
      'A passphrase was given, but the private key is not encrypted: the passphrase is not stored',
    );
  }
  logger.info(`Determining if source secret ${where} exists`);
  const before = await step('git-secret.inspect', async () => {
    const state = inspectSecret(await kube.get(ref, { signal }));
    await assertMayWriteSecrets(kube, options.namespace, signal);
    // Public fields only (a checkpoint stores its value in the task state).
    return { exists: state.exists, knownHosts: state.knownHosts ?? null };
  });
  const { knownHosts, scanned } = await settleKnownHosts(
    options,
    before.knownHosts ?? undefined,
    {
      where,
      step,
      keys: {
        verify: 'git-secret.verify-host-key',
        scan: 'git-secret.host-key',
      },
      signal,
      logger,
      remedy:
        "Check the new fingerprint with the Git server's administrators; if it is right, run again with hostKeyFingerprint set to it.",
    },
  );

  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const desired: Record<string, string> = {
    identity: b64(key.privateKey),
    'identity.pub': b64(`${key.publicKey}\n`),
    known_hosts: b64(knownHosts),
  };
  if (key.encrypted && key.passphrase) desired.password = b64(key.passphrase);

  const changed = await step('git-secret.write', async () => {
    // Idempotent on its own: compares the live Secret (base64 values, never decoded or logged).
    const live = await kube.get(ref, { signal });
    const data = (live?.data ?? {}) as Record<string, string>;
    const same =
      Object.entries(desired).every(([k, v]) => data[k] === v) &&
      (desired.password !== undefined || data.password === undefined);
    if (live && same) return false;
    await kube.ensureNamespace(options.namespace, {
      fieldManager: FLUX_FIELD_MANAGER,
      signal,
    });
    // force: the Secret may have been written by `flux bootstrap` or by the generating mode.
    const applied = await kube.apply(sourceSecret(options, desired), {
      fieldManager: FLUX_FIELD_MANAGER,
      force: true,
      signal,
    });
    return (
      applied.metadata?.resourceVersion !== live?.metadata?.resourceVersion
    );
  });
  logger.info(
    changed
      ? `Applied source secret ${where} (identity, identity.pub, known_hosts${
          desired.password ? ', password' : ''
        })`
      : `Source secret ${where} is up to date`,
  );
  return {
    publicKey: key.publicKey,
    fingerprint: key.fingerprint,
    knownHosts,
    namespace: options.namespace,
    secretName: options.secretName,
    password: desired.password !== undefined,
    changed,
    hostKeyScanned: scanned,
  };
}
