import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import { InputError } from '@backstage/errors';
import {
  BitbucketServerClient,
  type BitbucketServerHostConfig,
  type EngineLogger,
  isBitbucketError,
  type Redactor,
  resolveTokenOwner,
  buildFluxInstallPlan,
  checkKubernetesVersion,
  createKubeClient,
  generateComponentObjects,
  generateSyncManifest,
  booleanInput,
  InputValidationError,
  installFluxOrAwaitPullRequest,
  isPendingRevision,
  loadFluxBundle,
  parseGoDuration,
  resolveCluster,
  resolveFluxManifestOptions,
  tokenAuthSecret,
  validateExpectedRevision,
  type FluxBootstrapSettings,
  type KubeObject,
  type ResolvedFluxManifestOptions,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  fluxComponentOptions,
  fluxComponentOptionsInput,
} from './shared/fluxOptions';
import { examples } from './install.examples';
import {
  actionSettings,
  checkpointFor,
  createActionRedaction,
  FluxBootstrapActionOptions,
  toActionError,
  withDefault,
} from './shared/context';

/** `timeout`: a Go duration (`5m`, `90s`, `1h`) between 10 s and 24 h. */
function parseTimeout(value: unknown): number {
  const text = typeof value === 'string' ? value.trim() : '';
  const ms = text ? parseGoDuration(text) : undefined;
  if (ms === undefined) {
    throw new InputValidationError(
      'timeout',
      'must be a duration such as 5m, 90s or 1h',
    );
  }
  if (ms < 10_000 || ms > 24 * 3_600_000) {
    throw new InputValidationError('timeout', 'must be between 10s and 24h');
  }
  return ms;
}

/**
 * Credentials for `tokenAuth`: the token input (a Secret field), else the Bitbucket integration
 * of the sync URL's host; username from the input, else the integration. The CA of that host
 * (`fluxBootstrap.bitbucketServer[].caData/caFile`) goes into `ca.crt`.
 */
function resolveTokenAuth(
  settings: FluxBootstrapSettings,
  input: { token?: string; username?: string },
  syncUrl: string,
): {
  username?: string;
  password: string;
  host?: BitbucketServerHostConfig;
  caPem?: string;
  source: string;
} {
  const url = new URL(syncUrl);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new InputValidationError(
      'syncUrl',
      'must be an https:// URL when tokenAuth is on (Flux sends the token over HTTPS)',
    );
  }
  const host = settings.bitbucketServer.find(h => {
    try {
      return new URL(h.baseUrl).host === url.host;
    } catch {
      return false;
    }
  });
  const requireUser = settings.requireScmUserCredentials;
  const inputToken = input.token?.trim();
  let password: string | undefined = inputToken;
  let username = input.username?.trim() || undefined;
  let source = 'the token input';
  if (!password) {
    if (requireUser) {
      throw new InputValidationError(
        'token',
        "is required with tokenAuth: scaffolder.requireScmUserCredentials is enabled, so the integration's credentials are not stored in the cluster",
      );
    }
    const auth = host?.auth;
    if (!auth) {
      throw new InputValidationError(
        'token',
        `is required with tokenAuth: no integrations.bitbucketServer entry with credentials matches ${url.host}`,
      );
    }
    if ('token' in auth) {
      password = auth.token;
    } else {
      password = auth.password;
      username ??= auth.username;
    }
    source = `the integration credentials of ${host!.host}`;
  }
  if (!username && !host) {
    throw new InputValidationError(
      'username',
      `is required with tokenAuth: Bitbucket Server checks Git-over-HTTPS logins against the token's owner, and no integrations.bitbucketServer entry matches ${url.host} to ask who that is`,
    );
  }
  return { username, password, host, caPem: host?.caPem, source };
}

/**
 * The owner of the token Flux will sign in with (Bitbucket's `X-AUSERNAME`), when no username is
 * given. A project or repository access token (no user) is an InputError naming the token.
 */
