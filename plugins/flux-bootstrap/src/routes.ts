import { createRouteRef } from '@backstage/core-plugin-api';

/** Route of the fleet page in the legacy frontend system (`FluxFleetPage`). @public */
export const fluxFleetRouteRef = createRouteRef({ id: 'flux-bootstrap:fleet' });
