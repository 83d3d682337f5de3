import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:install`. */
export const examples: TemplateExample[] = [
  {
    description:
      'Install Flux on a cluster syncing over SSH (the Secret comes from flux:generate-key), and wait until it applied the commit flux:push-manifests pushed.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:install',
          id: 'install',
          name: 'Install Flux',
          input: {
            cluster: '${{ parameters.cluster }}',
            syncUrl: '${{ steps.pushManifests.output.syncUrl }}',
            branch: 'main',
            path: 'clusters/${{ parameters.cluster }}',
            revision: '${{ steps.pushManifests.output.revision }}',
          },
        },
      ],
    }),
  },
  {
    description:
      "Sync over HTTPS with the user's Bitbucket token stored in the cluster (username/password, plus ca.crt when the Bitbucket host has a CA configured), with extra components and a longer timeout.",
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:install',
          id: 'install',
          name: 'Install Flux',
          input: {
            cluster: 'prod-eu',
            syncUrl: 'https://bitbucket.example.com/scm/plat/fleet-infra.git',
            branch: 'main',
            path: 'clusters/prod-eu',
            componentsExtra: [
              'image-reflector-controller',
              'image-automation-controller',
            ],
            tokenAuth: true,
            token: '${{ secrets.bitbucketToken }}',
            username: '${{ user.entity.metadata.name }}',
            timeout: '10m',
          },
        },
      ],
    }),
  },
  {
    description:
      'Take over a Flux installation managed by another tool, apply only (do not wait), into a custom namespace.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:install',
          id: 'install',
          name: 'Install Flux',
          input: {
            cluster: 'staging',
            namespace: 'gitops',
            syncUrl:
              'ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
            path: 'clusters/staging',
            force: true,
            wait: false,
          },
        },
      ],
    }),
  },
];
