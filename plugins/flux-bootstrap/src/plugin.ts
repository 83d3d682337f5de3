import { createPlugin } from '@backstage/core-plugin-api';

/** The Flux bootstrap frontend plugin (legacy frontend system). @public */
export const fluxBootstrapPlugin = createPlugin({
  id: 'flux-bootstrap',
});
