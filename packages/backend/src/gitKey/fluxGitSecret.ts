import type { Config } from '@backstage/config';
import { InputError } from '@backstage/errors';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  createKubeClient,
  FLUX_FIELD_MANAGER,
  formatSshHost,
  InputValidationError,
  knownHostsFor,
  parseSshHost,
  Redactor,
  resolveCluster,
  scanHostKey,
  sshFingerprint,
  validateSshUrl,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { utils as ssh2Utils } from 'ssh2';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** A user's SSH key, read and checked: its public half and fingerprint. */
export interface SuppliedSshKey {
  /** `type base64`, as identity.pub holds it (without newline). */
  publicKey: string;
  fingerprint: string;
}

/**
 * Reads a private key as `ssh-keygen` writes it (OpenSSH, PKCS#1/PKCS#8 PEM), with its
 * passphrase when encrypted. Errors name the task secret, never its content.
 */
export function readSuppliedSshKey(
  privateKey: string,
  passphrase: string | undefined,
  names: { key: string; passphrase?: string },
): SuppliedSshKey {
  const parsed = ssh2Utils.parseKey(
    privateKey.replace(/\r\n/g, '\n'),
    passphrase || undefined,
  );
  if (parsed instanceof Error) {
    const encrypted = /encrypted|passphrase|bad decrypt|decrypt/i.test(
      parsed.message,
    );
    if (encrypted) {
      throw new InputValidationError(
        names.passphrase ?? 'sshPassphraseSecret',
        passphrase
          ? `does not decrypt the private key in the task secret "${names.key}" (wrong passphrase)`
          : `is needed: the private key in the task secret "${names.key}" is encrypted`,
      );
    }
    throw new InputValidationError(
      'sshPrivateKeySecret',
      `the task secret "${names.key}" is not an SSH private key (OpenSSH or PEM)`,
    );
  }
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key.isPrivateKey()) {
    throw new InputValidationError(
      'sshPrivateKeySecret',
      `the task secret "${names.key}" holds a public key, not a private key`,
    );
  }
  const blob = key.getPublicSSH();
  return {
    publicKey: `${key.type} ${blob.toString('base64')}`,
    fingerprint: sshFingerprint(blob),
  };
}

function b64(text: string) {
  return Buffer.from(text, 'utf8').toString('base64');
}

/**
 * `fleet:flux-git-secret`: "bootstrap without a Bitbucket token" needs Flux to pull with the
 * key the user registered on the repository in advance, as `flux bootstrap git
 * --private-key-file=… --password=…` does. This action scans the Git server's SSH host key and
 * writes Flux's Git Secret (`identity`, `identity.pub`, `known_hosts`, and `password` for an
 * encrypted key) by server-side apply with flux's field manager. The key and passphrase are read
 * from the task secrets by name; they never pass through inputs, outputs or logs.
 *
 * On a re-run the Secret's known_hosts must still match the server: a changed host key fails
 * (pin the new one with `hostKeyFingerprint` after checking it).
 */
