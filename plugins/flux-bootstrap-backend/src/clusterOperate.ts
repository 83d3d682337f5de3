import type {
  AuditorService,
  AuditorServiceEventSeverityLevel,
  BackstageCredentials,
  LoggerService,
  PermissionsService,
} from '@backstage/backend-plugin-api';
import { InputError, NotAllowedError, NotFoundError } from '@backstage/errors';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import {
  fluxBootstrapClusterOperatePermission,
  OperateClusterAction,
  OperateClusterResponse,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  createKubeClient,
  FluxBootstrapSettingsSource,
  FluxStatusReader,
  InputValidationError,
  KubeClient,
  reconcileFluxSync,
  Redactor,
  resolveCluster,
  resumeFluxSync,
  suspendFluxSync,
  validateOperateReason,
  type ClusterConnection,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import type { Request } from 'express';

/** The operate actions, in the order the card offers them. */
export const OPERATE_CLUSTER_ACTIONS: readonly OperateClusterAction[] = [
  'reconcile',
  'suspend',
  'resume',
];

/** How long an operate request waits for Flux, per object (reconcile) or for the sync (resume). */
export interface ClusterOperateTimeouts {
  reconcileMs: number;
  resumeMs: number;
}

/** What {@link createClusterOperateService} needs. */
export interface ClusterOperateServiceOptions {
  /** The plugin's settings: the clusters and `fluxBootstrap.status.namespace`. */
  settings: FluxBootstrapSettingsSource;
  /** The status reader: which clusters exist, and the status answered after an operation. */
  reader: Pick<FluxStatusReader, 'hasCluster' | 'read'>;
  permissions: PermissionsService;
  auditor: AuditorService;
  logger: LoggerService;
  /** Creates the kube client of one operation (default: the engine's). */
  createClient?: (connection: ClusterConnection) => Promise<KubeClient>;
  timeouts?: Partial<ClusterOperateTimeouts>;
}

/** Options of one operation. */
export interface OperateClusterOptions {
  reason?: unknown;
  /** The HTTP request, when the operation comes from a route (the auditor reads it). */
  request?: Request;
  /** Stops the wait for Flux (what was requested stays requested). */
  signal?: AbortSignal;
}

/**
 * Reconcile now, suspend and resume of a cluster's Flux sync for the operate routes (router.ts)
 * and the registered actions (actions/). Every call is one audit event (`cluster-operate`, with
 * the actor, the cluster, the action and the reason; succeeded or failed, denials included),
 * checks that the caller is a user holding `flux.bootstrap.cluster.operate` before anything else
 * (a NotAllowedError naming it; services are refused, since Backstage does not put them through
 * the permission policy and their audit names no person), then that the cluster is configured
 * (NotFoundError) and the reason (InputError: required to suspend), then does it with the engine
 * and answers the cluster's status read afresh (which also refreshes the status cache the card
 * reads).
 */
export interface ClusterOperateService {
  operate(
    credentials: BackstageCredentials,
    cluster: string,
    action: OperateClusterAction,
    options?: OperateClusterOptions,
  ): Promise<OperateClusterResponse>;
}

const SEVERITY: Record<OperateClusterAction, AuditorServiceEventSeverityLevel> =
  {
    reconcile: 'medium',
    suspend: 'high',
    resume: 'medium',
  };

/** The entity ref of a user, or the subject of a service: who the audit and the logs name. */
export function actorOf(credentials: BackstageCredentials): string {
  const principal = credentials.principal as {
    type?: string;
    userEntityRef?: string;
    subject?: string;
  };
  if (principal.type === 'user' && principal.userEntityRef)
    return principal.userEntityRef;
  if (principal.type === 'service' && principal.subject)
    return principal.subject;
  return 'unknown';
}

export function createClusterOperateService(
  options: ClusterOperateServiceOptions,
): ClusterOperateService {
  const { settings, reader, permissions, auditor, logger } = options;
  const timeouts: ClusterOperateTimeouts = {
    reconcileMs: options.timeouts?.reconcileMs ?? 60_000,
    resumeMs: options.timeouts?.resumeMs ?? 30_000,
  };
  const createClient =
    options.createClient ??
    ((connection: ClusterConnection) =>
      createKubeClient(connection, {
        logger,
        redactor: new Redactor([connection.token, connection.clientKeyPem]),
      }));

  return {
    async operate(credentials, cluster, action, opts = {}) {
      const actor = actorOf(credentials);
      const reason =
        typeof opts.reason === 'string' && opts.reason.trim()
          ? opts.reason.trim()
          : undefined;
      const event = await auditor.createEvent({
        eventId: 'cluster-operate',
        severityLevel: SEVERITY[action],
        request: opts.request,
        meta: {
          actor,
          cluster,
          action,
          ...(reason ? { reason } : {}),
        },
      });
      try {
        if ((credentials.principal as { type?: string }).type !== 'user') {
          // Services are not subject to the permission policy, and a static token (an agent's,
          // say) names no person: operating a cluster takes a signed-in user.
          throw new NotAllowedError(
            `Reconciling, suspending and resuming Flux on clusters requires a signed-in user with the permission "${fluxBootstrapClusterOperatePermission.name}"; ${actor} is a service`,
          );
        }
        const [decision] = await permissions.authorize(
          [{ permission: fluxBootstrapClusterOperatePermission }],
          { credentials },
        );
        if (decision.result !== AuthorizeResult.ALLOW) {
          throw new NotAllowedError(
            `Reconciling, suspending and resuming Flux on clusters requires the permission "${fluxBootstrapClusterOperatePermission.name}"`,
          );
        }
        if (!reader.hasCluster(cluster)) {
          throw new NotFoundError(
            `No cluster named "${cluster}" is configured in kubernetes.clusterLocatorMethods`,
          );
        }
        let checkedReason: string | undefined;
        try {
          checkedReason = validateOperateReason(
            opts.reason,
            action === 'suspend',
          );
        } catch (error) {
          if (error instanceof InputValidationError)
            throw new InputError(error.message);
          throw error;
        }
        const current = await settings.get();
        const namespace = current.status.namespace;
        const kube = await createClient(
          resolveCluster(current, cluster, 'cluster'),
        );
        let message: string;
        try {
          const deps = { logger, signal: opts.signal };
          const common = { cluster, namespace };
          if (action === 'reconcile') {
            message = (
              await reconcileFluxSync(
                kube,
                { ...common, timeoutMs: timeouts.reconcileMs },
                deps,
              )
            ).message;
          } else if (action === 'suspend') {
            message = (
              await suspendFluxSync(
                kube,
                { ...common, reason: checkedReason, actor },
                deps,
              )
            ).message;
          } else {
            message = (
              await resumeFluxSync(
                kube,
                {
                  ...common,
                  reason: checkedReason,
                  actor,
                  timeoutMs: timeouts.resumeMs,
                },
                deps,
              )
            ).message;
          }
        } finally {
          kube.close();
        }
        const status = await reader.read(cluster, { refresh: true });
        logger.info(
          `${actor} ran ${action} on cluster ${cluster}${
            checkedReason ? ` (reason: ${checkedReason})` : ''
          }: ${message}`,
        );
        await event.success({ meta: { message, state: status.state } });
        return { cluster, action, status, message };
      } catch (error) {
        await event.fail({ error: error as Error });
        logger.warn(
          `${actor} could not run ${action} on cluster ${cluster}: ${
            (error as Error).message
          }`,
        );
        throw error;
      }
    },
  };
}
