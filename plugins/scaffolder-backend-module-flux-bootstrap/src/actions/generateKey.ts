import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  authSecrets,
  BitbucketServerClient,
  createKubeClient,
  describeFluxDeployKeyPlan,
  describeFluxGitSecretPlan,
  ECDSA_CURVES,
  fluxAccessKeyLabel,
  FluxDeployKeyOptions,
  FluxGitSecretOptions,
  booleanInput,
  InputValidationError,
  locateBitbucketRepository,
  normaliseSshKeyOptions,
  parseHostKeyFingerprint,
  parseSshHost,
  planRepositoryOutputs,
  readSuppliedSshKey,
  reconcileFluxDeployKey,
  reconcileFluxGitSecret,
  registerSuppliedKeySecrets,
  resolveCluster,
  SSH_KEY_ALGORITHMS,
  validateBranch,
  validateDnsLabel,
  validateDnsSubdomain,
  validateSshUrl,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './generateKey.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  describeCredentials,
  FluxBootstrapActionOptions,
  resolveBitbucket,
  toActionError,
  withDefault,
} from './shared/context';

/** A value the template author actually set (empty strings from unfilled fields do not count). */
function isSet(value: unknown): boolean {
  return value !== undefined && value !== null && value !== '';
}

/** Inputs that only mean something when a key is generated and registered on Bitbucket. */
const REPO_URL_ONLY = [
  'token',
  'algorithm',
  'ecdsaCurve',
  'rsaBits',
  'readWrite',
  'branch',
  'path',
  'rotate',
] as const;

/**
 * `flux:generate-key` — the SSH key Flux pulls the fleet repository with, in one of two modes:
 *
 * - `repoUrl` (flux bootstrap bitbucket-server): a key pair generated with node:crypto, its public
 *   half registered as a Bitbucket access key, the server's host key scanned into known_hosts,
 *   and the private half stored only in the cluster's Flux Git Secret (engine
 *   `reconcileFluxDeployKey`).
 * - `url` (flux bootstrap git --private-key-file --password, "bootstrap without a Bitbucket
 *   token"): the user's own key, read from the task secrets by name, stored with the scanned host
 *   key and its passphrase; no key is generated and Bitbucket is not called (engine
 *   `reconcileFluxGitSecret`).
 * @public
 */
