import { createFrontendPlugin } from '@backstage/frontend-plugin-api';

/** The Flux bootstrap plugin for the new frontend system. @alpha */
export default createFrontendPlugin({
  pluginId: 'flux-bootstrap',
  extensions: [],
});
