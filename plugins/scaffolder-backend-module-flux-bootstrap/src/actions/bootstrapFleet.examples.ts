import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:bootstrap-fleet`. */
export const examples: TemplateExample[] = [
  {
    description:
      'The clusters picked in the form (the cluster picker with multiple: true), each in clusters/<cluster> of one fleet repository, at most 4 installs at once.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:bootstrap-fleet',
          id: 'fleet',
          name: 'Bootstrap Flux on the fleet',
          input: {
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            token: '${{ secrets.token }}',
            clusters: '${{ parameters.clusters }}',
          },
        },
      ],
    }),
  },
  {
    description:
      'Three named clusters of a new region, in regions/eu-west/<cluster>, with the image automation controllers, two installs at once and 10 minutes per cluster.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:bootstrap-fleet',
          id: 'fleet',
          name: 'Bootstrap the eu-west region',
          input: {
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            clusters: ['eu-west-1', 'eu-west-2', 'eu-west-3'],
            pathPattern: 'regions/eu-west/<cluster>',
            componentsExtra: [
              'image-reflector-controller',
              'image-automation-controller',
            ],
            readWrite: true,
            concurrency: 2,
            timeout: '10m',
          },
        },
      ],
    }),
  },
  {
    description:
      'Token auth, as flux bootstrap bitbucket-server --token-auth: every cluster syncs over HTTPS with the token (checked first to belong to a user) stored in its Secret; no deploy keys.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:bootstrap-fleet',
          id: 'fleet',
          name: 'Bootstrap Flux on the fleet over HTTPS',
          input: {
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            token: '${{ secrets.fluxToken }}',
            clusters: '${{ parameters.clusters }}',
            tokenAuth: true,
            username: 'flux-reader',
          },
        },
      ],
    }),
  },
];