export function createFluxGenerateKeyAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:generate-key',
    description:
      "Creates Flux's SSH deploy key: generates a key pair, stores it with the Bitbucket SSH host key in the cluster's flux-system Secret (identity, identity.pub, known_hosts) and registers the public key as a repository access key. Re-runs keep an existing key; rotate replaces it. With url instead of repoUrl (bootstrap without a Bitbucket token, like flux bootstrap git --private-key-file --password) it stores your own key from the task secrets instead: no key is generated and Bitbucket is not called.",
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        cluster: z =>
          z
            .string()
            .describe(
              'Cluster to write the Secret to: a name from kubernetes.clusterLocatorMethods (type config), or a kubeconfig context when fluxBootstrap.allowKubeconfigContexts is on.',
            ),
        repoUrl: z =>
          z
            .string()
            .optional()
            .describe(
              'The fleet repository, host?project=KEY&repo=name (as for bitbucket:create-repo). It must exist. A key is generated and registered on it. Give either repoUrl or url.',
            ),
        url: z =>
          z
            .string()
            .optional()
            .describe(
              "Instead of repoUrl, bootstrap without a Bitbucket token (flux bootstrap git): the ssh:// URL of an existing repository, e.g. ssh://git@host:7999/PROJ/fleet.git. Your own key (sshPrivateKeySecret) is stored for Flux; no key is generated and Bitbucket is not called, so its public key must already be registered on the repository. The host key is scanned from the URL's host:port (or sshHost).",
            ),
        sshPrivateKeySecret: z =>
          z
            .string()
            .optional()
            .describe(
              'With url: name of the task secret holding your private key (default sshPrivateKey), OpenSSH or PEM, as flux bootstrap git --private-key-file reads it. The key itself never goes through inputs; it is stored as identity, as supplied.',
            ),
        sshPassphraseSecret: z =>
          z
            .string()
            .optional()
            .describe(
              'With url: name of the task secret holding the passphrase of an encrypted key (flux bootstrap git --password). It must decrypt the key (checked before anything is written) and is stored as password, which Flux reads to decrypt identity.',
            ),
        token: z =>
          z
            .string()
            .optional()
            .describe(
              "With repoUrl: Bitbucket HTTP access token of the user running the template (pass a ui:field Secret as ${{ secrets.token }}); it needs REPO_ADMIN on the repository. Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
            ),
        namespace: z =>
          z
            .string()
            .optional()
            .describe(
              'Namespace of Flux and of the Secret (default flux-system); created when missing.',
            ),
        secretName: z =>
          z
            .string()
            .optional()
            .describe(
              'Name of the Secret Flux reads its Git credentials from (default flux-system).',
            ),
        algorithm: z =>
          z
            .enum(SSH_KEY_ALGORITHMS)
            .optional()
            .describe(
              'With repoUrl: key algorithm, ecdsa (default), rsa or ed25519.',
            ),
        ecdsaCurve: z =>
          z
            .enum(ECDSA_CURVES)
            .optional()
            .describe(
              'With repoUrl: curve of an ecdsa key, p256, p384 (default) or p521.',
            ),
        rsaBits: z =>
          z
            .number()
            .int()
            .optional()
            .describe(
              'With repoUrl: size of an rsa key in bits, a multiple of 8 from 2048 (default) to 8192.',
            ),
        readWrite: z =>
          z
            .boolean()
            .optional()
            .describe(
              'With repoUrl: register the key with write access (REPO_WRITE) instead of read-only (REPO_READ, default), e.g. for image automation.',
            ),
        branch: z =>
          z
            .string()
            .optional()
            .describe(
              'With repoUrl: branch Flux syncs (default main); part of the access key label.',
            ),
        path: z =>
          z
            .string()
            .optional()
            .describe(
              'With repoUrl: cluster path in the repository, e.g. clusters/my-cluster; part of the access key label, as flux bootstrap names it.',
            ),
        sshHost: z =>
          z
            .string()
            .optional()
            .describe(
              "SSH endpoint as host:port whose host key goes into known_hosts: the one Flux connects to. With repoUrl default the host's fluxBootstrap.bitbucketServer[].sshHost, else <hostname>:7999; with url default the URL's host:port (port 22 when it has none).",
            ),
        hostKeyFingerprint: z =>
          z
            .string()
            .optional()
            .describe(
              "Pin the server's SSH host key (SHA256:… as ssh-keygen -lf prints it) instead of trusting the first scan; a mismatch fails before anything is written. Without it, a re-run refuses a host key that changed since the Secret was written.",
            ),
        rotate: z =>
          z
            .boolean()
            .optional()
            .describe(
              'With repoUrl: replace an existing key: new key pair and Secret, new access key, the old access key removed (default false).',
            ),
      },
      output: {
        publicKey: z =>
          z
            .string()
            .optional()
            .describe(
              'The public key (identity.pub) as "<type> <base64>" (not in a dry run with repoUrl: no key is generated).',
            ),
        fingerprint: z =>
          z
            .string()
            .optional()
            .describe(
              'SHA256 fingerprint of the public key, as ssh-keygen -lf prints it (not in a dry run with repoUrl).',
            ),
        knownHosts: z =>
          z
            .string()
            .optional()
            .describe(
              'The known_hosts line stored in the Secret (not in a dry run with repoUrl: the host is not scanned).',
            ),
        secretName: z =>
          z
            .string()
            .describe(
              'Name of the Secret holding identity, identity.pub and known_hosts (and password with url and an encrypted key).',
            ),
        accessKeyId: z =>
          z
            .number()
            .optional()
            .describe(
              'With repoUrl: id of the Bitbucket access key holding the public key.',
            ),
        accessKeyLabel: z =>
          z
            .string()
            .optional()
            .describe(
              'With repoUrl: label of the access key (flux: <namespace>-<branch>-<secretName>-<path>).',
            ),
        removedAccessKeyIds: z =>
          z
            .array(z.number())
            .describe(
              'Ids of access keys removed: the rotated-out key and stale keys with the same label (always empty with url).',
            ),
        changed: z =>
          z
            .boolean()
            .describe(
              'True when anything was created or changed in the cluster or on Bitbucket (with url: the Secret).',
            ),
      },
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        // Defaults are applied here (zod defaults are not applied at runtime), and every input
        // is validated before the first request.
        const input = ctx.input;
        const settings = await settingsSource.get();
        if (isSet(input.repoUrl) === isSet(input.url)) {
          throw new InputValidationError(
            isSet(input.repoUrl) ? 'url' : 'repoUrl',
            'give either repoUrl (a Bitbucket repository: a key is generated and registered) or url (an ssh:// repository your own key already has access to), not both and not neither',
          );
        }
        const namespace = validateDnsLabel(
          withDefault(input.namespace, 'flux-system'),
          'namespace',
        );
        const secretName = validateDnsSubdomain(
          withDefault(input.secretName, 'flux-system'),
          'secretName',
        );
        const hostKeyFingerprint = isSet(input.hostKeyFingerprint)
          ? parseHostKeyFingerprint(
              input.hostKeyFingerprint!,
              'hostKeyFingerprint',
            )
          : undefined;

        if (isSet(input.url)) {
          // Bootstrap without a Bitbucket token: the user's own key, nothing generated, no
          // Bitbucket call. Everything is validated before the first request.
          for (const field of REPO_URL_ONLY) {
            if (isSet(input[field])) {
              throw new InputValidationError(
                field,
                'only applies with repoUrl (a generated key registered on Bitbucket); with url your own key is stored as it is and Bitbucket is not called',
              );
            }
          }
          const url = validateSshUrl(input.url, 'url');
          const parsedUrl = new URL(url);
          const sshHost = parseSshHost(
            isSet(input.sshHost)
              ? input.sshHost!
              : `${parsedUrl.hostname}:${parsedUrl.port || '22'}`,
            isSet(input.sshHost) ? 'sshHost' : 'url',
          );
          const keySecret = withDefault(
            isSet(input.sshPrivateKeySecret)
              ? input.sshPrivateKeySecret
              : undefined,
            'sshPrivateKey',
          );
          const passphraseSecret = isSet(input.sshPassphraseSecret)
            ? input.sshPassphraseSecret
            : undefined;
          const passphrase = passphraseSecret
            ? ctx.secrets?.[passphraseSecret]
            : undefined;
          if (passphraseSecret && !passphrase) {
            throw new InputValidationError(
              'sshPassphraseSecret',
              `no task secret named "${passphraseSecret}"`,
            );
          }
          const key = readSuppliedSshKey(ctx.secrets?.[keySecret], passphrase, {
            keyField: 'sshPrivateKeySecret',
            passphraseField: 'sshPassphraseSecret',
            keySecret,
            passphraseSecret,
          });
          registerSuppliedKeySecrets(redactor, key);
          const cluster = resolveCluster(settings, input.cluster, 'cluster');
          const gitOptions: FluxGitSecretOptions = {
            namespace,
            secretName,
            sshHost,
            hostKeyFingerprint,
          };
          ctx.output('publicKey', key.publicKey);
          ctx.output('fingerprint', key.fingerprint);
          ctx.output('secretName', secretName);
          ctx.output('removedAccessKeyIds', []);
          if (ctx.isDryRun) {
            logger.info(
              `Dry run of flux:generate-key with url ${url}; no request is sent. Plan:`,
            );
            for (const line of describeFluxGitSecretPlan(
              { ...gitOptions, cluster: cluster.name },
              key,
            )) {
              logger.info(`  ${line}`);
            }
            ctx.output('changed', false);
            return;
          }
          logger.info(
            `Storing your key for ${url} in cluster ${cluster.name}; Bitbucket is not called`,
          );
          const kube = await createKubeClient(cluster, { logger, redactor });
          try {
            const result = await reconcileFluxGitSecret(gitOptions, key, {
              kube,
              logger,
              redactor,
              signal: ctx.signal,
              checkpoint: checkpointFor(ctx),
            });
            ctx.output('knownHosts', result.knownHosts);
            ctx.output('changed', result.changed);
          } finally {
            kube.close();
          }
          return;
        }

        for (const field of [
          'sshPrivateKeySecret',
          'sshPassphraseSecret',
        ] as const) {
          if (isSet(input[field])) {
            throw new InputValidationError(
              field,
              'only applies with url (your own key); with repoUrl a key is generated',
            );
          }
        }
        const key = normaliseSshKeyOptions({
          algorithm: input.algorithm,
          ecdsaCurve: input.ecdsaCurve,
          rsaBits: input.rsaBits,
        });
        const branch = validateBranch(
          withDefault(input.branch, 'main'),
          'branch',
        );
        const readWrite = booleanInput('readWrite', input.readWrite, false);
        const rotate = booleanInput('rotate', input.rotate, false);
        const label = fluxAccessKeyLabel({
          namespace,
          branch,
          secretName,
          path: input.path,
        });
        const resolved = resolveBitbucket(settings, {
          repoUrl: input.repoUrl!,
          token: input.token,
        });
        for (const secret of authSecrets(resolved.auth)) redactor.add(secret);
        const sshHost = parseSshHost(
          withDefault(input.sshHost, resolved.host.sshHost),
          'sshHost',
        );
        const cluster = resolveCluster(settings, input.cluster, 'cluster');

        const planned = planRepositoryOutputs(resolved.host, {
          ref: resolved.ref,
          defaultBranch: branch,
        });
        const engineOptions: FluxDeployKeyOptions = {
          namespace,
          secretName,
          key,
          projectKey: planned.projectKey,
          repoSlug: planned.repoSlug,
          readWrite,
          label,
          sshHost,
          hostKeyFingerprint,
          rotate,
        };

        if (ctx.isDryRun) {
          logger.info(
            `Dry run of flux:generate-key; no request is sent. Plan:`,
          );
          for (const line of describeFluxDeployKeyPlan({
            ...engineOptions,
            cluster: cluster.name,
          })) {
            logger.info(`  ${line}`);
          }
          ctx.output('secretName', secretName);
          ctx.output('accessKeyLabel', label);
          ctx.output('removedAccessKeyIds', []);
          ctx.output('changed', false);
          return;
        }

        const credentials = describeCredentials(resolved);
        logger.info(
          `Using ${credentials} for Bitbucket ${resolved.host.host} and cluster ${cluster.name}`,
        );
        const client = new BitbucketServerClient(resolved.host, resolved.auth, {
          logger,
          redactor,
        });
        const kube = await createKubeClient(cluster, { logger, redactor });
        try {
          const repo = await locateBitbucketRepository(client, resolved.ref, {
            signal: ctx.signal,
            credentials,
          });
          const result = await reconcileFluxDeployKey(
            {
              ...engineOptions,
              projectKey: repo.projectKey,
              repoSlug: repo.repoSlug,
            },
            {
              kube,
              bitbucket: client,
              logger,
              redactor,
              signal: ctx.signal,
              checkpoint: checkpointFor(ctx),
            },
          );
          ctx.output('publicKey', result.publicKey);
          ctx.output('fingerprint', result.fingerprint);
          ctx.output('knownHosts', result.knownHosts);
          ctx.output('secretName', result.secretName);
          ctx.output('accessKeyId', result.accessKeyId);
          ctx.output('accessKeyLabel', result.label);
          ctx.output('removedAccessKeyIds', result.removedAccessKeyIds);
          ctx.output('changed', result.changed);
        } finally {
          client.close();
          kube.close();
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
