import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `bitbucket:delete-access-keys`. */
export const examples: TemplateExample[] = [
  {
    description:
      "Delete the decommissioned cluster's deploy key from the fleet repository (label flux-system-main-flux-system-./clusters/<cluster>); the other clusters' keys stay.",
    example: yaml.stringify({
      steps: [
        {
          action: 'bitbucket:delete-access-keys',
          id: 'deleteKeys',
          name: "Delete the cluster's access key",
          input: {
            cluster: '${{ parameters.cluster }}',
            confirm: '${{ parameters.confirm }}',
            repoUrl: '${{ parameters.repoUrl }}',
            token: '${{ secrets.token }}',
            branch: 'main',
          },
        },
      ],
    }),
  },
];
