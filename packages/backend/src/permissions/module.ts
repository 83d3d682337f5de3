import {
  coreServices,
  createBackendModule,
} from '@backstage/backend-plugin-api';
import { policyExtensionPoint } from '@backstage/plugin-permission-node/alpha';
import {
  FluxBootstrapPermissionPolicy,
  readFluxBootstrapPolicyOptions,
} from './policy';

/** Installs {@link FluxBootstrapPermissionPolicy} as the permission backend's policy. */
export const permissionModuleFluxBootstrapPolicy = createBackendModule({
  pluginId: 'permission',
  moduleId: 'flux-bootstrap-policy',
  register(reg) {
    reg.registerInit({
      deps: {
        policy: policyExtensionPoint,
        config: coreServices.rootConfig,
        userInfo: coreServices.userInfo,
        logger: coreServices.logger,
      },
      async init({ policy, config, userInfo, logger }) {
        const options = readFluxBootstrapPolicyOptions(config);
        const describe = (list?: string[]) =>
          list ? list.join(', ') : 'everyone';
        logger.info(
          `Permission policy: bootstrap and decommission actions allowed for ${describe(
            options.bootstrappers,
          )}; cluster status readable by ${describe(
            options.statusReaders,
          )}; clusters operated (reconcile, suspend, resume) by ${describe(
            options.operators ?? options.bootstrappers,
          )}; everything else allowed`,
        );
        policy.setPolicy(new FluxBootstrapPermissionPolicy(options, userInfo));
      },
    });
  },
});
