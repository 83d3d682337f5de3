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

/**
 * The detail of `flux:push-manifests` for the generated action reference
 * (docs/reference/actions.md; links are relative to that page).
 */
export const docs = `
Generates Flux's manifests and commits them to the fleet repository as \`flux bootstrap\` does,
under \`<path>/<namespace>/\`:

- \`gotk-components.yaml\` — the Flux controllers, built from the Flux release bundle
  (\`manifests.tar.gz\`) of \`fluxVersion\` with the same transformations as
  \`flux install --export\` (components, registry, image pull secret, network policy, watch all
  namespaces, log level, cluster domain, tolerations);
- \`gotk-sync.yaml\` — the \`GitRepository\` and \`Kustomization\` named after the namespace;
- \`kustomization.yaml\` — only when the folder has none, so your own patches survive.

It commits them as flux does, in two commits — \`Add Flux <version> component manifests\`, then
\`Add Flux sync manifests\` — and pushes each. A file whose content is unchanged makes no commit
(\`changed: false\`); a push rejected because the branch moved is redone on top of the new head
(rebased).
Where the release bundle comes from is configured under
[\`fluxBootstrap.manifests\`](configuration.md).

Two ways to reach the repository:

- \`repoUrl\` — a Bitbucket repository pushed over HTTPS with the \`token\` input or the
  integration's credentials (\`REPO_WRITE\` needed), with the host's CA.
- \`url\` — any \`ssh://\` remote pushed with the system \`git\` and a private key read from the task
  secrets by name (\`sshPrivateKeySecret\`, optionally \`sshPassphraseSecret\`), against the
  \`knownHosts\` you give (strict host key checking). This is "bootstrap without a Bitbucket
  token". The key is written to a temporary \`0600\` file for the push and deleted afterwards.

\`syncUrl\` is derived from where the repository is: its SSH URL (\`url\` itself for an SSH remote),
or with \`tokenAuth\` its HTTPS URL — after the repository was looked up, so a project named by
its name gets its real key. Cross-field rules fail before any request: exactly one of \`repoUrl\`
and \`url\`; \`path\` or \`cluster\`; \`tokenAuth\` and \`signCommits\` only with \`repoUrl\`.

In a dry run the three files are generated into the task workspace and nothing is pushed.
`;
