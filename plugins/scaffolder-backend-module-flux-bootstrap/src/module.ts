import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { createBitbucketCreateRepoAction } from './actions/createRepo';
import { createFluxGenerateKeyAction } from './actions/generateKey';
import { createFluxPushManifestsAction } from './actions/pushManifests';
import { createFluxInstallAction } from './actions/install';

/**
 * Registers `bitbucket:create-repo`, `flux:generate-key`, `flux:push-manifests` and
 * `flux:install` with the scaffolder.
 * @public
 */
export const scaffolderModuleFluxBootstrap = createBackendModule({
  pluginId: 'scaffolder',
  moduleId: 'flux-bootstrap',
  register(reg) {
    reg.registerInit({
      deps: {
        scaffolder: scaffolderActionsExtensionPoint,
        config: coreServices.rootConfig,
      },
      async init({ scaffolder, config }) {
        const options = { config };
        scaffolder.addActions(
          createBitbucketCreateRepoAction(options),
          createFluxGenerateKeyAction(options),
          createFluxPushManifestsAction(options),
          createFluxInstallAction(options),
        );
      },
    });
  },
});
