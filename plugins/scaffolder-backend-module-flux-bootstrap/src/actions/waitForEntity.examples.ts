import type { TemplateExample } from '@backstage/plugin-scaffolder-node';
import yaml from 'yaml';

/** Examples shown in the scaffolder's action list for `fleet:wait-for-entity`. */
export const examples: TemplateExample[] = [
  {
    description:
      'Register the cluster (a location from the template global clusterEntityUrl), then wait until the catalog shows its entity, so the output link to it works at once.',
    example: yaml.stringify(
      {
        steps: [
          {
            action: 'catalog:register',
            id: 'register',
            name: 'Register the cluster in the catalog',
            input: {
              catalogInfoUrl:
                "${{ clusterEntityUrl({ name: parameters.cluster, owner: parameters.owner, repository: steps.createRepo.output.repoContentsUrl, branch: 'main', path: 'clusters/' + parameters.cluster }) }}",
              optional: true,
            },
          },
          {
            action: 'fleet:wait-for-entity',
            id: 'waitForCluster',
            name: 'Wait until the catalog shows the cluster',
            input: {
              entityRef: '${{ steps.register.output.entityRef }}',
            },
          },
        ],
        output: {
          links: [
            {
              title: 'Cluster',
              icon: 'catalog',
              entityRef: '${{ steps.waitForCluster.output.entityRef }}',
            },
          ],
        },
      },
      { lineWidth: 0 },
    ),
  },
  {
    description: 'Wait up to 5 minutes for an entity registered elsewhere.',
    example: yaml.stringify({
      steps: [
        {
          action: 'fleet:wait-for-entity',
          id: 'waitForComponent',
          name: 'Wait for the component',
          input: {
            entityRef: 'component:default/fleet-infra',
            timeoutSeconds: 300,
          },
        },
      ],
    }),
  },
];
