import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { FluxBootstrapActionOptions } from './shared/context';

// PLACEHOLDER — replaced by the issue that implements flux:push-manifests.
export function createFluxPushManifestsAction(_options: FluxBootstrapActionOptions) {
  return createTemplateAction({
    id: 'flux:push-manifests',
    description: 'Not implemented yet',
    schema: { input: {}, output: {} },
    async handler() {
      throw new Error('flux:push-manifests is not implemented yet');
    },
  });
}
