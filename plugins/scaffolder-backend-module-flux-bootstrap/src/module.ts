import {
  coreServices,
  createBackendModule,
  RootConfigService,
} from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import {
  createTemplateGlobalFunction,
  scaffolderTemplatingExtensionPoint,
} from '@backstage/plugin-scaffolder-node/alpha';
import {
  ClusterEntityParams,
  clusterEntityUrl,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  configureHttpProxy,
  fluxBootstrapSettings,
  readHttpProxyConfig,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { createBitbucketCreateRepoAction } from './actions/createRepo';
import { createFluxGenerateKeyAction } from './actions/generateKey';
import { createFluxPushManifestsAction } from './actions/pushManifests';
import { createFluxInstallAction } from './actions/install';
import { createWaitForEntityAction } from './actions/waitForEntity';
import { createFluxUninstallAction } from './actions/uninstall';
import { createBitbucketDeleteAccessKeysAction } from './actions/deleteAccessKeys';
import { createFluxRemoveClusterPathAction } from './actions/removeClusterPath';
import { createFleetUnregisterClusterAction } from './actions/unregisterCluster';
import { createFluxBootstrapFleetAction } from './actions/bootstrapFleet';

/**
 * The template global `clusterEntityUrl({ name, owner, repository, branch?, path?, title?,
 * description?, system? })`: the catalog location of a cluster's `Resource` entity,
 * `<backend.baseUrl>/api/flux-bootstrap/v1/cluster-entity.yaml?…`, for `catalog:register`. The
 * status backend (`@flux-bootstrap/plugin-flux-bootstrap-backend`) serves it and reads it for the
 * catalog in-process. Bad parameters fail when the catalog reads the location, naming the field.
 * Listed with its schema and example under the scaffolder's templating extensions.
 * @public
 */
export function createClusterEntityUrlGlobal(
  config: Pick<RootConfigService, 'getString'>,
) {
  return createTemplateGlobalFunction({
    id: 'clusterEntityUrl',
    description:
      "The catalog location of a bootstrapped cluster's Resource entity (spec.type kubernetes-cluster, pointing back at its fleet repository), for catalog:register. Rendered from the URL by the Flux bootstrap status backend; nothing is stored, and the same parameters give the same URL.",
    examples: [
      {
        description: 'Register the cluster a template bootstrapped',
        example: [
          '- id: register',
          '  action: catalog:register',
          '  input:',
          "    catalogInfoUrl: \"${{ clusterEntityUrl({ name: parameters.cluster, owner: parameters.owner, repository: steps.createRepo.output.repoContentsUrl, branch: 'main', path: 'clusters/' + parameters.cluster }) }}\"",
          '    optional: true',
        ].join('\n'),
      },
    ],
    schema: z =>
      z
        .function()
        .args(
          z.object({
            name: z
              .string()
              .describe(
                'Cluster name (kubernetes.clusterLocatorMethods), also the entity name',
              ),
            owner: z
              .string()
              .describe('Owner entity ref, e.g. group:default/platform-team'),
            repository: z
              .string()
              .describe(
                'The fleet repository: its browse URL (https://…) or its ssh:// URL',
              ),
            branch: z.string().optional().describe('Branch Flux syncs'),
            path: z
              .string()
              .optional()
              .describe('Cluster folder in the repository'),
            title: z.string().optional(),
            description: z.string().optional(),
            system: z.string().optional().describe('System entity ref'),
          }),
        )
        .returns(z.string().describe('The location URL')),
    fn: (params: unknown) =>
      clusterEntityUrl(
        config.getString('backend.baseUrl'),
        (params && typeof params === 'object'
          ? params
          : {}) as Partial<ClusterEntityParams>,
      ),
  });
}

/**
 * Registers `bitbucket:create-repo`, `flux:generate-key`, `flux:push-manifests`,
 * `flux:install` and `fleet:wait-for-entity` with the scaffolder, the decommission actions
 * `flux:uninstall`, `bitbucket:delete-access-keys`, `flux:remove-cluster-path` and
 * `fleet:unregister-cluster`, and the template global `clusterEntityUrl(...)`.
 * @public
 */
export const scaffolderModuleFluxBootstrap = createBackendModule({
  pluginId: 'scaffolder',
  moduleId: 'flux-bootstrap',
  register(reg) {
    reg.registerInit({
      deps: {
        scaffolder: scaffolderActionsExtensionPoint,
        templating: scaffolderTemplatingExtensionPoint,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
        catalog: catalogServiceRef,
      },
      async init({ scaffolder, templating, config, logger, catalog }) {
        configureHttpProxy(readHttpProxyConfig(config)); // fluxBootstrap.proxy
        // The configuration is read here, once (and again when it changes), not per run.
        const options = { settings: fluxBootstrapSettings(config, { logger }) };
        scaffolder.addActions(
          createBitbucketCreateRepoAction(options),
          createFluxGenerateKeyAction(options),
          createFluxPushManifestsAction(options),
          createFluxInstallAction(options),
          createWaitForEntityAction({ catalog }),
          createFluxBootstrapFleetAction(options),
          createFluxUninstallAction(options),
          createBitbucketDeleteAccessKeysAction(options),
          createFluxRemoveClusterPathAction(options),
          createFleetUnregisterClusterAction({ config, catalog }),
        );
        templating.addTemplateGlobals([createClusterEntityUrlGlobal(config)]);
      },
    });
  },
});
