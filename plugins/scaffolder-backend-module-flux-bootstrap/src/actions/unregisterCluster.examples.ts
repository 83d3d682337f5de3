import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `fleet:unregister-cluster`. */
export const examples: TemplateExample[] = [
  {
    description:
      'Remove the cluster entity the bootstrap template registered (resource:default/<cluster>) from the catalog.',
    example: yaml.stringify({
      steps: [
        {
          action: 'fleet:unregister-cluster',
          id: 'unregister',
          name: 'Remove the cluster from the catalog',
          input: {
            cluster: '${{ parameters.cluster }}',
            confirm: '${{ parameters.confirm }}',
          },
        },
      ],
    }),
  },
];
