import {
  coreServices,
  createServiceFactory,
} from '@backstage/backend-plugin-api';
import { ConfigReader, type Config } from '@backstage/config';
import { startTestBackend, mockServices } from '@backstage/backend-test-utils';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
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
  it('registers the four bootstrap actions, fleet:wait-for-entity, flux:bootstrap-fleet and the four decommission actions with the scaffolder', async () => {
    const { ids } = await start();
    expect(ids).toEqual([
      'bitbucket:create-repo',
      'flux:generate-key',
      'flux:push-manifests',
      'flux:install',
      'fleet:wait-for-entity',
      'flux:bootstrap-fleet',
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

describe('configuration of the actions', () => {
  it('is read once when the backend starts, never per action run', async () => {
    const reader = new ConfigReader({
      backend: { baseUrl: 'https://portal.example.com' },
      integrations: {
        bitbucketServer: [{ host: 'bb.example.com', token: 'tok-5b1e' }],
      },
    });
    // The root config, counting the reads of the plugins' keys.
    const reads: string[] = [];
    const config = new Proxy(reader, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (key?: string, ...rest: unknown[]) => {
          if (
            /^(integrations|kubernetes|fluxBootstrap|scaffolder)\b/.test(
              key ?? '',
            )
          )
            reads.push(key!);
          return value.call(target, key, ...rest);
        };
      },
    }) as Config;
    const actions: { id: string; handler(ctx: unknown): Promise<void> }[] = [];
    await startTestBackend({
      extensionPoints: [
        [
          scaffolderActionsExtensionPoint,
          { addActions: (...added: any[]) => actions.push(...added) },
        ],
        [
          scaffolderTemplatingExtensionPoint,
          { addTemplateFilters: () => {}, addTemplateGlobals: () => {} },
        ],
      ],
      features: [
        scaffolderModuleFluxBootstrap,
        catalogServiceMock.factory(),
        createServiceFactory({
          service: coreServices.rootConfig,
          deps: {},
          factory: () => config,
        }),
      ],
    });
    const createRepo = actions.find(a => a.id === 'bitbucket:create-repo')!;
    const run = async () => {
      const outputs: Record<string, unknown> = {};
      await createRepo.handler({
        ...createMockActionContext({
          input: { repoUrl: 'bb.example.com?project=FLUX&repo=fleet' },
        }),
        isDryRun: true,
        output: (name: string, value: unknown) => (outputs[name] = value),
      });
      return outputs;
    };
    expect((await run()).remoteUrl).toBe(
      'https://bb.example.com/scm/flux/fleet.git',
    );
    const atStart = [...reads];
    expect(atStart.filter(k => k === 'integrations.bitbucketServer')).toEqual([
      'integrations.bitbucketServer',
    ]);
    for (let i = 0; i < 3; i++) await run();
    expect(reads).toEqual(atStart);
  });
});
