import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:remove-cluster-path`. */
export const examples: TemplateExample[] = [
  {
    description:
      "Remove clusters/<cluster> from the fleet repository's main branch in one commit, after flux:uninstall.",
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:remove-cluster-path',
          id: 'removePath',
          name: "Remove the cluster's folder",
          input: {
            cluster: '${{ parameters.cluster }}',
            confirm: '${{ parameters.confirm }}',
            repoUrl: '${{ parameters.repoUrl }}',
            token: '${{ secrets.token }}',
            branch: 'main',
            commitMessageAppendix:
              'Requested by ${{ user.entity.metadata.name }}',
          },
        },
      ],
    }),
  },
];
