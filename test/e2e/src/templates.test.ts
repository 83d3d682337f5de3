import fs from 'node:fs';
import path from 'node:path';
import {
  DefaultNamespaceEntityPolicy,
  Entity,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
} from '@backstage/catalog-model';
import { templateEntityV1beta3Validator } from '@backstage/plugin-scaffolder-common';
import yaml from 'yaml';

// Static checks of the two templates: what the catalog enforces (entity policies + the Template
// kind's schema), plus this project's rules. The sandbox suite loads them through the real
// catalog and runs them through the scaffolder REST API.
const repoRoot = path.resolve(__dirname, '../../..');
const TEMPLATES = ['flux-bootstrap-bitbucket-server', 'flux-bootstrap-git'];

function load(name: string): Entity {
  const file = path.join(repoRoot, 'templates', name, 'template.yaml');
  return yaml.parse(fs.readFileSync(file, 'utf8')) as Entity;
}

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);

/** Every string in a JSON-like value, with its path. */
function strings(value: unknown, at = ''): { at: string; value: string }[] {
  if (typeof value === 'string') return [{ at, value }];
  if (Array.isArray(value))
    return value.flatMap((v, i) => strings(v, `${at}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) =>
      strings(v, at ? `${at}.${k}` : k),
    );
  }
  return [];
}

/**
 * Parameters whose value goes into the task's secrets: `ui:field: Secret` (masked on the review
 * page by Backstage) and the plugin's `ui:field: SecretTextarea` (multi-line) and
 * `ui:field: BitbucketServerToken` (masked by `ui:backstage.review.mask`), across all pages and
 * dependency branches.
 */
function secretParameters(entity: Entity): { name: string; schema: any }[] {
  const found = new Map<string, any>();
  const visit = (node: unknown) => {
    if (!node || typeof node !== 'object') return;
    const props = (node as { properties?: Record<string, any> }).properties;
    if (props) {
      for (const [name, schema] of Object.entries(props)) {
        if (
          ['Secret', 'SecretTextarea', 'BitbucketServerToken'].includes(
            schema?.['ui:field'],
          )
        )
          found.set(name, schema);
      }
    }
    for (const v of Object.values(node)) visit(v);
  };
  visit((entity.spec as any).parameters);
  return [...found].map(([name, schema]) => ({ name, schema }));
}

/** Every parameter name a template's form can set, across all pages and dependency branches. */
function parameterNames(node: unknown): string[] {
  if (!node || typeof node !== 'object') return [];
  const own = Object.keys(
    (node as { properties?: Record<string, unknown> }).properties ?? {},
  );
  return own.concat(Object.values(node).flatMap(v => parameterNames(v)));
}

describe.each(TEMPLATES)('template %s', name => {
  const entity = load(name);
  const spec = entity.spec as any;

  it('passes the catalog entity policies and the Template v1beta3 schema', async () => {
    const checked = await policy.enforce(entity);
    expect(checked).toBeDefined();
    expect(await templateEntityV1beta3Validator.check(checked!)).toBe(true);
    expect(entity.metadata.name).toBe(name);
  });

  it('names every step in camelCase, uniquely', () => {
    const ids = spec.steps.map((s: { id: string }) => s.id);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z0-9]*$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('passes secrets only through ${{ secrets.* }} and masks them on the review page', () => {
    const secrets = secretParameters(entity);
    expect(secrets.length).toBeGreaterThan(0);
    const all = strings(spec.steps).concat(strings(spec.output, 'output'));
    // Backstage masks `ui:field: Secret` itself; other secret fields say how to mask.
    const unmasked = secrets.filter(
      ({ schema }) =>
        schema['ui:field'] !== 'Secret' &&
        !schema['ui:backstage']?.review?.mask,
    );
    expect(unmasked.map(s => s.name)).toEqual([]);
    for (const { name: secret } of secrets) {
      // Never read as a parameter (parameters are stored with the task and shown on review).
      for (const s of all)
        expect(s.value).not.toMatch(new RegExp(`parameters\\.${secret}\\b`));
      // Read as ${{ secrets.x }}, or named in an action's `…Secret` input (the action reads the
      // task secret itself, so the value never passes through inputs).
      const byName = spec.steps.some((st: any) =>
        Object.entries(st.input ?? {}).some(
          ([k, v]) =>
            /Secret$/.test(k) &&
            (v === secret || v === `\${{ '${secret}' if secrets.${secret} }}`),
        ),
      );
      expect(
        byName || all.some(s => s.value.includes(`secrets.${secret}`)),
      ).toBe(true);
    }
    // Inputs that carry credentials come from secrets and nothing else: one secret, or
    // fallbacks between secrets (the user's Bitbucket sign-in, else the token field), ending
    // in '' (the integration's credentials).
    const credentialInputs = spec.steps.flatMap((st: any) =>
      Object.entries(st.input ?? {})
        .filter(([key]) => /^(token|privateKey|passphrase|password)$/.test(key))
        .map(([key, value]) => `${st.id}.${key}=${value}`),
    );
    for (const input of credentialInputs) {
      expect(input).toMatch(
        /=\$\{\{ secrets\.[A-Za-z_]+( or secrets\.[A-Za-z_]+)*( or '')? \}\}$/,
      );
    }
    // Nothing secret in the output.
    for (const s of strings(spec.output, 'output'))
      expect(s.value).not.toContain('secrets.');
  });

  it('offers the Flux options of flux bootstrap and passes each the same to flux:push-manifests and flux:install', () => {
    // What the two actions both generate manifests from: the committed files and what is
    // installed must come from the same values, or Flux would change itself on its first sync.
    const fluxOptions = [
      'fluxVersion',
      'distribution',
      'componentsExtra',
      'networkPolicy',
      'registry',
      'imagePullSecret',
      'logLevel',
      'watchAllNamespaces',
      'clusterDomain',
      'tolerationKeys',
      'interval',
    ];
    const push = spec.steps.find(
      (s: any) => s.action === 'flux:push-manifests',
    );
    const install = spec.steps.find((s: any) => s.action === 'flux:install');
    const offered = new Set(parameterNames(spec.parameters));
    for (const option of fluxOptions) {
      expect({ option, offered: offered.has(option) }).toEqual({
        option,
        offered: true,
      });
      expect({ option, push: push.input[option] }).toEqual({
        option,
        push: `\${{ parameters.${option} }}`,
      });
      expect({ option, install: install.input[option] }).toEqual({
        option,
        install: `\${{ parameters.${option} }}`,
      });
    }
  });

  it('registers the cluster as a kubernetes-cluster Resource and links to it once the catalog shows it', () => {
    const register = spec.steps.find(
      (s: any) => s.action === 'catalog:register',
    );
    expect(register?.input?.catalogInfoUrl).toContain('clusterEntityUrl(');
    expect(register.input.optional).toBe(true);
    const cluster = spec.output.links.find((l: any) => l.title === 'Cluster');
    // The link waits for the catalog to have processed the location (no "Entity not found").
    expect(cluster.entityRef).toBe(
      '${{ steps.waitForCluster.output.entityRef }}',
    );
    const wait = spec.steps.find(
      (s: any) => s.action === 'fleet:wait-for-entity',
    );
    expect(wait.input.entityRef).toBe('${{ steps.register.output.entityRef }}');
  });

  it('asks how Flux is installed and migrates a flux bootstrap folder only when the push reports it', () => {
    const distribution = spec.parameters.find((p: any) =>
      Object.keys(p.properties ?? {}).includes('distribution'),
    ).properties.distribution;
    expect(distribution).toMatchObject({
      title: 'How Flux is installed',
      default: 'bootstrap',
      enum: ['bootstrap', 'operator'],
    });
    const byId = (id: string) => spec.steps.find((s: any) => s.id === id);
    const [push, install, migrate, installMigrated] = [
      'pushManifests',
      'install',
      'migrate',
      'installMigrated',
    ].map(byId);
    const condition = '${{ steps.pushManifests.output.migrationPending }}';
    expect(migrate).toMatchObject({
      action: 'flux:push-manifests',
      if: condition,
      input: { ...push.input, migrate: true },
    });
    expect(installMigrated).toMatchObject({
      action: 'flux:install',
      if: condition,
      input: {
        ...install.input,
        revision: '${{ steps.migrate.output.revision }}',
      },
    });
    // In the order of the operator's migration: adopt (install), then replace the files.
    const ids = spec.steps.map((s: any) => s.id);
    expect(ids.indexOf('install')).toBeLessThan(ids.indexOf('migrate'));
    expect(ids.indexOf('migrate')).toBeLessThan(ids.indexOf('installMigrated'));
  });
});

describe('flux-bootstrap-bitbucket-server', () => {
  const spec = load('flux-bootstrap-bitbucket-server').spec as any;

  it('runs create-repo → push-manifests → generate-key (SSH only) → install → register → wait for the entity', () => {
    expect(spec.steps.map((s: any) => s.action)).toEqual([
      'bitbucket:create-repo',
      'flux:push-manifests',
      'flux:generate-key',
      'flux:install',
      'flux:push-manifests', // migrate (Flux Operator, when the push asks for it)
      'flux:install', // installMigrated
      'catalog:register',
      'fleet:wait-for-entity',
    ]);
    const generateKey = spec.steps.find(
      (s: any) => s.action === 'flux:generate-key',
    );
    expect(generateKey.if).toBe("${{ parameters.authentication == 'ssh' }}");
  });

  it("with token auth lets the first step check the token's owner, and needs no username", () => {
    const createRepo = spec.steps.find((s: any) => s.id === 'createRepo');
    // Signed in to Bitbucket, the first step acts as the user (whose token is never stored):
    // flux:install checks the stored token's owner itself.
    expect(createRepo.input.tokenAuth).toBe(
      "${{ parameters.authentication == 'token' and not secrets.USER_OAUTH_TOKEN }}",
    );
    const install = spec.steps.find((s: any) => s.id === 'install');
    expect(install.input.tokenAuth).toBe(
      "${{ parameters.authentication == 'token' }}",
    );
    const flux = spec.parameters.find((p: any) => p.properties?.authentication);
    const token = flux.dependencies.authentication.oneOf.find(
      (b: any) => b.properties.authentication.const === 'token',
    );
    expect(token.properties.username).toBeDefined();
    expect(token.required ?? []).not.toContain('username');
  });

  it('offers the deploy key algorithm and curve of --ssh-key-algorithm / --ssh-ecdsa-curve in SSH mode, ECDSA P-384 by default', () => {
    const flux = spec.parameters.find((p: any) => p.properties?.authentication);
    const ssh = flux.dependencies.authentication.oneOf.find(
      (b: any) => b.properties.authentication.const === 'ssh',
    );
    expect(ssh.properties.keyAlgorithm).toMatchObject({
      default: 'ecdsa',
      enum: ['ecdsa', 'ed25519', 'rsa'],
    });
    expect(ssh.properties.ecdsaCurve).toMatchObject({
      default: 'p384',
      enum: ['p256', 'p384', 'p521'],
    });
    const generateKey = spec.steps.find(
      (s: any) => s.action === 'flux:generate-key',
    );
    expect(generateKey.input).toMatchObject({
      algorithm: '${{ parameters.keyAlgorithm }}',
      ecdsaCurve: '${{ parameters.ecdsaCurve }}',
    });
  });

  it("acts as the signed-in user on Bitbucket, but never stores the user's sign-in token in the cluster", () => {
    const props = Object.assign(
      {},
      ...spec.parameters.map((p: any) => p.properties),
    );
    const request = props.repoUrl['ui:options'].requestUserCredentials;
    expect(request.secretsKey).toBe('USER_OAUTH_TOKEN');
    // Creating a repository needs PROJECT_ADMIN; the access key REPO_ADMIN.
    expect(request.additionalScopes.bitbucket).toEqual(
      expect.arrayContaining(['PROJECT_ADMIN', 'REPO_ADMIN']),
    );
    expect(props.token['ui:options'].userCredentialsSecretsKey).toBe(
      'USER_OAUTH_TOKEN',
    );
    const tokens = Object.fromEntries(
      spec.steps
        .filter((s: any) => s.input?.token !== undefined)
        .map((s: any) => [s.id, s.input.token]),
    );
    const user = "${{ secrets.USER_OAUTH_TOKEN or secrets.token or '' }}";
    expect(tokens).toEqual({
      createRepo: user,
      pushManifests: user,
      generateKey: user,
      // Stored in the cluster with tokenAuth: the token field's, else the integration's.
      install: "${{ secrets.token or '' }}",
      // The Flux Operator migration steps, as the steps they repeat.
      migrate: user,
      installMigrated: "${{ secrets.token or '' }}",
    });
  });

  it('links the repository, the pushed commit, the pull request (when one is open) and the cluster', () => {
    const titles = (spec.output.links as any[]).map(l => l.title);
    expect(titles).toEqual(['Repository', 'Commit', 'Pull request', 'Cluster']);
  });

  it('asks how changes reach the branch (push, pull request, or from its restrictions) and passes the pull request on', () => {
    const repo = spec.parameters.find((p: any) => p.properties?.changes);
    expect(repo.properties.changes).toMatchObject({
      default: 'push',
      enum: ['push', 'pull-request', 'auto'],
    });
    const withPr = repo.dependencies.changes.oneOf.find(
      (b: any) => b.properties.changes.enum,
    );
    expect(Object.keys(withPr.properties).sort()).toEqual([
      'changes',
      'mergeTimeout',
      'reviewers',
    ]);
    const push = spec.steps.find(
      (s: any) => s.action === 'flux:push-manifests',
    );
    expect(push.input.pullRequest).toContain("parameters.changes == 'auto'");
    expect(push.input.pullRequest).toMatch(/else false \}\}$/);
    const install = spec.steps.find((s: any) => s.action === 'flux:install');
    expect(install.input.pullRequest).toBe(
      '${{ steps.pushManifests.output.pullRequestUrl }}',
    );
  });

  it("offers the configured clusters and Bitbucket Server hosts through the plugin's form fields", () => {
    const props = Object.assign(
      {},
      ...spec.parameters.map((p: any) => p.properties),
    );
    expect(props.cluster['ui:field']).toBe('FluxClusterPicker');
    expect(props.repoUrl['ui:field']).toBe('BitbucketServerRepoUrlPicker');
    // The token is required only where the host's integration has no credentials.
    expect(props.token['ui:field']).toBe('BitbucketServerToken');
    expect(props.token['ui:options']?.repoUrlField ?? 'repoUrl').toBe(
      'repoUrl',
    );
    const required = spec.parameters.flatMap((p: any) => p.required ?? []);
    expect(required).not.toContain('token');
    const flux = spec.parameters.find((p: any) => p.properties?.authentication);
    expect(flux.properties.authentication.default).toBe('ssh');
  });
});

describe('flux-bootstrap-git', () => {
  const spec = load('flux-bootstrap-git').spec as any;

  it('pushes directly only, and says why (a pull request needs a Bitbucket token)', () => {
    const repo = spec.parameters.find((p: any) => p.properties?.changes);
    expect(repo.properties.changes).toMatchObject({
      enum: ['push'],
      'ui:readonly': true,
    });
    expect(repo.properties.changes.description).toContain('token');
    const push = spec.steps.find(
      (s: any) => s.action === 'flux:push-manifests',
    );
    expect(push.input.pullRequest).toBeUndefined();
  });

  it('gives Flux the user key, pushes over SSH with the scanned host key, installs, registers', () => {
    expect(spec.steps.map((s: any) => s.action)).toEqual([
      'flux:generate-key',
      'flux:push-manifests',
      'flux:install',
      'flux:push-manifests', // migrate (Flux Operator, when the push asks for it)
      'flux:install', // installMigrated
      'catalog:register',
      'fleet:wait-for-entity',
    ]);
    const push = spec.steps.find((s: any) => s.id === 'pushManifests');
    expect(push.input.knownHosts).toBe(
      '${{ steps.gitSecret.output.knownHosts }}',
    );
    expect(push.input.sshPrivateKeySecret).toBe('sshPrivateKey');
    // The plugin's own action in its url mode: the user's key, no repoUrl, no token.
    const gitSecret = spec.steps.find((s: any) => s.id === 'gitSecret');
    expect(gitSecret.input).toMatchObject({
      url: '${{ parameters.url }}',
      sshPrivateKeySecret: 'sshPrivateKey',
    });
    expect(gitSecret.input.repoUrl).toBeUndefined();
    expect(gitSecret.input.token).toBeUndefined();
    const props = Object.assign(
      {},
      ...spec.parameters.map((p: any) => p.properties),
    );
    expect(props.sshPrivateKey['ui:field']).toBe('SecretTextarea');
    expect(props.sshPassphrase['ui:field']).toBe('Secret');
  });
});

describe('flux-decommission', () => {
  const entity = load('flux-decommission');
  const spec = entity.spec as any;

  it('passes the catalog entity policies and the Template v1beta3 schema, steps in camelCase', async () => {
    const checked = await policy.enforce(entity);
    expect(checked).toBeDefined();
    expect(await templateEntityV1beta3Validator.check(checked!)).toBe(true);
    const ids = spec.steps.map((s: { id: string }) => s.id);
    for (const id of ids) expect(id).toMatch(/^[a-z][A-Za-z0-9]*$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('uninstalls → deletes the keys → removes the folder (both only with a repository) → unregisters', () => {
    expect(spec.steps.map((s: any) => s.action)).toEqual([
      'flux:uninstall',
      'bitbucket:delete-access-keys',
      'flux:remove-cluster-path',
      'fleet:unregister-cluster',
    ]);
    for (const step of spec.steps) {
      // every step gets the cluster and its name typed again, straight from the form
      expect(step.input).toMatchObject({
        cluster: '${{ parameters.cluster }}',
        confirm: '${{ parameters.confirm }}',
      });
    }
    // the repository steps run only when the repository is to be cleaned up
    expect(
      Object.fromEntries(spec.steps.map((s: any) => [s.id, s.if ?? null])),
    ).toEqual({
      uninstall: null,
      deleteKeys: '${{ parameters.cleanRepository }}',
      removePath: '${{ parameters.cleanRepository }}',
      unregister: null,
    });
    const required = spec.parameters.flatMap((p: any) => p.required ?? []);
    expect(required).toEqual(expect.arrayContaining(['cluster', 'confirm']));
  });

  it("passes the user's Bitbucket sign-in, else the token, only through the secrets and masks the token on the review page", () => {
    const secrets = secretParameters(entity);
    expect(secrets.map(s => s.name)).toEqual(['token']);
    expect(secrets[0].schema['ui:backstage'].review.mask).toBeTruthy();
    for (const s of strings(spec.steps).concat(strings(spec.output)))
      expect(s.value).not.toMatch(/parameters\.token\b/);
    const tokens = spec.steps
      .filter((s: any) => s.input?.token !== undefined)
      .map((s: any) => s.input.token);
    const user = "${{ secrets.USER_OAUTH_TOKEN or secrets.token or '' }}";
    expect(tokens).toEqual([user, user]);
  });
});
