import { createApp } from '@backstage/frontend-defaults';
import catalogPlugin from '@backstage/plugin-catalog/alpha';
import scaffolderPlugin from '@backstage/plugin-scaffolder/alpha';
import fluxBootstrapPlugin from '@flux-bootstrap/plugin-flux-bootstrap/alpha';
import { navModule } from './modules/nav';
import { scmAuthModule } from './modules/scmAuth';
import { signInModule } from './modules/signIn';

/**
 * The app: catalog (landing page), scaffolder (templates, form, task page), the Flux bootstrap
 * plugin (the card on cluster Resource pages and on fleet repository Components, and the
 * templates' form fields FluxClusterPicker, BitbucketServerRepoUrlPicker, SecretTextarea and
 * BitbucketServerToken),
 * guest sign-in, Bitbucket Server sign-in for the templates' repository field (scmAuthApiRef
 * for the configured Bitbucket Server hosts, used where the backend configures the
 * bitbucketServer auth provider), and a nav bar showing `app.title` ("… Sandbox" when started by
 * `npm run sandbox`).
 */
export const appFeatures = [
  catalogPlugin,
  scaffolderPlugin,
  fluxBootstrapPlugin,
  navModule,
  signInModule,
  scmAuthModule,
];

export default createApp({ features: appFeatures });
