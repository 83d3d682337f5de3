import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { z as zod } from 'zod/v3';
import { installFluxOnCluster } from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { docs, examples } from './install.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
} from './shared/context';
import { gitBranch, repoPath } from './shared/domainInputs';
import {
  checkRevision,
  fluxComponentOptionsInput,
  fluxSyncOptionsInput,
  goDuration,
  refineComponents,
  syncUrl,
} from './shared/fluxOptions';
import { actionInput, writeOutputs } from './shared/io';
import {
  fluxOperatorInput,
  operatorRequest,
  refineOperator,
} from './shared/operatorOptions';

/** The input of flux:install: one schema, documented and parsed. */
export const installInput = actionInput((z: typeof zod) => {
  const sync = fluxSyncOptionsInput(z);
  return z
    .object({
      cluster: z
        .string()
        .describe(
          'Cluster to install Flux on: a name from kubernetes.clusterLocatorMethods (type config), or a kubeconfig context when fluxBootstrap.allowKubeconfigContexts is on. Its credentials need cluster-admin rights.',
        ),
      syncUrl: syncUrl(z).describe(
        'URL Flux clones the fleet repository from (GitRepository spec.url): ssh://… (the Secret from flux:generate-key) or https://… with tokenAuth.',
      ),
      path: repoPath(z).describe(
        'Cluster path in the repository, e.g. clusters/my-cluster (as for flux:push-manifests).',
      ),
      branch: gitBranch(z)
        .default('main')
        .describe('Branch Flux syncs (default main).'),
      revision: z
        .string()
        .optional()
        .describe(
          'Revision flux:push-manifests pushed, <branch>@sha1:<sha>; the action waits until Flux applied it. Without it, it waits for whatever the branch head is. A dry run also accepts <branch>@sha1: without a commit, as a dry run of flux:push-manifests outputs it.',
        ),
      namespace: sync.namespace.describe(
        'Namespace of Flux (default flux-system).',
      ),
      secretName: sync.secretName.describe(
        'Secret with the Git credentials (default flux-system).',
      ),
      ...fluxComponentOptionsInput(z),
      interval: sync.interval.describe('GitRepository interval (default 1m).'),
      recurseSubmodules: sync.recurseSubmodules.describe(
        'Clone Git submodules too (default false).',
      ),
      tokenAuth: z
        .boolean()
        .default(false)
        .describe(
          'Sync over HTTPS with a token stored in the Secret (username, password, and ca.crt when the Bitbucket host has a CA configured) instead of the SSH deploy key (default false).',
        ),
      token: z
        .string()
        .optional()
        .describe(
          "With tokenAuth: the Bitbucket HTTP access token Flux reads the repository with (pass a ui:field Secret as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
        ),
      username: z
        .string()
        .optional()
        .describe(
          "With tokenAuth: the token owner's Bitbucket user name (default the integration's username, else the token's owner as Bitbucket names it).",
        ),
      pullRequest: z
        .string()
        .regex(
          /\/pull-requests\/\d+\/?$/,
          "must be flux:push-manifests' pullRequestUrl output (…/pull-requests/<id>)",
        )
        .optional()
        .describe(
          "flux:push-manifests' pullRequestUrl output: Flux is installed at once, then the action waits (within timeout, with token, else the integration's credentials unless scaffolder.requireScmUserCredentials is on) until the pull request is merged and Flux applied the merge commit.",
        ),
      timeout: goDuration(z, '5m, 90s or 1h')
        .default('5m')
        .describe(
          'How long the whole install may take, e.g. 5m (default), 90s, 1h.',
        ),
      wait: z
        .boolean()
        .default(true)
        .describe(
          'Wait until Flux synced the revision and its controllers are available (default true).',
        ),
      force: z
        .boolean()
        .default(false)
        .describe(
          'Take over a Flux installation managed by another tool (label app.kubernetes.io/managed-by) (default false).',
        ),
      ...fluxOperatorInput(z),
      allowDowngrade: z
        .boolean()
        .default(false)
        .describe(
          'Install an older Flux version than the one on the cluster (default false: refused; Flux does not support downgrades in general).',
        ),
    })
    .superRefine((v, ctx) => {
      const checked = v.revision && checkRevision(v.revision, v.branch);
      if (checked && 'problem' in checked) {
        ctx.addIssue({
          code: 'custom',
          path: ['revision'],
          message: checked.problem,
        });
      }
      refineComponents(v, ctx);
      refineOperator(v, ctx);
    })
    .transform(v => {
      const checked = v.revision && checkRevision(v.revision, v.branch);
      const revision = checked && 'revision' in checked && checked.revision;
      return { ...v, revision: revision || undefined };
    });
});

/**
 * `flux:install`: puts Flux on a cluster and waits until it syncs from Git, as `flux bootstrap`
 * does. A thin adapter over the engine's `installFluxOnCluster`.
 * @public
 */
export function createFluxInstallAction(options: FluxBootstrapActionOptions) {
  const settingsSource = actionSettings(options);
  const action = createTemplateAction({
    id: 'flux:install',
    description:
      'Installs Flux on a Kubernetes cluster as flux bootstrap does and waits until it applied the pushed revision and its controllers are available.',
    examples,
    supportsDryRun: true,
    schema: {
      input: installInput.schema,
      output: z =>
        z.object({
          fluxVersion: z
            .string()
            .describe('The Flux release installed, e.g. v2.9.4.'),
          revision: z
            .string()
            .optional()
            .describe('The revision Flux applied, <branch>@sha1:<sha>.'),
          ready: z
            .boolean()
            .describe(
              'True when Flux synced the revision and every controller is available.',
            ),
          components: z
            .array(
              z.object({
                name: z.string(),
                ready: z.boolean(),
                image: z.string().optional(),
              }),
            )
            .describe('The Flux controllers: name, ready, image.'),
          username: z
            .string()
            .optional()
            .describe(
              "With tokenAuth: the user name in the Secret (the token's owner unless given; not in a dry run).",
            ),
        }),
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        const input = installInput.parse(ctx.input);
        const { manifests, operator } = operatorRequest(input);
        const result = await installFluxOnCluster(
          {
            cluster: input.cluster,
            manifests,
            operator,
            revision: input.revision,
            tokenAuth: input.tokenAuth ? input : undefined,
            timeoutMs: input.timeout,
            wait: input.wait,
            force: input.force,
            allowDowngrade: input.allowDowngrade,
            pullRequest: input.pullRequest
              ? { url: input.pullRequest, token: input.token }
              : undefined,
            dryRun: ctx.isDryRun,
          },
          {
            settings: await settingsSource.get(),
            logger,
            redactor,
            signal: ctx.signal,
            checkpoint: checkpointFor(ctx),
          },
        );
        writeOutputs(ctx, result);
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
  return Object.assign(action, { docs });
}
