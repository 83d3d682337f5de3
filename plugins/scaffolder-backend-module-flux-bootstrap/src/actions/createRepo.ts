import { createTemplateAction } from '@backstage/plugin-scaffolder-node';
import type { FluxBootstrapActionOptions } from './shared/context';

// PLACEHOLDER — replaced by the issue that implements bitbucket:create-repo.
export function createBitbucketCreateRepoAction(_options: FluxBootstrapActionOptions) {
  return createTemplateAction({
    id: 'bitbucket:create-repo',
    description: 'Not implemented yet',
    schema: { input: {}, output: {} },
    async handler() {
      throw new Error('bitbucket:create-repo is not implemented yet');
    },
  });
}