async function tokenOwner(
  host: BitbucketServerHostConfig,
  token: string,
  deps: {
    source: string;
    logger: EngineLogger;
    redactor: Redactor;
    signal?: AbortSignal;
  },
): Promise<string> {
  const client = new BitbucketServerClient(host, { token }, deps);
  try {
    const owner = await resolveTokenOwner(client, {
      signal: deps.signal,
      credentials: deps.source,
      field: 'token',
    });
    return owner.name;
  } catch (error) {
    if (error instanceof InputError || isBitbucketError(error, 'unauthorized'))
      throw error;
    throw new InputValidationError(
      'username',
      `is required with tokenAuth: Bitbucket Server checks Git-over-HTTPS logins against the token's owner, and Bitbucket ${
        host.host
      } did not say who that is (${(error as Error).message})`,
    );
  }
}

/** What the wait is for, in words (a dry run's revision has no commit yet). */
function describeExpected(revision: string | undefined, branch: string) {
  if (!revision) return `the head of ${branch}`;
  if (isPendingRevision(revision)) {
    return `the commit flux:push-manifests pushes to ${branch} (${revision}<sha>; a dry run pushes nothing, so the commit is known only in a real run)`;
  }
  return revision;
}

function dryRunLines(
  clusterName: string,
  resolved: ResolvedFluxManifestOptions,
  syncYaml: string,
  secret: KubeObject | undefined,
  opts: { revision?: string; wait: boolean; force: boolean; timeoutMs: number },
): string[] {
  const ns = resolved.namespace;
  const lines = [
    `Would install Flux ${
      resolved.components.version
    } on cluster "${clusterName}" in namespace ${ns}${
      opts.force ? " (taking over another manager's installation: force)" : ''
    }:`,
    `  1. check that the credentials may install Flux (SelfSubjectAccessReview), that no other tool manages it, and that Kustomization ${ns}/${ns} does not sync another path`,
    `  2. server-side apply (field manager flux) the components ${resolved.components.components.join(
      ', ',
    )} from the Flux ${
      resolved.components.version
    } bundle: CRDs and the Namespace first, then the rest — unless Flux already syncs itself`,
  ];
  if (secret) {
    lines.push(
      `  3. Secret ${ns}/${secret.metadata.name} with keys ${Object.keys(
        (secret.data as Record<string, string>) ?? {},
      ).join(', ')} (values not shown)`,
    );
  }
  lines.push(`  ${secret ? 4 : 3}. the sync objects:`);
  for (const line of syncYaml.trimEnd().split('\n'))
    lines.push(`       ${line}`);
  lines.push(
    opts.wait
      ? `  then wait up to ${Math.round(
          opts.timeoutMs / 1000,
        )} s until Flux reconciled ${describeExpected(
          opts.revision,
          resolved.branch,
        )} and its controllers are available`
      : '  and not wait (wait: false)',
  );
  return lines;
}

/**
 * `flux:install` — puts Flux on a cluster and waits until it syncs from Git, as `flux bootstrap`
 * does: preconditions, staged server-side apply with field manager `flux`, the sync objects (and
 * for token auth the credentials Secret), then the wait for the pushed revision and healthy
 * controllers. A thin adapter over the engine's `installFlux`.
 * @public
 */
