import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  ECDSA_CURVES,
  provisionDeployKey,
  SSH_KEY_ALGORITHMS,
  SSH_KEY_DEFAULTS,
  storeSuppliedKey,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { examples } from './generateKey.examples';
import { bitbucketAccess } from './shared/bitbucketAccess';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import {
  gitBranch,
  hostKeyFingerprint,
  kubeNamespace,
  kubeObjectName,
  repoPath,
  sshEndpoint,
  sshUrl,
} from './shared/domainInputs';
import { actionInput, writeOutputs } from './shared/io';

/** Inputs that only mean something when a key is generated and registered (`repoUrl`), with their defaults. */
const REPO_URL_ONLY = {
  token: undefined,
  ...SSH_KEY_DEFAULTS,
  readWrite: false,
  branch: 'main',
  path: undefined,
  rotate: false,
} as const;
/** Inputs that only mean something with your own key (`url`), with their defaults. */
const URL_ONLY = {
  sshPrivateKeySecret: 'sshPrivateKey',
  sshPassphraseSecret: undefined,
};

/**
 * The input of `flux:generate-key`, discriminated by `mode`: `repoUrl` (a key generated and
 * registered on Bitbucket) or `url` (your own key for a plain git URL).
 */
const generateKeyInput = actionInput(z =>
  z
    .object({
      cluster: z
        .string()
        .describe(
          'Cluster to write the Secret to: a name from kubernetes.clusterLocatorMethods (type config), or a kubeconfig context when fluxBootstrap.allowKubeconfigContexts is on.',
        ),
      repoUrl: z
        .string()
        .optional()
        .describe(
          'The fleet repository, host?project=KEY&repo=name (as for bitbucket:create-repo). It must exist. A key is generated and registered on it. Give either repoUrl or url.',
        ),
      url: sshUrl(z)
        .optional()
        .describe(
          "Instead of repoUrl, bootstrap without a Bitbucket token (flux bootstrap git): the ssh:// URL of an existing repository, e.g. ssh://git@host:7999/PROJ/fleet.git. Your own key (sshPrivateKeySecret) is stored for Flux; no key is generated and Bitbucket is not called, so its public key must already be registered on the repository. The host key is scanned from the URL's host:port (or sshHost).",
        ),
      sshPrivateKeySecret: z
        .string()
        .default(URL_ONLY.sshPrivateKeySecret)
        .describe(
          'With url: name of the task secret holding your private key (default sshPrivateKey), OpenSSH or PEM, as flux bootstrap git --private-key-file reads it. The key itself never goes through inputs; it is stored as identity, as supplied.',
        ),
      sshPassphraseSecret: z
        .string()
        .optional()
        .describe(
          'With url: name of the task secret holding the passphrase of an encrypted key (flux bootstrap git --password). It must decrypt the key (checked before anything is written) and is stored as password, which Flux reads to decrypt identity.',
        ),
      token: z
        .string()
        .optional()
        .describe(
          "With repoUrl: Bitbucket HTTP access token of the user running the template (pass a ui:field Secret as ${{ secrets.token }}); it needs REPO_ADMIN on the repository. Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
        ),
      namespace: kubeNamespace(z)
        .default('flux-system')
        .describe(
          'Namespace of Flux and of the Secret (default flux-system); created when missing.',
        ),
      secretName: kubeObjectName(z)
        .default('flux-system')
        .describe(
          'Name of the Secret Flux reads its Git credentials from (default flux-system).',
        ),
      algorithm: z
        .enum(SSH_KEY_ALGORITHMS)
        .default(SSH_KEY_DEFAULTS.algorithm)
        .describe(
          'With repoUrl: key algorithm, ecdsa (default), rsa or ed25519.',
        ),
      ecdsaCurve: z
        .enum(ECDSA_CURVES)
        .default(SSH_KEY_DEFAULTS.ecdsaCurve)
        .describe(
          'With repoUrl: curve of an ecdsa key, p256, p384 (default) or p521.',
        ),
      rsaBits: z
        .number()
        .int()
        .min(2048, 'must be at least 2048')
        .max(8192, 'must be at most 8192')
        .multipleOf(8, 'must be a multiple of 8')
        .default(SSH_KEY_DEFAULTS.rsaBits)
        .describe(
          'With repoUrl: size of an rsa key in bits, a multiple of 8 from 2048 (default) to 8192.',
        ),
      readWrite: z
        .boolean()
        .default(false)
        .describe(
          'With repoUrl: register the key with write access (REPO_WRITE) instead of read-only (REPO_READ, default), e.g. for image automation.',
        ),
      branch: gitBranch(z)
        .default('main')
        .describe(
          'With repoUrl: branch Flux syncs (default main); part of the access key label.',
        ),
      path: repoPath(z)
        .optional()
        .describe(
          'With repoUrl: cluster path in the repository, e.g. clusters/my-cluster; part of the access key label, as flux bootstrap names it.',
        ),
      sshHost: sshEndpoint(z)
        .optional()
        .describe(
          "SSH endpoint as host:port whose host key goes into known_hosts: the one Flux connects to. With repoUrl default the host's fluxBootstrap.bitbucketServer[].sshHost, else <hostname>:7999; with url default the URL's host:port (port 22 when it has none).",
        ),
      hostKeyFingerprint: hostKeyFingerprint(z)
        .optional()
        .describe(
          "Pin the server's SSH host key (SHA256:… as ssh-keygen -lf prints it) instead of trusting the first scan; a mismatch fails before anything is written. Without it, a re-run refuses a host key that changed since the Secret was written.",
        ),
      rotate: z
        .boolean()
        .default(false)
        .describe(
          'With repoUrl: replace an existing key: new key pair and Secret, new access key, the old access key removed (default false).',
        ),
    })
    .superRefine((input, ctx) => {
      const issue = (field: string, message: string) =>
        ctx.addIssue({ code: 'custom', path: [field], message });
      if ((input.repoUrl === undefined) === (input.url === undefined)) {
        issue(
          input.repoUrl === undefined ? 'repoUrl' : 'url',
          'give either repoUrl (a Bitbucket repository: a key is generated and registered) or url (an ssh:// repository your own key already has access to), not both and not neither',
        );
        return;
      }
      const [other, why] = input.url
        ? [
            REPO_URL_ONLY,
            'only applies with repoUrl (a generated key registered on Bitbucket); with url your own key is stored as it is and Bitbucket is not called',
          ]
        : [
            URL_ONLY,
            'only applies with url (your own key); with repoUrl a key is generated',
          ];
      for (const [field, unset] of Object.entries(other)) {
        const value = input[field as keyof typeof input];
        if (value !== undefined && value !== unset) issue(field, why);
      }
    })
    .transform(({ repoUrl, url, ...rest }) =>
      url
        ? { ...rest, mode: 'url' as const, url }
        : { ...rest, mode: 'repoUrl' as const, repoUrl: repoUrl! },
    ),
);