export function createFluxGitSecretAction(options: { config: Config }) {
  const { config } = options;
  return createTemplateAction({
    id: 'fleet:flux-git-secret',
    description:
      "Stores your own SSH key as Flux's Git credentials on a cluster (Secret with identity, identity.pub, known_hosts, password) after scanning the Git server's host key, like flux bootstrap git --private-key-file.",
    supportsDryRun: true,
    examples: [
      {
        description:
          'Flux pulls an existing repository with the key from the template’s secret fields.',
        example: [
          'steps:',
          '  - id: gitSecret',
          '    action: fleet:flux-git-secret',
          '    input:',
          '      cluster: ${{ parameters.cluster }}',
          '      url: ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
          '      sshPrivateKeySecret: sshPrivateKey',
          '      sshPassphraseSecret: sshPassphrase',
        ].join('\n'),
      },
    ],
    schema: {
      input: {
        cluster: z =>
          z
            .string()
            .describe('Cluster name from kubernetes.clusterLocatorMethods.'),
        url: z =>
          z
            .string()
            .describe(
              'ssh:// URL of the repository, e.g. ssh://git@host:7999/PROJ/fleet.git.',
            ),
        sshPrivateKeySecret: z =>
          z
            .string()
            .optional()
            .describe(
              'Name of the task secret holding the private key (default sshPrivateKey).',
            ),
        sshPassphraseSecret: z =>
          z
            .string()
            .optional()
            .describe(
              'Name of the task secret holding the key passphrase, when the key is encrypted.',
            ),
        namespace: z =>
          z
            .string()
            .optional()
            .describe('Namespace of Flux (default flux-system).'),
        secretName: z =>
          z
            .string()
            .optional()
            .describe('Name of the Secret (default flux-system).'),
        hostKeyFingerprint: z =>
          z
            .string()
            .optional()
            .describe(
              'Pin the server host key (SHA256:…) instead of trusting the first scan.',
            ),
      },
      output: {
        knownHosts: z =>
          z.string().describe('The known_hosts line stored in the Secret.'),
        publicKey: z =>
          z.string().describe('Public half of the key, "<type> <base64>".'),
        fingerprint: z => z.string().describe('SHA256 fingerprint of the key.'),
        secretName: z => z.string().describe('Name of the Secret written.'),
        changed: z =>
          z.boolean().describe('True when the Secret was created or changed.'),
      },
    },
    async handler(ctx) {
      const keyName = ctx.input.sshPrivateKeySecret?.trim() || 'sshPrivateKey';
      const passName = ctx.input.sshPassphraseSecret?.trim() || undefined;
      const privateKey = ctx.secrets?.[keyName];
      const passphrase = passName
        ? ctx.secrets?.[passName] || undefined
        : undefined;
      const redactor = new Redactor([privateKey, passphrase]);
      const logger = redactor.wrapLogger(ctx.logger);
      try {
        if (!privateKey?.trim()) {
          throw new InputValidationError(
            'sshPrivateKeySecret',
            `names the task secret "${keyName}", which is empty or missing`,
          );
        }
        const url = validateSshUrl(ctx.input.url, 'url');
        const parsedUrl = new URL(url);
        const endpoint = parseSshHost(
          `${
            parsedUrl.hostname.includes(':')
              ? `[${parsedUrl.hostname}]`
              : parsedUrl.hostname
          }:${parsedUrl.port || '22'}`,
          'url',
        );
        const namespace = ctx.input.namespace?.trim() || 'flux-system';
        const secretName = ctx.input.secretName?.trim() || 'flux-system';
        for (const [field, value] of [
          ['namespace', namespace],
          ['secretName', secretName],
        ] as const) {
          if (!DNS_LABEL.test(value) || value.length > 63) {
            throw new InputValidationError(
              field,
              'must be a DNS-1123 label, e.g. flux-system',
            );
          }
        }
        const key = readSuppliedSshKey(privateKey, passphrase, {
          key: keyName,
          passphrase: passName,
        });
        const cluster = resolveCluster(config, ctx.input.cluster, 'cluster');
        logger.info(
          `Key ${key.fingerprint} (${
            key.publicKey.split(' ')[0]
          }) for ${url}; Secret ${namespace}/${secretName} on cluster "${
            cluster.name
          }"`,
        );
        ctx.output('publicKey', key.publicKey);
        ctx.output('fingerprint', key.fingerprint);
        ctx.output('secretName', secretName);
        if (ctx.isDryRun) {
          logger.info(
            `Dry run: would scan the host key of ${formatSshHost(
              endpoint,
            )} and apply Secret ${namespace}/${secretName}; nothing is sent.`,
          );
          ctx.output('knownHosts', '');
          ctx.output('changed', false);
          return;
        }

        const kube = await createKubeClient(cluster, { logger, redactor });
        const existing = await kube.get<
          { data?: Record<string, string> } & any
        >(
          { apiVersion: 'v1', kind: 'Secret', name: secretName, namespace },
          { signal: ctx.signal },
        );
        const scanned = await ctx.checkpoint({
          key: `hostKey.${formatSshHost(endpoint)}`,
          fn: async () => {
            const s = await scanHostKey({
              sshHost: endpoint,
              expectedFingerprint: ctx.input.hostKeyFingerprint,
              signal: ctx.signal,
              logger,
            });
            return {
              knownHosts: s.knownHosts,
              fingerprint: s.fingerprint,
              publicKey: s.publicKey,
            };
          },
        });
        const stored = existing?.data?.known_hosts
          ? Buffer.from(existing.data.known_hosts, 'base64').toString('utf8')
          : undefined;
        if (stored && !ctx.input.hostKeyFingerprint) {
          const known = knownHostsFor(stored, endpoint);
          if (known.length && !known.some(e => e.key === scanned.publicKey)) {
            throw new Error(
              `The SSH host key of ${formatSshHost(
                endpoint,
              )} changed: the Secret ${namespace}/${secretName} trusts ${known
                .map(e => e.key.split(' ')[0])
                .join(', ')} but the server now presents ${
                scanned.fingerprint
              }. Nothing was written. If the change is expected, check the new fingerprint with the server's administrators and pass it as hostKeyFingerprint.`,
            );
          }
        }
        logger.info(
          `Host key of ${formatSshHost(endpoint)}: ${scanned.fingerprint}`,
        );

        const data: Record<string, string> = {
          identity: b64(`${privateKey.replace(/\r\n/g, '\n').trim()}\n`),
          'identity.pub': b64(`${key.publicKey}\n`),
          known_hosts: b64(scanned.knownHosts),
        };
        if (passphrase) data.password = b64(passphrase);
        const changed = await ctx.checkpoint({
          key: `secret.${namespace}.${secretName}`,
          fn: async () => {
            await kube.ensureNamespace(namespace, {
              fieldManager: FLUX_FIELD_MANAGER,
              signal: ctx.signal,
            });
            const applied = await kube.apply<any>(
              {
                apiVersion: 'v1',
                kind: 'Secret',
                metadata: { name: secretName, namespace },
                type: 'Opaque',
                data,
              },
              {
                fieldManager: FLUX_FIELD_MANAGER,
                force: true,
                signal: ctx.signal,
              },
            );
            return (
              applied.metadata?.resourceVersion !==
              existing?.metadata?.resourceVersion
            );
          },
        });
        logger.info(
          changed
            ? `Secret ${namespace}/${secretName} written (identity, identity.pub, known_hosts${
                passphrase ? ', password' : ''
              })`
            : `Secret ${namespace}/${secretName} already up to date`,
        );
        ctx.output('knownHosts', scanned.knownHosts);
        ctx.output('changed', changed);
      } catch (error) {
        if (error instanceof InputValidationError) {
          throw new InputError(redactor.redact(error.message));
        }
        throw redactor.redactError(error);
      }
    },
  });
}