export function createFluxInstallAction(options: FluxBootstrapActionOptions) {
  const settingsSource = actionSettings(options);
  return createTemplateAction({
    id: 'flux:install',
    description:
      'Installs Flux on a Kubernetes cluster (as flux bootstrap does: components by server-side apply with field manager flux, then the GitRepository and Kustomization) and waits until it applied the pushed revision and its controllers are available.',
    examples,
    supportsDryRun: true,
    schema: {
      input: {
        cluster: z =>
          z
            .string()
            .describe(
              'Cluster to install Flux on: a name from kubernetes.clusterLocatorMethods (type config), or a kubeconfig context when fluxBootstrap.allowKubeconfigContexts is on. Its credentials need cluster-admin rights.',
            ),
        syncUrl: z =>
          z
            .string()
            .describe(
              'URL Flux clones the fleet repository from (GitRepository spec.url): ssh://… (the Secret from flux:generate-key) or https://… with tokenAuth.',
            ),
        path: z =>
          z
            .string()
            .describe(
              'Cluster path in the repository, e.g. clusters/my-cluster (as for flux:push-manifests).',
            ),
        branch: z =>
          z.string().optional().describe('Branch Flux syncs (default main).'),
        revision: z =>
          z
            .string()
            .optional()
            .describe(
              'Revision flux:push-manifests pushed, <branch>@sha1:<sha>; the action waits until Flux applied it. Without it, it waits for whatever the branch head is. A dry run also accepts <branch>@sha1: without a commit, as a dry run of flux:push-manifests outputs it.',
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
            .describe('Secret with the Git credentials (default flux-system).'),
        ...fluxComponentOptionsInput,
        interval: z =>
          z
            .string()
            .optional()
            .describe('GitRepository interval (default 1m).'),
        recurseSubmodules: z =>
          z
            .boolean()
            .optional()
            .describe('Clone Git submodules too (default false).'),
        tokenAuth: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Sync over HTTPS with a token stored in the Secret (username, password, and ca.crt when the Bitbucket host has a CA configured) instead of the SSH deploy key (default false).',
            ),
        token: z =>
          z
            .string()
            .optional()
            .describe(
              "With tokenAuth: the Bitbucket HTTP access token Flux reads the repository with (pass a ui:field Secret as ${{ secrets.token }}). Without it the integration's credentials are used, unless scaffolder.requireScmUserCredentials is on.",
            ),
        username: z =>
          z
            .string()
            .optional()
            .describe(
              "With tokenAuth: the token owner's Bitbucket user name (default the integration's username, else the token's owner as Bitbucket names it).",
            ),
        pullRequest: z =>
          z
            .string()
            .regex(/\/pull-requests\/\d+\/?$/)
            .optional()
            .describe(
              "flux:push-manifests' pullRequestUrl output: Flux is installed at once, then the action waits (within timeout, with token or the integration's credentials) until the pull request is merged and Flux applied the merge commit.",
            ),
        timeout: z =>
          z
            .string()
            .optional()
            .describe(
              'How long the whole install may take, e.g. 5m (default), 90s, 1h.',
            ),
        wait: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Wait until Flux synced the revision and its controllers are available (default true).',
            ),
        force: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Take over a Flux installation managed by another tool (label app.kubernetes.io/managed-by) (default false).',
            ),
        allowDowngrade: z =>
          z
            .boolean()
            .optional()
            .describe(
              'Install an older Flux version than the one on the cluster (default false: refused; Flux does not support downgrades in general).',
            ),
      },
      output: {
        fluxVersion: z =>
          z.string().describe('The Flux release installed, e.g. v2.9.4.'),
        revision: z =>
          z
            .string()
            .optional()
            .describe('The revision Flux applied, <branch>@sha1:<sha>.'),
        ready: z =>
          z
            .boolean()
            .describe(
              'True when Flux synced the revision and every controller is available.',
            ),
        components: z =>
          z
            .array(
              z.object({
                name: z.string(),
                ready: z.boolean(),
                image: z.string().optional(),
              }),
            )
            .describe('The Flux controllers: name, ready, image.'),
      },
    },
    async handler(ctx) {
      const { redactor, logger } = createActionRedaction(ctx, [
        ctx.input.token,
      ]);
      try {
        // Every input is validated (defaults applied here: zod defaults are not applied at
        // runtime) before anything is read or sent.
        const input = ctx.input;
        const settings = await settingsSource.get();
        const source = settings.manifests;
        const resolved = resolveFluxManifestOptions(
          {
            ...fluxComponentOptions(input),
            namespace: input.namespace,
            path: input.path,
            branch: input.branch,
            secretName: input.secretName,
            syncUrl: input.syncUrl,
            interval: input.interval,
            recurseSubmodules: input.recurseSubmodules,
          },
          { fluxVersion: source.defaultVersion },
        );
        const cluster = resolveCluster(settings, input.cluster, 'cluster');
        const wait = booleanInput('wait', input.wait, true);
        const force = booleanInput('force', input.force, false);
        const tokenAuth = booleanInput('tokenAuth', input.tokenAuth, false);
        const timeoutMs = parseTimeout(withDefault(input.timeout, '5m'));
        // In a dry run flux:push-manifests pushes nothing, so its revision has no commit
        // (`<branch>@sha1:`); that is accepted then, and only then.
        const revision = validateExpectedRevision(
          input.revision,
          resolved.branch,
          'revision',
          { allowPendingCommit: ctx.isDryRun === true },
        );
        const namespace = resolved.namespace;

        let secret: KubeObject | undefined;
        if (tokenAuth) {
          const auth = resolveTokenAuth(settings, input, resolved.sync.url);
          redactor.add(auth.password);
          // No username: the token's owner, asked of Bitbucket (a dry run sends nothing).
          auth.username ??= ctx.isDryRun
            ? "the token's owner"
            : await tokenOwner(auth.host!, auth.password, {
                source: auth.source,
                logger,
                redactor,
                signal: ctx.signal,
              });
          secret = tokenAuthSecret({
            namespace,
            name: resolved.sync.secretName,
            username: auth.username,
            password: auth.password,
            caPem: auth.caPem,
          });
          logger.info(
            `Token auth: Secret ${namespace}/${
              resolved.sync.secretName
            } gets user "${auth.username}" and the token from ${auth.source}${
              auth.caPem ? ', plus ca.crt' : ''
            }`,
          );
        }
        const syncYaml = generateSyncManifest(resolved.sync);

        if (ctx.isDryRun) {
          // Like flux check --pre: the cluster's version is the one thing a dry run reads; an
          // unsupported one fails it, an unreachable cluster only warns (the real run checks).
          const probe = await createKubeClient(cluster, {
            logger,
            redactor,
            retries: 0,
            requestTimeoutMs: 10_000,
          });
          await checkKubernetesVersion(
            probe,
            resolved.components.version,
            settings.kubernetesVersions,
            { signal: ctx.signal, logger },
          )
            .catch(e => {
              if (e instanceof InputError) throw e;
              logger.warn(
                `Could not check the Kubernetes version of cluster "${cluster.name}": ${e.message}`,
              );
            })
            .finally(() => probe.close());
          logger.info(
            'Dry run of flux:install; nothing is written to the cluster.',
          );
          for (const line of dryRunLines(
            cluster.name,
            resolved,
            syncYaml,
            secret,
            {
              revision,
              wait,
              force,
              timeoutMs,
            },
          )) {
            logger.info(line);
          }
          ctx.output('fluxVersion', resolved.components.version);
          if (revision) ctx.output('revision', revision);
          ctx.output('ready', false);
          ctx.output('components', []);
          return;
        }

        const bundle = await loadFluxBundle(
          resolved.components.version,
          source,
          {
            signal: ctx.signal,
            logger,
          },
        );
        const plan = buildFluxInstallPlan({
          namespace,
          fluxVersion: resolved.components.version,
          components: resolved.components.components,
          componentObjects: generateComponentObjects(
            bundle.files,
            resolved.components,
          ),
          syncYaml,
          secret,
          expectedRevision: revision,
        });

        const kube = await createKubeClient(cluster, { logger, redactor });
        try {
          const result = await installFluxOrAwaitPullRequest(kube, plan, {
            pullRequest: input.pullRequest || undefined,
            bitbucketHosts: settings.bitbucketServer,
            token: input.token,
            redactor,
            force,
            allowDowngrade: input.allowDowngrade === true,
            kubernetesVersions: settings.kubernetesVersions,
            wait,
            timeoutMs,
            signal: ctx.signal,
            logger,
            checkpoint: checkpointFor(ctx),
          });
          ctx.output('fluxVersion', result.fluxVersion);
          if (result.revision) ctx.output('revision', result.revision);
          ctx.output('ready', result.ready);
          ctx.output(
            'components',
            result.components.map(c => ({
              name: c.name,
              ready: c.ready,
              ...(c.image ? { image: c.image } : {}),
            })),
          );
          logger.info(
            result.ready
              ? `✔ Flux ${result.fluxVersion} is installed on cluster "${
                  cluster.name
                }" and synced ${result.revision ?? ''}`
              : `Flux ${result.fluxVersion} is applied on cluster "${cluster.name}" (not waited for readiness)`,
          );
        } finally {
          kube.close();
        }
      } catch (error) {
        throw toActionError(error, redactor);
      }
    },
  });
}
