import { startTestBackend, mockServices } from '@backstage/backend-test-utils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { scaffolderModuleFluxBootstrap } from './module';

describe('scaffolderModuleFluxBootstrap', () => {
  it('registers the four actions with the scaffolder', async () => {
    const ids: string[] = [];
    await startTestBackend({
      extensionPoints: [
        [
          scaffolderActionsExtensionPoint,
          { addActions: (...actions: { id: string }[]) => ids.push(...actions.map(a => a.id)) },
        ],
      ],
      features: [
        scaffolderModuleFluxBootstrap,
        mockServices.rootConfig.factory({ data: {} }),
      ],
    });
    expect(ids).toEqual([
      'bitbucket:create-repo',
      'flux:generate-key',
      'flux:push-manifests',
      'flux:install',
    ]);
  });
});
