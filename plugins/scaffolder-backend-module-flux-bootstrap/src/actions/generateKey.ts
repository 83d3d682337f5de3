import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  authSecrets,
  BitbucketServerClient,
  createKubeClient,
  describeFluxDeployKeyPlan,
  ECDSA_CURVES,
  fluxAccessKeyLabel,
  FluxDeployKeyOptions,
  InputValidationError,
  locateBitbucketRepository,
  normaliseSshKeyOptions,
  parseHostKeyFingerprint,
  parseSshHost,
  planRepositoryOutputs,
  reconcileFluxDeployKey,
  resolveCluster,
  SSH_KEY_ALGORITHMS,
  validateBranch,
  validateDnsLabel,
  validateDnsSubdomain,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './generateKey.examples';
import {
  checkpointFor,
  createActionRedaction,
  describeCredentials,
  FluxBootstrapActionOptions,
  resolveBitbucket,
  toActionError,
  withDefault,
} from './shared/context';

function requireBoolean(
  value: unknown,
  field: string,
  fallback: boolean,
): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean')
    throw new InputValidationError(field, 'must be true or false');
  return value;
}

/**
 * `flux:generate-key` — the SSH deploy key Flux pulls the fleet repository with: a key pair
 * generated with node:crypto, its public half registered as a Bitbucket access key, the server's
 * host key scanned into known_hosts, and the private half stored only in the cluster's Flux Git
 * Secret. A thin adapter over the engine's `reconcileFluxDeployKey`.
 * @public
 */
export function createFluxGenerateKeyAction(
  options: FluxBootstrapActionOptions,
) {
  const { config } = options;
  return createTemplateAction({
    id: 'flux:generate-key',
    description:
      "Creates Flux's SSH deploy key: generates a key pair, stores it with the Bitbucket SSH host key in the cluster's flux-system Secret (identity, identity.pub, known_hosts) and registers the public key as a repository access key. Re-runs keep an existing key; rotate replaces it.",
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
            .describe(
              'The fleet repository, host?project=KEY&repo=name (as for bitbucket:create-repo). It must exist.',
            ),
        token: z =>
          z
            .string()
            .optional()
            .describe(
              "Bitbucket HTTP access token of the user running the template (pass a ui:field Secret as ${{ secrets.token }}); it needs REPO_ADMIN on the repository. Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
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
            .describe('Key algorithm: ecdsa (default), rsa or ed25519.'),
        ecdsaCurve: z =>
          z
            .enum(ECDSA_CURVES)
            .optional()
            .describe('Curve of an ecdsa key: p256, p384 (default) or p521.'),
        rsaBits: z =>
          z
            .number()
            .int()
            .optional()
            .describe(
              'Size of an rsa key in bits: a multiple of 8 from 2048 (default) to 8192.',
            ),
        readWrite: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Register the key with write access (REPO_WRITE) instead of read-only (REPO_READ, default), e.g. for image automation.',
            ),
        branch: z =>
          z
            .string()
            .optional()
            .describe(
              'Branch Flux syncs (default main); part of the access key label.',
            ),
        path: z =>
          z
            .string()
            .optional()
            .describe(
              'Cluster path in the repository, e.g. clusters/my-cluster; part of the access key label, as flux bootstrap names it.',
            ),
        sshHost: z =>
          z
            .string()
            .optional()
            .describe(
              "SSH endpoint of Bitbucket as host:port whose host key goes into known_hosts (default the host's fluxBootstrap.bitbucketServer[].sshHost, else <hostname>:7999).",
            ),
        hostKeyFingerprint: z =>
          z
            .string()
            .optional()
            .describe(
              "Pin the server's SSH host key (SHA256:… as ssh-keygen -lf prints it) instead of trusting the first scan; a mismatch fails before anything is written.",
            ),
        rotate: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Replace an existing key: new key pair and Secret, new access key, the old access key removed (default false).',
            ),
      },
      output: {
        publicKey: z =>
          z
            .string()
            .describe('The public key (identity.pub) as "<type> <base64>".'),
        fingerprint: z =>
          z
            .string()
            .describe(
              'SHA256 fingerprint of the public key, as ssh-keygen -lf prints it.',
            ),
        knownHosts: z =>
          z.string().describe('The known_hosts line stored in the Secret.'),
        secretName: z =>
          z
            .string()
            .describe(
              'Name of the Secret holding identity, identity.pub and known_hosts.',
            ),
        accessKeyId: z =>
          z
            .number()
            .describe('Id of the Bitbucket access key holding the public key.'),
        accessKeyLabel: z =>
          z
            .string()
            .describe(
              'Label of the access key (flux: <namespace>-<branch>-<secretName>-<path>).',
            ),
        removedAccessKeyIds: z =>
          z
            .array(z.number())
            .describe(
              'Ids of access keys removed: the rotated-out key and stale keys with the same label.',
            ),
        changed: z =>
          z
            .boolean()
            .describe(
              'True when anything was created or changed in the cluster or on Bitbucket.',
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
        const namespace = validateDnsLabel(
          withDefault(input.namespace, 'flux-system'),
          'namespace',
        );
        const secretName = validateDnsSubdomain(
          withDefault(input.secretName, 'flux-system'),
          'secretName',
        );
        const key = normaliseSshKeyOptions({
          algorithm: input.algorithm,
          ecdsaCurve: input.ecdsaCurve,
          rsaBits: input.rsaBits,
        });
        const branch = validateBranch(
          withDefault(input.branch, 'main'),
          'branch',
        );
        const readWrite = requireBoolean(input.readWrite, 'readWrite', false);
        const rotate = requireBoolean(input.rotate, 'rotate', false);
        const label = fluxAccessKeyLabel({
          namespace,
          branch,
          secretName,
          path: input.path,
        });
        const resolved = resolveBitbucket(config, {
          repoUrl: input.repoUrl,
          token: input.token,
        });
        for (const secret of authSecrets(resolved.auth)) redactor.add(secret);
        const sshHost = parseSshHost(
          withDefault(input.sshHost, resolved.host.sshHost),
          'sshHost',
        );
        const hostKeyFingerprint =
          input.hostKeyFingerprint === undefined ||
          input.hostKeyFingerprint === null ||
          input.hostKeyFingerprint === ''
            ? undefined
            : parseHostKeyFingerprint(
                input.hostKeyFingerprint,
                'hostKeyFingerprint',
              );
        const cluster = resolveCluster(config, input.cluster, 'cluster');

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
