import { ServiceUnavailableError } from '@backstage/errors';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import {
  bootstrapFleet,
  ECDSA_CURVES,
  SSH_KEY_ALGORITHMS,
  SSH_KEY_DEFAULTS,
  type FleetClusterResult,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import type { z as zod } from 'zod/v3';
import { examples } from './bootstrapFleet.examples';
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
  sshEndpoint,
} from './shared/domainInputs';
import {
  fluxComponentOptions,
  fluxComponentOptionsInput,
  fluxSyncOptionsInput,
  parseGoDuration,
} from './shared/fluxOptions';
import { actionInput, writeOutputs } from './shared/io';

/** A Go duration (`5m`, `90s`, `1h`) between 10 s and 24 h, in milliseconds. */
const duration = (z: typeof zod) =>
  z.string().transform((text, ctx) => {
    const ms = parseGoDuration(text.trim());
    if (ms !== undefined && ms >= 10_000 && ms <= 86_400_000) return ms;
    const message = 'must be a duration from 10s to 24h, such as 5m or 90s';
    ctx.addIssue({ code: 'custom', message });
    return z.NEVER;
  });

/** Inputs of the SSH access keys, and their value when not set; refused with tokenAuth. */
const SSH_ONLY = {
  algorithm: SSH_KEY_DEFAULTS.algorithm,
  ecdsaCurve: SSH_KEY_DEFAULTS.ecdsaCurve,
  readWrite: false,
  sshHost: undefined,
  hostKeyFingerprint: undefined,
} as const;

/** The input of `flux:bootstrap-fleet`. */
const fleetInput = actionInput(z =>
  z
    .object({
      repoUrl: z
        .string()
        .describe(
          'The fleet repository, host?project=KEY&repo=name (as for bitbucket:create-repo); created when missing.',
        ),
      token: z
        .string()
        .optional()
        .describe(
          "Bitbucket HTTP access token (pass a ui:field Secret as ${{ secrets.token }}); it needs project admin rights to create the repository and repository admin rights for the access keys. Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on. With tokenAuth these credentials are also what every cluster's Secret stores for Flux.",
        ),
      clusters: z
        .array(z.string().trim().min(1))
        .min(1)
        .max(100)
        .superRefine((names, ctx) =>
          names.forEach((name, i) => {
            if (names.indexOf(name) < i)
              ctx.addIssue({
                code: 'custom',
                path: [i],
                message: `cluster "${name}" is listed twice`,
              });
          }),
        )
        .describe(
          'Clusters to bootstrap (the cluster picker with multiple: true): names from kubernetes.clusterLocatorMethods (type config), or kubeconfig contexts when fluxBootstrap.allowKubeconfigContexts is on.',
        ),
      pathPattern: z
        .string()
        .default('clusters/<cluster>')
        .describe(
          "Folder of each cluster in the repository; <cluster> is replaced by the cluster's name (default clusters/<cluster>).",
        ),
      branch: gitBranch(z)
        .default('main')
        .describe('Branch Flux syncs, created when missing (default main).'),
      private: z
        .boolean()
        .default(true)
        .describe('Create the repository private (default true).'),
      description: z
        .string()
        .max(1000)
        .optional()
        .describe(
          'Description of the repository, used only when it is created.',
        ),
      groups: z
        .array(
          z.object({
            name: z.string().trim().min(1),
            permission: z
              .enum(['REPO_READ', 'REPO_WRITE', 'REPO_ADMIN'])
              .default('REPO_WRITE'),
          }),
        )
        .default([])
        .describe(
          'Bitbucket groups granted access to the repository (name, permission REPO_READ, REPO_WRITE (default) or REPO_ADMIN).',
        ),
      ...fluxComponentOptionsInput(z),
      namespace: kubeNamespace(z)
        .default('flux-system')
        .describe('Namespace of Flux (default flux-system).'),
      secretName: kubeObjectName(z)
        .default('flux-system')
        .describe('Secret with the Git credentials (default flux-system).'),
      interval: fluxSyncOptionsInput(z).interval.describe(
        'GitRepository interval (default 1m).',
      ),
      tokenAuth: z
        .boolean()
        .default(false)
        .describe(
          "Flux syncs over HTTPS with the token input (else the integration's credentials, checked first to belong to a user) in each cluster's Secret (username, password, ca.crt when the host has a CA) instead of SSH deploy keys; the SSH inputs are refused with it (default false).",
        ),
      username: z
        .string()
        .optional()
        .describe(
          "With tokenAuth: the token owner's Bitbucket user name (default the integration's username, else the token's owner as Bitbucket names it).",
        ),
      algorithm: z
        .enum(SSH_KEY_ALGORITHMS)
        .default(SSH_KEY_DEFAULTS.algorithm)
        .describe('Deploy key algorithm: ecdsa (default), rsa or ed25519.'),
      ecdsaCurve: z
        .enum(ECDSA_CURVES)
        .default(SSH_KEY_DEFAULTS.ecdsaCurve)
        .describe('Curve of an ecdsa key: p256, p384 (default) or p521.'),
      readWrite: z
        .boolean()
        .default(false)
        .describe(
          'Register the deploy keys with write access (default false).',
        ),
      sshHost: sshEndpoint(z)
        .optional()
        .describe(
          "SSH endpoint host:port Flux connects to (default the host's fluxBootstrap.bitbucketServer[].sshHost, else <hostname>:7999).",
        ),
      hostKeyFingerprint: hostKeyFingerprint(z)
        .optional()
        .describe("Pin the server's SSH host key (SHA256:…)."),
      concurrency: z
        .number()
        .int()
        .min(1)
        .max(16)
        .default(4)
        .describe('Clusters installed at once, 1 to 16 (default 4).'),
      timeout: duration(z)
        .default('5m')
        .describe(
          "How long one cluster's install may take, e.g. 5m (default), 90s, 1h.",
        ),
      force: z
        .boolean()
        .default(false)
        .describe(
          'Take over Flux installations managed by another tool (default false).',
        ),
      allowDowngrade: z
        .boolean()
        .default(false)
        .describe(
          'Install an older Flux version than the one in the repository or on a cluster (default false: refused; Flux does not support downgrades in general).',
        ),
    })
    .superRefine((v, ctx) => {
      if (!v.tokenAuth) return;
      for (const [field, unset] of Object.entries(SSH_ONLY)) {
        const value = v[field as keyof typeof SSH_ONLY];
        if (value !== undefined && value !== unset)
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message:
              'only applies to SSH access keys; with tokenAuth Flux syncs over HTTPS and no key is made',
          });
      }
    }),
);

