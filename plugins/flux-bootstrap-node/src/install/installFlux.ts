import { ConflictError, InputError } from '@backstage/errors';
import { resolveTokenOwner } from '../bitbucket/access';
import { chooseBitbucketCredentials } from '../bitbucket/credentials';
import { BitbucketServerClient } from '../bitbucket/client';
import { isBitbucketError } from '../bitbucket/errors';
import type { FluxBootstrapSettings } from '../config/settings';
import { createKubeClient } from '../kube/client';
import { resolveCluster } from '../kube/cluster';
import type { KubeClient, KubeObject } from '../kube/types';
import { loadFluxBundle } from '../manifests/bundle';
import type { FluxOperatorOptions } from '../operator/instance';
import {
  fluxOperatorDryRunLines,
  installWithFluxOperator,
  refuseBootstrapOverFluxInstance,
} from '../operator/install';
import { generateComponentObjects } from '../manifests/components';
import {
  resolveFluxManifestOptions,
  type FluxManifestInput,
  type ResolvedFluxManifestOptions,
} from '../manifests/options';
import { generateSyncManifest } from '../manifests/sync';
import { checkFluxVersionChange } from '../upgrade/fluxVersions';
import {
  checkKubernetesVersion,
  type KubernetesVersionSupport,
} from '../upgrade/kubernetesVersions';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { InputValidationError, OperationAbortedError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import { applyStaged, summarizeApplied, type AppliedObject } from './apply';
import { FluxInstallError } from './errors';
import {
  installFluxOrAwaitPullRequest,
  pullRequestAccess,
  type PullRequestInstall,
} from './pullRequestMerge';
import {
  buildFluxInstallPlan,
  isPendingRevision,
  tokenAuthSecret,
  type FluxInstallPlan,
} from './plan';
import { checkInstallPreconditions } from './preconditions';
import {
  readFluxReadiness,
  waitForFlux,
  withTimeout,
  type FluxComponentReadiness,
} from './wait';

/** Options of {@link installFlux}. @public */
export interface InstallFluxOptions {
  /** Field manager of every apply. Default `flux` (the same result as a CLI bootstrap). */
  fieldManager?: string;
  force?: boolean;
  /** Wait until Flux synced the revision and its controllers are available. Default true. */
  wait?: boolean;
  /** One budget for preconditions, apply and wait. Default 5 min. */
  timeoutMs?: number;
  concurrency?: number;
  /** Wait poll interval. Default 2 s. */
  pollIntervalMs?: number;
  /** At most this long between two progress lines. Default 5 s. */
  progressIntervalMs?: number;
  signal?: AbortSignal;
  logger?: EngineLogger;
  checkpoint?: CheckpointFn;
  /** Kubernetes range per Flux minor: the cluster's version is checked first, as `flux check --pre`. */
  kubernetesVersions?: KubernetesVersionSupport[];
  /** Replace a newer installed Flux by `plan.fluxVersion` (warns). Default false: refused. */
  allowDowngrade?: boolean;
}

/** What {@link installFlux} did and found. @public */
export interface InstallFluxResult {
  fluxVersion: string;
  /** Revision Flux applied (or attempted), e.g. `main@sha1:…`. */
  revision?: string;
  ready: boolean;
  components: FluxComponentReadiness[];
  /** False when Flux already synced itself (Kustomization had a lastAppliedRevision). */
  componentsApplied: boolean;
  applied: AppliedObject[];
}

/**
 * Installs Flux as `flux bootstrap` does (spec §3.2–3.5): preconditions (nothing applied on
 * failure); the components, server-side applied in two stages unless Flux already syncs itself
 * (it upgrades itself from Git); the token Secret, GitRepository and Kustomization; the wait.
 * Each step is idempotent and checkpointed: a re-run on a healthy cluster changes nothing.
 * @public
 */
export async function installFlux(
  client: KubeClient,
  plan: FluxInstallPlan,
  opts: InstallFluxOptions = {},
): Promise<InstallFluxResult> {
  const logger = opts.logger ?? silentLogger;
  const checkpoint = opts.checkpoint ?? runCheckpointDirectly;
  const fieldManager = opts.fieldManager ?? 'flux';
  const timeoutMs = opts.timeoutMs ?? 5 * 60_000;
  const startedAt = Date.now();
  const { timeout, signal } = withTimeout(timeoutMs, opts.signal);
  const { clusterName: cluster } = client;
  const ns = plan.namespace;
  let phase = 'checking the preconditions';
  const applied: AppliedObject[] = [];
  const done: string[] = [];
  // The namespace is ensured first unless the step brings it.
  const applyStep = async (
    key: string,
    what: string,
    label: string,
    objects: readonly KubeObject[],
  ) => {
    phase = `applying ${what}`;
    const results = await checkpoint(key, async () => {
      if (key !== 'components')
        await client.ensureNamespace(ns, { fieldManager, signal });
      return applyStaged(client, objects, {
        fieldManager,
        force: true,
        concurrency: opts.concurrency,
        signal,
        logger,
      });
    });
    applied.push(...results);
    done.push(`${what} applied (${summarizeApplied(results)})`);
    logger.info(`✔ ${label}: ${summarizeApplied(results)}`);
  };
  try {
    logger.info(`Checking that Flux can be installed on cluster "${cluster}"`);
    const state = await checkpoint('preconditions', async () => {
      // Like flux check --pre, the version comes first.
      if (opts.kubernetesVersions)
        await checkKubernetesVersion(
          client,
          plan.fluxVersion,
          opts.kubernetesVersions,
          { signal, logger },
        );
      // Going back from the Flux Operator (operator/install.ts) is refused.
      await refuseBootstrapOverFluxInstance(client, ns, signal);
      const s = await checkInstallPreconditions(client, plan, {
        force: opts.force,
        signal,
      });
      checkFluxVersionChange(s.installedVersion, plan.fluxVersion, {
        where: `installed on cluster "${cluster}"`,
        allowDowngrade: opts.allowDowngrade,
        logger,
      });
      return {
        installComponents: s.installComponents,
        lastAppliedRevision: s.lastAppliedRevision ?? null,
        managedBy: s.managedBy ?? null,
      };
    });
    if (state.managedBy && state.managedBy !== 'flux')
      logger.warn(
        `Taking over the Flux installation managed by "${state.managedBy}" (force)`,
      );
    done.push('preconditions checked');
    if (state.installComponents) {
      logger.info(
        `Installing Flux ${plan.fluxVersion} components in namespace "${ns}" (${plan.componentObjects.length} objects)`,
      );
      await applyStep(
        'components',
        'the Flux components',
        'installed components',
        plan.componentObjects,
      );
    } else {
      logger.info(
        `Flux already syncs itself on cluster "${cluster}" (Kustomization ${ns}/${ns} applied ${state.lastAppliedRevision}); components are not applied, Flux upgrades them from Git`,
      );
    }
    if (plan.secret)
      await applyStep(
        'secret',
        'the Git credentials Secret',
        `reconciled source secret ${ns}/${plan.secret.metadata.name}`,
        [plan.secret],
      );
    await applyStep(
      'sync',
      'the sync configuration',
      'reconciled sync configuration',
      plan.syncObjects,
    );

    phase = 'waiting for Flux';
    const readiness = await checkpoint('wait', async () => {
      if (opts.wait !== false) {
        return waitForFlux(client, plan, {
          ...opts,
          timeoutMs: Math.max(1, timeoutMs - (Date.now() - startedAt)),
          logger,
        });
      }
      const r = await readFluxReadiness(client, plan, signal);
      logger.info(
        r.ready
          ? `Flux on cluster "${cluster}" is ready`
          : `Not waiting for Flux (wait: false); not ready yet: ${r.pending.join(
              '; ',
            )}`,
      );
      return r;
    });
    return {
      fluxVersion: plan.fluxVersion,
      revision: readiness.revision ?? plan.expectedRevision,
      ready: readiness.ready,
      components: readiness.components,
      componentsApplied: state.installComponents,
      applied,
    };
  } catch (e) {
    // Refusals of the preconditions (Kubernetes version, downgrade) say themselves what is wrong.
    if (
      e instanceof FluxInstallError ||
      e instanceof InputError ||
      e instanceof ConflictError
    )
      throw e;
    if (timeout.aborted)
      throw new FluxInstallError(
        'timeout',
        `Flux install on cluster "${cluster}" timed out after ${Math.round(
          timeoutMs / 1000,
        )} s while ${phase}`,
        [phase],
      );
    if (e instanceof OperationAbortedError) throw e;
    if (opts.signal?.aborted)
      throw new OperationAbortedError(
        `Cancelled while ${phase} on cluster "${cluster}"`,
      );
    // A request failed for good (unreachable cluster, API errors after retries): say where the
    // install stopped and what is already on the cluster, so nothing half-applied goes unreported.
    const interrupted = new FluxInstallError(
      'interrupted',
      `Flux install on cluster "${cluster}" stopped while ${phase}: ${
        e instanceof Error ? e.message : String(e)
      }. ${
        done.length
          ? `Done before that: ${done.join('; ')}.`
          : 'Nothing was applied.'
      }${
        phase.startsWith('applying')
          ? ' Some objects of the step that stopped may already be applied.'
          : ''
      } Nothing is rolled back: objects already applied stay as they are. Run the template again once the cluster answers; the install continues where it stopped (identical objects are not re-applied).`,
      [phase],
    );
    (interrupted as { cause?: unknown }).cause = e;
    throw interrupted;
  }
}

/** A parsed flux:install request. @public */
export interface InstallFluxRequest {
  /** A configured cluster (or kubeconfig context, when allowed). */
  cluster: string;
  manifests: FluxManifestInput;
  /** `<branch>@sha1:<sha>` Flux must reach; `<branch>@sha1:` (no commit) only in a dry run. */
  revision?: string;
  /** Sync over HTTPS with a token Secret: the token (else the integration's) and its user. */
  tokenAuth?: { token?: string; username?: string };
  /** One budget for preconditions, apply and wait. Default 5 min. */
  timeoutMs?: number;
  wait?: boolean;
  force?: boolean;
  /** Replace a newer Flux (in the cluster) by an older one, with a warning. Default false. */
  allowDowngrade?: boolean;
  /** flux:push-manifests' pull request (browse URL): Flux is installed, then awaited at its merge. */
  pullRequest?: { url: string; token?: string };
  /** Describe what would be applied; only the cluster's Kubernetes version is read. */
  dryRun?: boolean;
  /** `distribution: operator`: install through the Flux Operator (a FluxInstance). */
  operator?: Omit<FluxOperatorOptions, 'version'> & { version?: string };
}

/** What {@link installFluxOnCluster} works with. @public */
export interface InstallFluxDeps {
  settings: Pick<
    FluxBootstrapSettings,
    | 'manifests'
    | 'clusters'
    | 'allowKubeconfigContexts'
    | 'bitbucketServer'
    | 'requireScmUserCredentials'
    | 'kubernetesVersions'
    | 'operatorManifests'
  >;
  logger: EngineLogger;
  redactor?: Redactor;
  signal?: AbortSignal;
  checkpoint?: CheckpointFn;
  /** Poll interval of the wait. Default 2 s. */
  pollIntervalMs?: number;
}

/** What {@link installFluxOnCluster} did: public data only. @public */
export type InstallFluxOnClusterResult = Pick<
  InstallFluxResult,
  'fluxVersion' | 'revision' | 'ready' | 'components'
> & {
  /** With token auth: the user name the Secret holds. */
  username?: string;
};

/**
 * flux:install: resolves the cluster and, for token auth, the credentials (`username` defaults to
 * the token's owner) before anything is sent, then {@link installFlux}, or a dry run describes it.
 * @public
 */
export async function installFluxOnCluster(
  req: InstallFluxRequest,
  deps: InstallFluxDeps,
): Promise<InstallFluxOnClusterResult> {
  const redactor = deps.redactor ?? new Redactor();
  const logger = redactor.wrapLogger(deps.logger);
  const ctx = { ...deps, logger, redactor };
  const { settings, signal } = deps;
  try {
    const options = resolveFluxManifestOptions(req.manifests, {
      fluxVersion: settings.manifests.defaultVersion,
    });
    const cluster = resolveCluster(settings, req.cluster, 'cluster');
    const pullRequest =
      req.pullRequest &&
      pullRequestAccess(
        req.pullRequest.url,
        settings.bitbucketServer,
        req.pullRequest.token,
        settings.requireScmUserCredentials,
      );
    if (!req.dryRun && isPendingRevision(req.revision))
      throw new InputValidationError(
        'revision',
        `must be <branch>@sha1:<commit sha> as flux:push-manifests outputs it (got "${req.revision}")`,
      );
    const auth =
      req.tokenAuth &&
      (await tokenAuthCredentials(req.tokenAuth, options, ctx, req.dryRun));
    const secret =
      auth &&
      tokenAuthSecret({
        namespace: options.namespace,
        name: options.sync.secretName,
        username: auth.username ?? '',
        password: auth.password,
        caPem: auth.caPem,
      });
    const opts = {
      wait: req.wait ?? true,
      force: req.force ?? false,
      allowDowngrade: req.allowDowngrade ?? false,
      kubernetesVersions: settings.kubernetesVersions,
      timeoutMs: req.timeoutMs ?? 5 * 60_000,
    };
    const fluxVersion = options.components.version;
    const operator = req.operator && {
      ...req.operator,
      version: req.operator.version ?? fluxVersion,
    };
    if (req.dryRun) {
      await dryRunVersionCheck(cluster, fluxVersion, ctx);
      logger.info(
        'Dry run of flux:install; nothing is written to the cluster.',
      );
      for (const line of operator
        ? fluxOperatorDryRunLines(
            cluster.name,
            options,
            operator,
            settings.operatorManifests,
            secret,
          )
        : dryRunLines(cluster.name, options, secret, {
            ...opts,
            revision: req.revision,
          }))
        logger.info(line);
      return {
        fluxVersion,
        revision: req.revision,
        ready: false,
        components: [],
      };
    }

    // The Flux Operator installs its own components: its plan only names the namespace.
    const bundle =
      !operator &&
      (await loadFluxBundle(fluxVersion, settings.manifests, {
        signal,
        logger,
      }));
    const plan = buildFluxInstallPlan({
      options,
      componentObjects: bundle
        ? generateComponentObjects(bundle.files, options.components)
        : [],
      secret,
      expectedRevision: req.revision,
    });
    const kube = await createKubeClient(cluster, { logger, redactor });
    try {
      const source = settings.operatorManifests;
      const viaOperator: PullRequestInstall | undefined =
        operator &&
        ((expectedRevision, o) =>
          installWithFluxOperator(
            kube,
            { options, operator, source, secret, expectedRevision },
            o,
          ));
      const r = await installFluxOrAwaitPullRequest(kube, plan, {
        ...opts,
        signal,
        logger,
        checkpoint: deps.checkpoint,
        pollIntervalMs: deps.pollIntervalMs,
        pullRequest,
        redactor,
        install: viaOperator,
      });
      logger.info(
        r.ready
          ? `✔ Flux ${r.fluxVersion} is installed on cluster "${
              cluster.name
            }" and synced ${r.revision ?? ''}`
          : `Flux ${r.fluxVersion} is applied on cluster "${cluster.name}" (not waited for readiness)`,
      );
      return {
        fluxVersion: r.fluxVersion,
        revision: r.revision,
        ready: r.ready,
        components: r.components.map(({ name, ready, image }) =>
          image ? { name, ready, image } : { name, ready },
        ),
        username: auth ? auth.username : undefined,
      };
    } finally {
      kube.close();
    }
  } catch (error) {
    throw redactor.redactError(error);
  }
}

/** A dry run's one read, the Kubernetes version: unsupported fails, unreachable only warns. */
async function dryRunVersionCheck(
  cluster: ReturnType<typeof resolveCluster>,
  fluxVersion: string,
  deps: InstallFluxDeps & { redactor: Redactor },
) {
  const { logger, redactor, signal } = deps;
  const probe = await createKubeClient(cluster, {
    logger,
    redactor,
    retries: 0,
    requestTimeoutMs: 10_000,
  });
  try {
    await checkKubernetesVersion(
      probe,
      fluxVersion,
      deps.settings.kubernetesVersions,
      { signal, logger },
    );
  } catch (e) {
    if (e instanceof InputError) throw e;
    logger.warn(
      `Could not check the Kubernetes version of cluster "${cluster.name}": ${
        (e as Error).message
      }`,
    );
  } finally {
    probe.close();
  }
}

/**
 * The credentials Flux syncs with: the token, else the sync host's integration; the user name
 * given, else the integration's, else the token's owner (a real run asks); the host's CA.
 */
async function tokenAuthCredentials(
  input: { token?: string; username?: string },
  options: ResolvedFluxManifestOptions,
  deps: InstallFluxDeps & { redactor: Redactor },
  dryRun?: boolean,
): Promise<{ username?: string; password: string; caPem?: string }> {
  const { logger, signal } = deps;
  const url = new URL(options.sync.url);
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new InputValidationError(
      'syncUrl',
      'must be an https:// URL when tokenAuth is on (Flux sends the token over HTTPS)',
    );
  const host = deps.settings.bitbucketServer.find(
    h => URL.canParse(h.baseUrl) && new URL(h.baseUrl).host === url.host,
  );
  const { auth, credentials } = chooseBitbucketCredentials({
    token: input.token,
    host,
    hostName: url.host,
    requireUserCredentials: deps.settings.requireScmUserCredentials,
    purpose: ' with tokenAuth',
  });
  const password = 'token' in auth ? auth.token : auth.password;
  deps.redactor.add(password);
  let username =
    input.username?.trim() || ('username' in auth ? auth.username : undefined);
  const ownerRequired = `is required with tokenAuth: Bitbucket Server checks Git-over-HTTPS logins against the token's owner, and`;
  if (!username && !host)
    throw new InputValidationError(
      'username',
      `${ownerRequired} ${url.host} is no configured Bitbucket host to ask for it`,
    );
  if (!username && !dryRun) {
    // A project or repository token (no user) is an InputError naming `token`.
    const client = new BitbucketServerClient(host!, { token: password }, deps);
    try {
      username = (await resolveTokenOwner(client, { signal, credentials }))
        .name;
    } catch (error) {
      if (
        error instanceof InputError ||
        isBitbucketError(error, 'unauthorized')
      )
        throw error;
      throw new InputValidationError(
        'username',
        `${ownerRequired} Bitbucket ${host!.host} did not say who that is (${
          (error as Error).message
        })`,
      );
    } finally {
      client.close();
    }
    logger.info(`The token belongs to "${username}" (Bitbucket ${host!.host})`);
  }
  logger.info(
    `Token auth: Secret ${options.namespace}/${
      options.sync.secretName
    } gets user "${
      username ?? "the token's owner"
    }" and the token from ${credentials}${host?.caPem ? ', plus ca.crt' : ''}`,
  );
  return { username, password, caPem: host?.caPem };
}

function dryRunLines(
  clusterName: string,
  options: ResolvedFluxManifestOptions,
  secret: KubeObject | undefined,
  o: { revision?: string; wait: boolean; force: boolean; timeoutMs: number },
): string[] {
  const ns = options.namespace;
  const { version, components } = options.components;
  let expected = o.revision || `the head of ${options.branch}`;
  // A dry run's revision has no commit yet.
  if (isPendingRevision(o.revision))
    expected = `the commit flux:push-manifests pushes to ${options.branch} (${o.revision}<sha>; a dry run pushes nothing, so the commit is known only in a real run)`;
  const lines = [
    `Would install Flux ${version} on cluster "${clusterName}" in namespace ${ns}${
      o.force ? " (taking over another manager's installation: force)" : ''
    }:`,
    `  1. check that the credentials may install Flux (SelfSubjectAccessReview), that no other tool manages it, and that Kustomization ${ns}/${ns} does not sync another path`,
    `  2. server-side apply (field manager flux) the components ${components.join(
      ', ',
    )} from the Flux ${version} bundle: CRDs and the Namespace first, then the rest — unless Flux already syncs itself`,
  ];
  if (secret)
    lines.push(
      `  3. Secret ${ns}/${secret.metadata.name} with keys ${Object.keys(
        secret.data as Record<string, string>,
      ).join(', ')} (values not shown)`,
    );
  lines.push(`  ${secret ? 4 : 3}. the sync objects:`);
  for (const line of generateSyncManifest(options.sync).trimEnd().split('\n'))
    lines.push(`       ${line}`);
  lines.push(
    o.wait
      ? `  then wait up to ${Math.round(
          o.timeoutMs / 1000,
        )} s until Flux reconciled ${expected} and its controllers are available`
      : '  and not wait (wait: false)',
  );
  return lines;
}
