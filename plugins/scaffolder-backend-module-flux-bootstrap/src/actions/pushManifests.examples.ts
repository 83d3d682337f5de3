import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:push-manifests`. */
export const examples: TemplateExample[] = [
  {
    description:
      "Flux's manifests for one cluster in the repository created by bitbucket:create-repo, synced over SSH with the access key of flux:generate-key (flux bootstrap bitbucket-server defaults).",
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:push-manifests',
          id: 'pushManifests',
          name: 'Commit the Flux manifests',
          input: {
            repoUrl: '${{ parameters.repoUrl }}',
            token: '${{ secrets.bitbucketToken }}',
            cluster: '${{ parameters.cluster }}',
            branch: '${{ steps.createRepo.output.defaultBranch }}',
            syncUrl: '${{ steps.createRepo.output.sshUrl }}',
          },
        },
      ],
    }),
  },
  {
    description:
      'A customised installation: another namespace and path, the image automation controllers, a registry mirror with a pull secret, tolerations, debug logs, no network policies, and a pinned Flux version; Flux syncs over HTTPS with the token.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:push-manifests',
          id: 'pushManifests',
          name: 'Commit the Flux manifests',
          input: {
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            path: 'clusters/production/eu-west-1',
            branch: 'production',
            namespace: 'flux',
            tokenAuth: true,
            fluxVersion: 'v2.9.4',
            componentsExtra: [
              'image-reflector-controller',
              'image-automation-controller',
            ],
            registry: 'registry.example.com/fluxcd',
            imagePullSecret: 'regcred',
            tolerationKeys: ['node-role.kubernetes.io/infra'],
            logLevel: 'debug',
            networkPolicy: false,
            authorName: 'Backstage',
            authorEmail: 'backstage@example.com',
            commitMessageAppendix:
              'Requested by ${{ user.entity.metadata.name }} in Backstage',
          },
        },
      ],
    }),
  },
  {
    description:
      'Bootstrap without a Bitbucket token: an existing repository and a private key the user supplies (with its passphrase) as Secret fields, pushed over SSH with strict host key checking.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:push-manifests',
          id: 'pushManifests',
          name: 'Commit the Flux manifests over SSH',
          input: {
            url: 'ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
            sshPrivateKeySecret: 'sshPrivateKey',
            sshPassphraseSecret: 'sshPassphrase',
            knownHosts: '${{ parameters.knownHosts }}',
            branch: 'main',
            path: 'clusters/my-cluster',
          },
        },
      ],
    }),
  },
];
