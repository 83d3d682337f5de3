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

/**
 * The detail of `flux:install` for the generated action reference
 * (docs/reference/actions.md; links are relative to that page).
 */
export const docs = `
Puts Flux on the cluster and waits until it syncs from Git, as the last steps of
\`flux bootstrap\` do — the components by server-side apply with field manager \`flux\`, then the
GitRepository and Kustomization — and waits until Flux applied the pushed revision and its
controllers are available:

1. **Preconditions**, read only, before anything is applied:
   - the cluster's Kubernetes version is one the Flux minor supports
     (\`fluxBootstrap.kubernetesVersions\`), as \`flux check --pre\` checks it — also in a dry run,
     where an unreachable cluster only warns;
   - no newer Flux is installed, unless \`allowDowngrade: true\`;
   - SelfSubjectAccessReviews for everything the apply needs (\`create\` and \`patch\` of every
     kind in the bundle, \`bind\` of the ClusterRoles the bindings reference, \`get\` of CRDs and of
     the Kustomization). For a first install that amounts to cluster-admin;
   - Flux not managed by another tool (label \`app.kubernetes.io/managed-by\` on the CRD
     \`gitrepositories.source.toolkit.fluxcd.io\`), unless \`force: true\`;
   - an existing Kustomization \`<namespace>/<namespace>\` syncs the same \`path\`.
2. **Apply** by server-side apply with field manager \`flux\`: the Namespace first, then the CRDs
   all at once and, while it waits until they are Established and served, the objects that are
   not custom resources, with bounded concurrency (custom resources of those CRDs, if any, after
   the wait). An object that is already as wanted is not written again. When the Kustomization
   already has a \`lastAppliedRevision\`, Flux updates itself from Git and the components are not
   applied.
3. With \`tokenAuth: true\`, the Secret \`<namespace>/<secretName>\` with \`username\`, \`password\`
   (the token) and \`ca.crt\` (when the Bitbucket host has a CA configured). The token is the
   \`token\` input, else the integration's credentials for the sync URL's host (not with
   \`scaffolder.requireScmUserCredentials\`). \`username\` defaults to the integration's username,
   else to the token's owner, which Bitbucket names in the \`X-AUSERNAME\` header of an
   authenticated answer; a project or repository token has no owner, so it needs \`username\`.
   All of this is settled before anything is sent to the cluster.
4. The sync objects of \`gotk-sync.yaml\`.
5. **Wait** (unless \`wait: false\`) until the GitRepository's artifact revision and the
   Kustomization's applied revision equal \`revision\` (or the branch head), both Ready, then every
   Flux Deployment available. Every few seconds it logs what it still waits for and why; a
   Ready=False condition fails at once with the controller's message.

\`timeout\` bounds all of it (default \`5m\`, from 10 s to 24 h). Cancelling the task stops the wait
at once. In a dry run it prints what it would apply (the Secret's keys, not its values) and sends
nothing; it accepts the revision without a commit (\`main@sha1:\`) that a dry run of
\`flux:push-manifests\` outputs.
`;
