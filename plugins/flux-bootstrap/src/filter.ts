import type { Entity } from '@backstage/catalog-model';
import type { FilterPredicate } from '@backstage/filter-predicates';
import {
  FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION,
  getEntityClusterNames,
  KUBERNETES_CLUSTER_RESOURCE_TYPE,
} from '@flux-bootstrap/plugin-flux-bootstrap-common';

/**
 * Where the card belongs (new frontend system filter predicate): cluster Resources, and entities
 * carrying the `flux-bootstrap.io/clusters` annotation. Overridable in app-config
 * (`app.extensions: - entity-card:flux-bootstrap/cluster-status: { config: { filter: … } }`).
 * @public
 */
export const fluxBootstrapCardFilter: FilterPredicate = {
  $any: [
    { kind: 'resource', 'spec.type': KUBERNETES_CLUSTER_RESOURCE_TYPE },
    {
      [`metadata.annotations.${FLUX_BOOTSTRAP_CLUSTERS_ANNOTATION}`]: {
        $exists: true,
      },
    },
  ],
};

/**
 * Same rule as a function, for the legacy `EntitySwitch.Case if={isFluxBootstrapAvailable}`.
 * @public
 */
export function isFluxBootstrapAvailable(entity: Entity): boolean {
  return getEntityClusterNames(entity).length > 0;
}
