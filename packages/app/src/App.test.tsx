import fs from 'node:fs';
import path from 'node:path';
import { renderTestApp } from '@backstage/frontend-test-utils';
import {
  bitbucketAuthApiRef,
  bitbucketServerAuthApiRef,
  type OAuthApi,
} from '@backstage/frontend-plugin-api';
import { scmAuthApiRef } from '@backstage/integration-react';
import { formFieldsApiRef } from '@backstage/plugin-scaffolder-react/alpha';
import yaml from 'yaml';
import { appFeatures } from './App';
import { signInModule } from './modules/signIn';

/** Every `ui:field` a template's parameters use, across pages and dependency branches. */
function uiFields(node: unknown, found = new Set<string>()): Set<string> {
  if (Array.isArray(node)) node.forEach(n => uiFields(n, found));
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === 'ui:field' && typeof value === 'string') found.add(value);
      else uiFields(value, found);
    }
  }
  return found;
}

// The scaffolder's own fields these templates use (built into its form).
const BACKSTAGE_FIELDS = ['OwnerPicker', 'Secret'];

describe('the app', () => {
  it("has every form field the shipped templates use: the scaffolder's own and the Flux bootstrap plugin's", async () => {
    const templatesDir = path.resolve(__dirname, '../../../templates');
    const used = new Set<string>();
    for (const name of fs.readdirSync(templatesDir)) {
      const file = path.join(templatesDir, name, 'template.yaml');
      if (!fs.existsSync(file)) continue;
      uiFields(yaml.parse(fs.readFileSync(file, 'utf8')).spec.parameters, used);
    }
    // The app's features as they are, except the sign-in page (a test app is signed in).
    const { apis } = renderTestApp({
      features: appFeatures.filter(f => f !== signInModule),
    });
    const installed = (
      (await apis.get(formFieldsApiRef)!.loadFormFields()) as unknown as {
        name: string;
      }[]
    ).map(f => f.name);
    expect(installed).toEqual(
      expect.arrayContaining([
        'FluxClusterPicker',
        'BitbucketServerRepoUrlPicker',
        'SecretTextarea',
        'BitbucketServerToken',
      ]),
    );
    const missing = [...used].filter(
      f => !installed.includes(f) && !BACKSTAGE_FIELDS.includes(f),
    );
    expect(missing).toEqual([]);
  });

  it('links the Flux fleet page from the sidebar, and serves it at /flux-fleet', async () => {
    const { findByRole } = renderTestApp({
      features: appFeatures.filter(f => f !== signInModule),
      initialRouteEntries: ['/flux-fleet'],
    });
    const link = await findByRole(
      'link',
      { name: /Flux fleet/ },
      { timeout: 20_000 },
    );
    expect(link).toHaveAttribute('href', '/flux-fleet');
    expect(
      await findByRole(
        'heading',
        { name: 'Flux fleet', level: 1 },
        { timeout: 20_000 },
      ),
    ).toBeInTheDocument();
  }, 60_000);

  it("asks the bitbucketServer auth API for a token of a configured Bitbucket Server host, with the template's scopes", async () => {
    const fakeAuth = (token: string) => {
      const calls: string[][] = [];
      const api = {
        getAccessToken: async (scopes?: string | string[]) => {
          calls.push([scopes ?? []].flat());
          return token;
        },
      } as unknown as OAuthApi;
      return { api, calls };
    };
    const server = fakeAuth('bitbucket-server-user-token');
    const cloud = fakeAuth('bitbucket-cloud-user-token');
    const { apis } = renderTestApp({
      features: appFeatures.filter(f => f !== signInModule),
      config: {
        app: { baseUrl: 'http://localhost:7007' },
        backend: { baseUrl: 'http://localhost:7007' },
        integrations: {
          bitbucketServer: [
            { host: 'bitbucket.example.com' },
            { host: '127.0.0.1:7990' },
          ],
        },
      },
      apis: [
        [bitbucketServerAuthApiRef, server.api],
        [bitbucketAuthApiRef, cloud.api],
      ],
    });
    const scmAuth = apis.get(scmAuthApiRef)!;
    // What RepoUrlPicker and the Flux bootstrap repository field ask for.
    const creds = await scmAuth.getCredentials({
      url: 'https://127.0.0.1:7990',
      additionalScope: {
        repoWrite: true,
        customScopes: { bitbucket: ['REPO_ADMIN', 'PROJECT_ADMIN'] },
      },
    });
    expect(creds).toEqual({
      token: 'bitbucket-server-user-token',
      headers: { Authorization: 'Bearer bitbucket-server-user-token' },
    });
    expect(server.calls).toEqual([
      [
        'PUBLIC_REPOS',
        'REPO_READ',
        'REPO_WRITE',
        'REPO_ADMIN',
        'PROJECT_ADMIN',
      ],
    ]);
    await scmAuth.getCredentials({ url: 'https://bitbucket.example.com/x' });
    expect(server.calls[1]).toEqual(['PUBLIC_REPOS', 'REPO_READ']);
    // Backstage's defaults stay: bitbucket.org through the bitbucket (cloud) provider.
    await expect(
      scmAuth.getCredentials({ url: 'https://bitbucket.org/team/repo' }),
    ).resolves.toMatchObject({ token: 'bitbucket-cloud-user-token' });
    // A host that is no integration has no sign-in.
    await expect(
      scmAuth.getCredentials({ url: 'https://other.example.com' }),
    ).rejects.toThrow(
      /No auth provider available for 'https:\/\/other.example.com'/,
    );
    expect(server.calls).toHaveLength(2);
  });
});
