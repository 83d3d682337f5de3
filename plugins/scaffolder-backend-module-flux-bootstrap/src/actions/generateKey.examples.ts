import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `flux:generate-key`. */
export const examples: TemplateExample[] = [
  {
    description:
      "The default deploy key of a cluster: an ECDSA P-384 key in Secret flux-system/flux-system, registered read-only on the fleet repository with flux's label, the user's own token from a Secret field.",
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:generate-key',
          id: 'deployKey',
          name: 'Create the Flux deploy key',
          input: {
            cluster: 'production',
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            token: '${{ secrets.bitbucketToken }}',
            branch: 'main',
            path: 'clusters/production',
          },
        },
      ],
    }),
  },
  {
    description:
      'An Ed25519 key with write access (for Flux image automation), the Bitbucket SSH endpoint given explicitly and its host key pinned instead of trusted on first scan.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:generate-key',
          id: 'deployKey',
          name: 'Create a read-write Flux deploy key',
          input: {
            cluster: 'staging',
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            algorithm: 'ed25519',
            readWrite: true,
            path: 'clusters/staging',
            sshHost: 'ssh.bitbucket.example.com:7999',
            hostKeyFingerprint:
              'SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s',
          },
        },
      ],
    }),
  },
  {
    description:
      'Rotate the key of a cluster: a new RSA 4096 key in the Secret, the new public key registered and the old access key removed.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:generate-key',
          id: 'rotateKey',
          name: 'Rotate the Flux deploy key',
          input: {
            cluster: 'production',
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            path: 'clusters/production',
            algorithm: 'rsa',
            rsaBits: 4096,
            rotate: true,
          },
        },
      ],
    }),
  },
  {
    description:
      "Bootstrap without a Bitbucket token (flux bootstrap git --private-key-file --password): store your own key, registered on the repository in advance, and its passphrase from the template's Secret fields. No key is generated and Bitbucket is not called; the host key is scanned from the URL's host and port.",
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:generate-key',
          id: 'gitSecret',
          name: 'Give Flux your SSH key',
          input: {
            cluster: 'production',
            url: 'ssh://git@bitbucket.example.com:7999/plat/fleet-infra.git',
            sshPrivateKeySecret: 'sshPrivateKey',
            sshPassphraseSecret: 'sshPassphrase',
          },
        },
      ],
    }),
  },
  {
    description:
      'Use the outputs: show the public key and its fingerprint on the task page.',
    example: yaml.stringify({
      steps: [
        {
          action: 'flux:generate-key',
          id: 'deployKey',
          name: 'Create the Flux deploy key',
          input: {
            cluster: 'production',
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            path: 'clusters/production',
          },
        },
      ],
      output: {
        text: [
          {
            title: 'Flux deploy key',
            content:
              'Access key ${{ steps.deployKey.output.accessKeyId }}: `${{ steps.deployKey.output.fingerprint }}`',
          },
        ],
      },
    }),
  },
];
