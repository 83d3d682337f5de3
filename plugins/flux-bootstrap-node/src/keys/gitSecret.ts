import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import { redactedSteps } from '../util/checkpoint';
import { InputValidationError } from '../util/errors';
import { formatSshHost, parseSshHost, SshEndpoint } from './hostKey';
import { privateKeyRedactions } from './keyPair';
import {
  applySourceSecret,
  b64,
  FLUX_FIELD_MANAGER,
  inspectWritableSecret,
  SecretKube,
  secretRef,
  SecretTarget,
  settleKnownHosts,
  SourceSecretDeps,
  SourceSecretOutputs,
} from './sourceSecret';
import {
  readSuppliedSshKey,
  SuppliedSshKey,
  SuppliedSshKeyNames,
} from './suppliedKey';

/** A parsed `flux:generate-key` input with `url`: the user's own key for a plain git URL. @public */
export interface SuppliedKeyRequest {
  cluster: string;
  /** `ssh://[user@]host[:port]/path` of the repository; its host:port is scanned by default. */
  url: string;
  namespace: string;
  secretName: string;
  /** As read from the task secrets. */
  privateKey?: string;
  passphrase?: string;
  /** How errors name the inputs and task secrets (never their values). */
  names: SuppliedSshKeyNames;
  sshHost?: SshEndpoint;
  hostKeyFingerprint?: string;
}

function describePlan(t: SecretTarget, cluster: string, key: SuppliedSshKey) {
  const { namespace, secretName, hostKeyFingerprint: pin } = t;
  const where = `${namespace}/${secretName}`;
  const host = formatSshHost(t.sshHost);
  const requirePin = pin ? ` and require fingerprint ${pin}` : '';
  const fields = `identity, identity.pub, known_hosts${
    key.encrypted ? ', password' : ''
  }`;
  return [
    `would read Secret ${where} in cluster ${cluster}`,
    `would keep the trusted SSH host key of ${host} if the Secret has one and the server still presents it; otherwise scan it${requirePin}`,
    `would create namespace ${namespace} if missing and server-side apply Secret ${where} with your ${key.type} key ${key.fingerprint} (${fields}; field manager ${FLUX_FIELD_MANAGER}) unless it already holds exactly that`,
    'would not generate a key nor call Bitbucket: the public key must already be registered on the repository',
  ];
}

/**
 * `flux:generate-key` with `url`, like `flux bootstrap git --private-key-file=… --password=…`:
 * the user's key, checked before anything is sent, is stored as Flux's Git Secret (`identity`,
 * derived `identity.pub`, `known_hosts`, and `password` for an encrypted key); nothing is
 * generated, Bitbucket is not called. A Secret already holding exactly this is not written; a
 * trusted host key is kept while the server presents it (a `ConflictError` otherwise).
 * @public
 */
export async function storeSuppliedKey(
  req: SuppliedKeyRequest,
  deps: SourceSecretDeps,
): Promise<SourceSecretOutputs> {
  const { logger, redactor } = deps;
  const { passphraseSecret, passphraseField } = req.names;
  if (passphraseSecret && !req.passphrase) {
    throw new InputValidationError(
      passphraseField,
      `no task secret named "${passphraseSecret}"`,
    );
  }
  const key = readSuppliedSshKey(req.privateKey, req.passphrase, req.names);
  const pair = { privateKeyPem: key.privateKey, publicKey: key.publicKey };
  for (const secret of privateKeyRedactions(pair)) redactor.add(secret);
  redactor.add(key.privateKey);
  redactor.add(key.passphrase);
  const url = new URL(req.url);
  const t: SecretTarget = {
    ...req,
    sshHost:
      req.sshHost ?? parseSshHost(`${url.hostname}:${url.port || 22}`, 'url'),
    scanTimeoutMs: deps.scanTimeoutMs,
  };
  const cluster = resolveCluster(deps.settings, req.cluster, 'cluster');
  const outputs = {
    publicKey: key.publicKey,
    fingerprint: key.fingerprint,
    secretName: req.secretName,
    removedAccessKeyIds: [],
  };
  if (deps.dryRun) {
    logger.info(
      `Dry run of flux:generate-key with url ${req.url}; no request is sent. Plan:`,
    );
    describePlan(t, cluster.name, key).forEach(l => logger.info(`  ${l}`));
    return { ...outputs, changed: false };
  }
  logger.info(
    `Storing your key for ${req.url} in cluster ${cluster.name}; Bitbucket is not called`,
  );
  const kube = await createKubeClient(cluster, { logger, redactor });
  try {
    return { ...outputs, ...(await writeGitSecret(t, key, { ...deps, kube })) };
  } finally {
    kube.close();
  }
}

async function writeGitSecret(
  t: SecretTarget,
  key: SuppliedSshKey,
  deps: SourceSecretDeps & { kube: SecretKube },
): Promise<{ knownHosts: string; changed: boolean }> {
  const { kube, logger, redactor, signal } = deps;
  const step = redactedSteps(redactor, deps.checkpoint);
  const where = `${t.namespace}/${t.secretName}`;
  const encrypted = key.encrypted
    ? ' (encrypted; its passphrase goes into the Secret as password)'
    : '';
  logger.info(
    `Using your ${key.type} key ${key.fingerprint}${encrypted}; no key is generated and Bitbucket is not called`,
  );
  if (key.passphraseIgnored) {
    logger.warn(
      'A passphrase was given, but the private key is not encrypted: the passphrase is not stored',
    );
  }
  logger.info(`Determining if source secret ${where} exists`);
  const before = await step('git-secret.inspect', async () => {
    const state = await inspectWritableSecret(kube, t, signal);
    // Public fields only (a checkpoint stores its value in the task state).
    return { exists: state.exists, knownHosts: state.knownHosts ?? null };
  });
  const { knownHosts } = await settleKnownHosts(
    t,
    before.knownHosts ?? undefined,
    {
      ...deps,
      step,
      keyPrefix: 'git-secret.',
      remedy:
        "Check the new fingerprint with the Git server's administrators; if it is right, run again with hostKeyFingerprint set to it.",
    },
  );

  const desired: Record<string, string> = {
    identity: b64(key.privateKey),
    'identity.pub': b64(`${key.publicKey}\n`),
    known_hosts: b64(knownHosts),
  };
  if (key.encrypted && key.passphrase) desired.password = b64(key.passphrase);

  const changed = await step('git-secret.write', async () => {
    // Idempotent on its own: compares the live Secret (base64 values, never decoded or logged).
    const live = await kube.get(secretRef(t), { signal });
    const data = (live?.data ?? {}) as Record<string, string>;
    const same =
      Object.entries(desired).every(([k, v]) => data[k] === v) &&
      (desired.password !== undefined || data.password === undefined);
    if (live && same) return false;
    const applied = await applySourceSecret(kube, t, desired, signal);
    return (
      applied.metadata?.resourceVersion !== live?.metadata?.resourceVersion
    );
  });
  logger.info(
    changed
      ? `Applied source secret ${where} (${Object.keys(desired).join(', ')})`
      : `Source secret ${where} is up to date`,
  );
  return { knownHosts, changed };
}
