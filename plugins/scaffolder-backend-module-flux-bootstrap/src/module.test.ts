import { startTestBackend, mockServices } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { scaffolderTemplatingExtensionPoint } from '@backstage/plugin-scaffolder-node/alpha';
import { scaffolderModuleFluxBootstrap } from './module';

async function start() {
  const ids: string[] = [];
  const globals: Record<string, any> = {};
  await startTestBackend({
    extensionPoints: [
      [
        scaffolderActionsExtensionPoint,
        {
          addActions: (...actions: { id: string }[]) =>
            ids.push(...actions.map(a => a.id)),
        },
      ],
      [
        scaffolderTemplatingExtensionPoint,
        {
          addTemplateFilters: () => {},
          addTemplateGlobals: (added: any) => {
            for (const g of added) globals[g.id] = g;
          },
        },
      ],
    ],
    features: [
      scaffolderModuleFluxBootstrap,
      catalogServiceMock.factory(),
      mockServices.rootConfig.factory({
        data: { backend: { baseUrl: 'https://portal.example.com/backstage' } },
      }),
    ],
  });
  return { ids, globals };
}

describe('scaffolderModuleFluxBootstrap', () => {
  it('registers the four bootstrap actions, fleet:wait-for-entity and the four decommission actions with the scaffolder', async () => {
    const { ids } = await start();
    expect(ids).toEqual([
      'bitbucket:create-repo',
      'flux:generate-key',
      'flux:push-manifests',
      'flux:install',
      'fleet:wait-for-entity',
      'flux:uninstall',
      'bitbucket:delete-access-keys',
      'flux:remove-cluster-path',
      'fleet:unregister-cluster',
    ]);
  });

  it('adds the template global clusterEntityUrl: the location the status backend serves, from backend.baseUrl', async () => {
    const { globals } = await start();
    expect(Object.keys(globals)).toEqual(['clusterEntityUrl']);
    // Listed with a description, an example and a schema (the editor's templating extensions).
    expect(globals.clusterEntityUrl.description).toContain('catalog:register');
    expect(globals.clusterEntityUrl.examples).toHaveLength(1);
    expect(typeof globals.clusterEntityUrl.schema).toBe('function');
    const clusterEntityUrl = globals.clusterEntityUrl.fn as (
      p: unknown,
    ) => string;
    expect(
      clusterEntityUrl({
        name: 'prod-eu',
        owner: 'group:default/platform-team',
        repository: 'ssh://git@bitbucket.example.com:7999/plat/fleet.git',
        path: 'clusters/prod-eu',
      }),
    ).toBe(
      'https://portal.example.com/backstage/api/flux-bootstrap/v1/cluster-entity.yaml?name=prod-eu&owner=group%3Adefault%2Fplatform-team&repository=ssh%3A%2F%2Fgit%40bitbucket.example.com%3A7999%2Fplat%2Ffleet.git&path=clusters%2Fprod-eu',
    );
    // Called wrongly from a template: a URL the catalog then refuses naming the missing field.
    expect(clusterEntityUrl(undefined)).toBe(
      'https://portal.example.com/backstage/api/flux-bootstrap/v1/cluster-entity.yaml',
    );
  });
});
