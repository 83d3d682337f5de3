import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `bitbucket:create-repo`. */
export const examples: TemplateExample[] = [
  {
    description:
      "A personal repository of the user running the template, created private with the default branch main, using the user's own token from a Secret field.",
    example: yaml.stringify({
      steps: [
        {
          action: 'bitbucket:create-repo',
          id: 'createRepo',
          name: 'Create the fleet repository',
          input: {
            repoUrl: 'bitbucket.example.com?project=~alice&repo=fleet-infra',
            description: 'Flux fleet repository',
            token: '${{ secrets.bitbucketToken }}',
          },
        },
      ],
    }),
  },
  {
    description:
      'A private project repository whose branch is production, with write access for one group and read access for another.',
    example: yaml.stringify({
      steps: [
        {
          action: 'bitbucket:create-repo',
          id: 'createRepo',
          name: 'Create the fleet repository',
          input: {
            repoUrl: 'bitbucket.example.com?project=PLAT&repo=fleet-infra',
            description: 'Flux fleet repository of the platform team',
            defaultBranch: 'production',
            groups: [
              { name: 'platform-admins', permission: 'REPO_WRITE' },
              { name: 'developers', permission: 'REPO_READ' },
            ],
          },
        },
      ],
    }),
  },
  {
    description:
      'A public repository in a project, using the credentials of integrations.bitbucketServer.',
    example: yaml.stringify({
      steps: [
        {
          action: 'bitbucket:create-repo',
          id: 'createRepo',
          name: 'Create a public fleet repository',
          input: {
            repoUrl: 'bitbucket.example.com?project=OSS&repo=flux-demo',
            private: false,
          },
        },
      ],
    }),
  },
];
