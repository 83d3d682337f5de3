import type {
  BackstageCredentials,
  BackstageUserPrincipal,
  UserInfoService,
} from '@backstage/backend-plugin-api';
import type { Config } from '@backstage/config';
import {
  AuthorizeResult,
  isPermission,
  PolicyDecision,
} from '@backstage/plugin-permission-common';
import type {
  PermissionPolicy,
  PolicyQuery,
  PolicyQueryUser,
} from '@backstage/plugin-permission-node';
import {
  createScaffolderActionConditionalDecision,
  scaffolderActionConditions,
} from '@backstage/plugin-scaffolder-backend/alpha';
import { actionExecutePermission } from '@backstage/plugin-scaffolder-common/alpha';
import {
  fluxBootstrapClusterOperatePermission,
  fluxBootstrapClusterReadPermission,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/**
 * The scaffolder actions of this project that change something; restricted together by
 * `bootstrappers`: the four bootstrap actions and the four decommission actions.
 */
export const FLUX_BOOTSTRAP_ACTION_IDS = [
  'bitbucket:create-repo',
  'flux:generate-key',
  'flux:push-manifests',
  'flux:install',
  'flux:uninstall',
  'bitbucket:delete-access-keys',
  'flux:remove-cluster-path',
  'fleet:unregister-cluster',
] as const;

/**
 * Who may do what. `undefined` means everyone (the default: allow-all, like create-app's
 * allow-all policy). A list holds entity refs (`user:default/alice`, `group:default/platform`);
 * a user matches when one of their ownership refs (their own ref and their groups) is listed.
 */
export interface FluxBootstrapPolicyOptions {
  /** `permission.fluxBootstrap.bootstrappers`: who may execute the bootstrap and decommission actions. */
  bootstrappers?: string[];
  /** `permission.fluxBootstrap.statusReaders`: who may read cluster status (`flux.bootstrap.cluster.read`). */
  statusReaders?: string[];
  /**
   * `permission.fluxBootstrap.operators`: who may reconcile, suspend and resume a cluster's Flux
   * (`flux.bootstrap.cluster.operate`). Unset: the `bootstrappers` (whoever may install Flux may
   * operate it); both unset: everyone.
   */
  operators?: string[];
}

function normalizeRef(ref: string): string {
  const trimmed = ref.trim().toLocaleLowerCase('en-US');
  // `group:platform` → `group:default/platform`, as Backstage resolves refs without a namespace.
  const m = /^([^:/]+):([^/]+)$/.exec(trimmed);
  return m ? `${m[1]}:default/${m[2]}` : trimmed;
}

/** Reads `permission.fluxBootstrap` from config; refs must be `kind:[namespace/]name`. */
export function readFluxBootstrapPolicyOptions(
  config: Config,
): FluxBootstrapPolicyOptions {
  const read = (key: string) => {
    const list = config.getOptionalStringArray(
      `permission.fluxBootstrap.${key}`,
    );
    if (!list) return undefined;
    for (const ref of list) {
      if (!/^[^:/\s]+:([^/\s]+\/)?[^/\s]+$/.test(ref.trim())) {
        throw new Error(
          `permission.fluxBootstrap.${key} holds "${ref}", which is not an entity ref like user:default/alice or group:default/platform`,
        );
      }
    }
    return list.map(normalizeRef);
  };
  return {
    bootstrappers: read('bootstrappers'),
    statusReaders: read('statusReaders'),
    operators: read('operators'),
  };
}

/**
 * The app's permission policy. Allows everything by default. When
 * `permission.fluxBootstrap.bootstrappers` is set, only those users/groups may execute
 * the bootstrap and decommission actions ({@link FLUX_BOOTSTRAP_ACTION_IDS}; others can still run
 * any other action and read templates; their task fails at the first restricted step, before any
 * side effect). When `permission.fluxBootstrap.statusReaders` is set, only those may read cluster
 * status through the status backend. Reconcile, suspend and resume
 * (`flux.bootstrap.cluster.operate`) are for `permission.fluxBootstrap.operators`, else for the
 * bootstrappers. Requests without a user (service-to-service) are not restricted by this
 * policy — Backstage does not send them to the policy.
 */
export class FluxBootstrapPermissionPolicy implements PermissionPolicy {
  constructor(
    private readonly options: FluxBootstrapPolicyOptions,
    private readonly userInfo: Pick<UserInfoService, 'getUserInfo'>,
  ) {}

  async handle(
    request: PolicyQuery,
    user?: PolicyQueryUser,
  ): Promise<PolicyDecision> {
    if (isPermission(request.permission, actionExecutePermission)) {
      if (await this.isAllowed(this.options.bootstrappers, user)) {
        return { result: AuthorizeResult.ALLOW };
      }
      return createScaffolderActionConditionalDecision(request.permission, {
        not: {
          anyOf: [
            scaffolderActionConditions.hasActionId({
              actionId: FLUX_BOOTSTRAP_ACTION_IDS[0],
            }),
            ...FLUX_BOOTSTRAP_ACTION_IDS.slice(1).map(actionId =>
              scaffolderActionConditions.hasActionId({ actionId }),
            ),
          ],
        },
      });
    }
    if (
      isPermission(request.permission, fluxBootstrapClusterOperatePermission)
    ) {
      return {
        result: (await this.isAllowed(
          this.options.operators ?? this.options.bootstrappers,
          user,
        ))
          ? AuthorizeResult.ALLOW
          : AuthorizeResult.DENY,
      };
    }
    if (isPermission(request.permission, fluxBootstrapClusterReadPermission)) {
      return {
        result: (await this.isAllowed(this.options.statusReaders, user))
          ? AuthorizeResult.ALLOW
          : AuthorizeResult.DENY,
      };
    }
    return { result: AuthorizeResult.ALLOW };
  }

  private async isAllowed(
    list: string[] | undefined,
    user?: PolicyQueryUser,
  ): Promise<boolean> {
    if (!list) return true;
    if (!user) return false;
    const refs = await this.ownershipRefs(user.credentials);
    return refs.some(ref => list.includes(normalizeRef(ref)));
  }

  private async ownershipRefs(
    credentials: BackstageCredentials,
  ): Promise<string[]> {
    if ((credentials.principal as { type?: string }).type !== 'user') return [];
    const info = await this.userInfo.getUserInfo(
      credentials as BackstageCredentials<BackstageUserPrincipal>,
    );
    return [info.userEntityRef, ...info.ownershipEntityRefs];
  }
}
