import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:uninstall`. */
export const examples: TemplateExample[] = [
  {
    description:
      'Uninstall Flux from the cluster the form picked, once its name was typed again; the workloads keep running and the namespace goes.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:uninstall',
          id: 'uninstall',
          name: 'Uninstall Flux',
          input: {
            cluster: '${{ parameters.cluster }}',
            confirm: '${{ parameters.confirm }}',
          },
        },
      ],
    }),
  },
  {
    description:
      'Keep the flux-system namespace (other things live in it) and delete the workloads the Kustomizations applied too.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:uninstall',
          id: 'uninstall',
          name: 'Uninstall Flux and its workloads',
          input: {
            cluster: 'staging',
            confirm: 'staging',
            keepNamespace: true,
            prune: true,
          },
        },
      ],
    }),
  },
];
