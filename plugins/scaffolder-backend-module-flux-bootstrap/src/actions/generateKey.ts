import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { FluxBootstrapActionOptions } from './shared/context';

// PLACEHOLDER — replaced by the issue that implements flux:generate-key.
export function createFluxGenerateKeyAction(_options: FluxBootstrapActionOptions) {
  return createTemplateAction({
    id: 'flux:generate-key',
    description: 'Not implemented yet',
    schema: { input: {}, output: {} },
    async handler() {
      throw new Error('flux:generate-key is not implemented yet');
    },
  });
}
