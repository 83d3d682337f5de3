/*
 * Dev harness of the status backend: `npm start -w @flux-bootstrap/plugin-flux-bootstrap-backend`
 * (= backstage-cli package start --config dev/app-config.yaml). Every
 * request is a signed-in mock user allowed everything, and the catalog holds one Component that
 * lists the configured clusters (K8S_CLUSTER_NAME, see dev/app-config.yaml), so
 *
 *   curl http://localhost:7017/api/flux-bootstrap/clusters?state=true
 *   curl http://localhost:7017/api/flux-bootstrap/entity/component/default/fleet-infra/clusters
 *
 * show what the card shows.
 */
import { createBackend } from '@backstage/backend-defaults';
import { mockServices } from '@backstage/backend-test-utils';
import { catalogServiceMock } from '@backstage/plugin-catalog-node/testUtils';
import { AuthorizeResult } from '@backstage/plugin-permission-common';

const clusters =
  process.env.FLUX_DEV_CLUSTERS ?? process.env.K8S_CLUSTER_NAME ?? 'my-cluster';

const backend = createBackend();
backend.add(mockServices.auth.factory());
backend.add(mockServices.httpAuth.factory());
backend.add(
  mockServices.permissions.factory({ result: AuthorizeResult.ALLOW }),
);
backend.add(
  catalogServiceMock.factory({
    entities: [
      {
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        metadata: {
          name: 'fleet-infra',
          namespace: 'default',
          annotations: { 'flux-bootstrap.io/clusters': clusters },
        },
        spec: { type: 'service', owner: 'platform', lifecycle: 'production' },
      },
    ],
  }),
);
backend.add(import('../src'));
backend.start();
