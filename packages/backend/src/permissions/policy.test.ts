import {
  coreServices,
  createServiceFactory,
} from '@backstage/backend-plugin-api';
import {
  mockCredentials,
  mockServices,
  startTestBackend,
} from '@backstage/backend-test-utils';
import { ConfigReader } from '@backstage/config';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { actionExecutePermission } from '@backstage/plugin-scaffolder-common/alpha';
import {
  fluxBootstrapClusterOperatePermission,
  fluxBootstrapClusterReadPermission,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import permissionBackend from '@backstage/plugin-permission-backend';
import request from 'supertest';
import { permissionModuleFluxBootstrapPolicy } from './module';
import { readFluxBootstrapPolicyOptions } from './policy';

// Group membership as the catalog would resolve it.
const MEMBERSHIP: Record<string, string[]> = {
  'user:default/alice': ['group:default/platform-team'],
  'user:default/bob': ['group:default/developers'],
};

const userInfoFactory = createServiceFactory({
  service: coreServices.userInfo,
  deps: {},
  factory: () => ({
    async getUserInfo(credentials: any) {
      const ref = credentials.principal.userEntityRef as string;
      return {
        userEntityRef: ref,
        ownershipEntityRefs: [ref, ...(MEMBERSHIP[ref] ?? [])],
      };
    },
  }),
});

async function startPermissionBackend(
  fluxBootstrap?: Record<string, string[]>,
) {
  const { server } = await startTestBackend({
    features: [
      permissionBackend,
      permissionModuleFluxBootstrapPolicy,
      userInfoFactory,
      mockServices.rootConfig.factory({
        data: {
          permission: {
            enabled: true,
            ...(fluxBootstrap ? { fluxBootstrap } : {}),
          },
        },
      }),
    ],
  });
  return async (user: string, permission: object) => {
    const res = await request(server)
      .post('/api/permission/authorize')
      // As the scaffolder asks: a user token obtained on behalf of the user by a plugin.
      .set(
        'Authorization',
        `Bearer ${mockCredentials.user.token(user, {
          actor: { subject: 'plugin:scaffolder' },
        })}`,
      )
      .send({ items: [{ id: '1', permission }] });
    expect({
      status: res.status,
      body: res.status === 200 ? undefined : res.body,
    }).toEqual({ status: 200, body: undefined });
    return res.body.items[0];
  };
}

describe('FluxBootstrapPermissionPolicy through the real permission backend', () => {
  it('allows everything when permission.fluxBootstrap is not configured (documented default)', async () => {
    const authorize = await startPermissionBackend();
    expect(
      await authorize('user:default/bob', actionExecutePermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
    expect(
      await authorize('user:default/bob', fluxBootstrapClusterReadPermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
  });

  it('restricts the bootstrap and decommission actions to bootstrappers and leaves other actions allowed', async () => {
    const authorize = await startPermissionBackend({
      bootstrappers: ['group:platform-team'],
    });
    expect(
      await authorize('user:default/alice', actionExecutePermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
    const bob = await authorize('user:default/bob', actionExecutePermission);
    expect(bob.result).toBe(AuthorizeResult.CONDITIONAL);
    expect(bob.pluginId).toBe('scaffolder');
    expect(bob.resourceType).toBe('scaffolder-action');
    const denied = bob.conditions.not.anyOf.map((c: any) => c.params.actionId);
    expect(denied).toEqual([
      'bitbucket:create-repo',
      'flux:generate-key',
      'flux:push-manifests',
      'flux:install',
      'flux:uninstall',
      'bitbucket:delete-access-keys',
      'flux:remove-cluster-path',
      'fleet:unregister-cluster',
    ]);
    expect(
      bob.conditions.not.anyOf.every((c: any) => c.rule === 'HAS_ACTION_ID'),
    ).toBe(true);
  });

  it('denies cluster status to users outside statusReaders', async () => {
    const authorize = await startPermissionBackend({
      statusReaders: ['group:default/platform-team', 'user:default/carol'],
    });
    expect(
      await authorize('user:default/alice', fluxBootstrapClusterReadPermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
    expect(
      await authorize('user:default/carol', fluxBootstrapClusterReadPermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
    expect(
      await authorize('user:default/bob', fluxBootstrapClusterReadPermission),
    ).toMatchObject({
      result: AuthorizeResult.DENY,
    });
    // statusReaders does not restrict the actions.
    expect(
      await authorize('user:default/bob', actionExecutePermission),
    ).toMatchObject({
      result: AuthorizeResult.ALLOW,
    });
  });
});

describe('who may operate clusters (flux.bootstrap.cluster.operate)', () => {
  it('everyone, when neither operators nor bootstrappers are set', async () => {
    const authorize = await startPermissionBackend({
      statusReaders: ['group:default/platform-team'],
    });
    expect(
      await authorize(
        'user:default/bob',
        fluxBootstrapClusterOperatePermission,
      ),
    ).toMatchObject({ result: AuthorizeResult.ALLOW });
  });

  it('the bootstrappers, when operators is not set', async () => {
    const authorize = await startPermissionBackend({
      bootstrappers: ['group:default/platform-team'],
    });
    expect(
      await authorize(
        'user:default/alice',
        fluxBootstrapClusterOperatePermission,
      ),
    ).toMatchObject({ result: AuthorizeResult.ALLOW });
    expect(
      await authorize(
        'user:default/bob',
        fluxBootstrapClusterOperatePermission,
      ),
    ).toMatchObject({ result: AuthorizeResult.DENY });
  });

  it('the operators, when set (whatever bootstrappers says); reading stays separate', async () => {
    const authorize = await startPermissionBackend({
      bootstrappers: ['group:default/platform-team'],
      operators: ['group:default/developers'],
    });
    expect(
      await authorize(
        'user:default/bob',
        fluxBootstrapClusterOperatePermission,
      ),
    ).toMatchObject({ result: AuthorizeResult.ALLOW });
    expect(
      await authorize(
        'user:default/alice',
        fluxBootstrapClusterOperatePermission,
      ),
    ).toMatchObject({ result: AuthorizeResult.DENY });
    expect(
      await authorize('user:default/alice', fluxBootstrapClusterReadPermission),
    ).toMatchObject({ result: AuthorizeResult.ALLOW });
  });
});

describe('readFluxBootstrapPolicyOptions', () => {
  it('rejects a value that is not an entity ref, naming the key', () => {
    expect(() =>
      readFluxBootstrapPolicyOptions(
        new ConfigReader({
          permission: { fluxBootstrap: { bootstrappers: ['platform team'] } },
        }),
      ),
    ).toThrow(/permission\.fluxBootstrap\.bootstrappers holds "platform team"/);
  });
});
