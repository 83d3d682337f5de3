import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { FluxBootstrapActionOptions } from './shared/context';

// PLACEHOLDER — replaced by the issue that implements flux:install.
export function createFluxInstallAction(_options: FluxBootstrapActionOptions) {
  return createTemplateAction({
    id: 'flux:install',
    description: 'Not implemented yet',
    schema: { input: {}, output: {} },
    async handler() {
      throw new Error('flux:install is not implemented yet');
    },
  });
}
