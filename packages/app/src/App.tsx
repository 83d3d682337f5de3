import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import scaffolderPlugin from '@backstage/plugin-scaffolder/alpha';
import fluxBootstrapPlugin from '@flux-bootstrap/plugin-flux-bootstrap/alpha';
import { navModule } from './modules/nav';
import { signInModule } from './modules/signIn';
import { scaffolderFieldsModule } from './modules/scaffolder';

/**
 * The app: catalog (landing page), scaffolder (templates, form, task page), the Flux bootstrap
 * card on cluster Resource pages and on fleet repository Components, guest sign-in, and a nav
 * bar showing `app.title` ("… Sandbox" when started by `npm run sandbox`).
 */
export default createApp({
  features: [
    catalogPlugin,
    scaffolderPlugin,
    fluxBootstrapPlugin,
    navModule,
    signInModule,
    scaffolderFieldsModule,
  ],
});