/**
 * `flux:generate-key`: parses its input and runs the engine's `provisionDeployKey` (`repoUrl`)
 * or `storeSuppliedKey` (`url`).
 * @public
 */
export function createFluxGenerateKeyAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:generate-key',
    description:
      "Gives Flux its SSH key in the cluster's Git Secret: a generated key registered as a Bitbucket access key (repoUrl), or your own key (url).",
    examples,
    supportsDryRun: true,
    schema: {
      input: generateKeyInput.schema,
      output: z =>
        z.object({
          publicKey: z
            .string()
            .optional()
            .describe(
              'The public key (identity.pub) as "<type> <base64>" (not in a dry run with repoUrl: no key is generated).',
            ),
          fingerprint: z
            .string()
            .optional()
            .describe(
              'SHA256 fingerprint of the public key, as ssh-keygen -lf prints it (not in a dry run with repoUrl).',
            ),
          knownHosts: z
            .string()
            .optional()
            .describe(
              'The known_hosts line stored in the Secret (not in a dry run with repoUrl: the host is not scanned).',
            ),
          secretName: z
            .string()
            .describe(
              'Name of the Secret holding identity, identity.pub and known_hosts (and password with url and an encrypted key).',
            ),
          accessKeyId: z
            .number()
            .optional()
            .describe(
              'With repoUrl: id of the Bitbucket access key holding the public key.',
            ),
          accessKeyLabel: z
            .string()
            .optional()
            .describe(
              'With repoUrl: label of the access key (flux: <namespace>-<branch>-<secretName>-<path>).',
            ),
          removedAccessKeyIds: z
            .array(z.number())
            .describe(
              'Ids of access keys removed: the rotated-out key and stale keys with the same label (always empty with url).',
            ),
          changed: z
            .boolean()
            .describe(
              'True when anything was created or changed in the cluster or on Bitbucket (with url: the Secret).',
            ),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = generateKeyInput.parse(ctx.input);
        const settings = await settingsSource.get();
        const deps = {
          settings,
          logger,
          redactor,
          signal: ctx.signal,
          checkpoint: checkpointFor(ctx),
          dryRun: ctx.isDryRun,
        };
        const { sshPrivateKeySecret, sshPassphraseSecret } = input;
        const outputs =
          input.mode === 'url'
            ? await storeSuppliedKey(
                {
                  ...input,
                  privateKey: ctx.secrets?.[sshPrivateKeySecret],
                  passphrase:
                    sshPassphraseSecret && ctx.secrets?.[sshPassphraseSecret],
                  names: {
                    keyField: 'sshPrivateKeySecret',
                    passphraseField: 'sshPassphraseSecret',
                    keySecret: sshPrivateKeySecret,
                    passphraseSecret: sshPassphraseSecret,
                  },
                },
                deps,
              )
            : await provisionDeployKey(
                {
                  ...input,
                  key: input,
                  bitbucket: bitbucketAccess(settings, input),
                },
                deps,
              );
        writeOutputs(ctx, outputs);
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