/** The summary: one row per cluster (state, applied revision, error). */
function summaryTable(rows: FleetClusterResult[]): string {
  const cell = (s = '') => s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
  return [
    '| Cluster | State | Applied revision | Error |',
    '| --- | --- | --- | --- |',
    ...rows.map(
      r =>
        `| ${r.cluster} | ${r.state} | ${cell(r.revision)} | ${cell(
          r.error,
        )} |`,
    ),
  ].join('\n');
}

/**
 * `flux:bootstrap-fleet`: parses its input and runs the engine's `bootstrapFleet`; fails, after
 * writing its outputs, when a cluster failed.
 * @public
 */
export function createFluxBootstrapFleetAction(
  options: FluxBootstrapActionOptions,
) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:bootstrap-fleet',
    description:
      'Bootstraps Flux on many clusters from one fleet repository: the repository once, the Flux files of every cluster in one pair of commits, then per cluster (in parallel, bounded) its deploy key and the install. Clusters already synced are left alone; one failing cluster does not stop the others.',
    examples,
    supportsDryRun: true,
    schema: {
      input: fleetInput.schema,
      output: z =>
        z.object({
          repoContentsUrl: z
            .string()
            .describe('URL to browse the repository in Bitbucket.'),
          commitHash: z
            .string()
            .describe("Head of the branch after the push ('' in a dry run)."),
          revision: z
            .string()
            .describe(
              '<branch>@sha1:<commitHash>, what every cluster applies (<branch>@sha1: in a dry run).',
            ),
          changed: z.boolean().describe('True when this run committed.'),
          clusters: z
            .array(
              z.object({
                cluster: z.string(),
                path: z.string(),
                state: z.enum(['ready', 'unchanged', 'failed', 'planned']),
                revision: z.string().optional(),
                error: z.string().optional(),
              }),
            )
            .describe(
              'One entry per cluster: ready (installed now), unchanged (Flux had applied the revision already: nothing written), failed (with the error), or in a dry run planned (the cluster was read and would be bootstrapped).',
            ),
          summary: z
            .string()
            .describe(
              'Markdown table of the clusters: state, applied revision, error.',
            ),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = fleetInput.parse(ctx.input);
        const settings = await settingsSource.get();
        const { algorithm, ecdsaCurve, namespace, secretName } = input;
        const result = await bootstrapFleet(
          {
            ...input,
            bitbucket: bitbucketAccess(settings, input),
            flux: {
              ...fluxComponentOptions(input),
              ...{ namespace, secretName, interval: input.interval },
            },
            key: { ...SSH_KEY_DEFAULTS, algorithm, ecdsaCurve },
            author: { name: 'Flux', email: '' },
            timeoutMs: input.timeout,
            tokenAuth: input.tokenAuth ? input : undefined,
            dryRun: ctx.isDryRun,
          },
          {
            settings,
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        const summary = summaryTable(result.clusters);
        summary.split('\n').forEach(line => logger.info(line));
        writeOutputs(ctx, { ...result, summary });
        const failed = result.clusters.filter(c => c.state === 'failed');
        if (failed.length) {
          const why = failed.map(c => `${c.cluster}: ${c.error}`).join('; ');
          throw new ServiceUnavailableError(
            `${failed.length} of ${result.clusters.length} clusters failed — ${why}. The others are done; run the template again to retry only the failed ones.\n${summary}`,
          );
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
