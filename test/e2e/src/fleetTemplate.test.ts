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

// Static checks of the fleet template (templates.test.ts checks the single-cluster ones): what
// the catalog enforces, the multi-select cluster picker, secrets only through secrets.*, and
// the one action it runs before registering every cluster.
const repoRoot = path.resolve(__dirname, '../../..');
const file = path.join(
  repoRoot,
  'templates/flux-bootstrap-fleet/template.yaml',
);
const entity = yaml.parse(fs.readFileSync(file, 'utf8')) as Entity;
const spec = entity.spec as any;
const props = Object.assign(
  {},
  ...spec.parameters.map((p: any) => p.properties),
);

describe('template flux-bootstrap-fleet', () => {
  it('passes the catalog entity policies and the Template v1beta3 schema', async () => {
    const policy = EntityPolicies.allOf([
      new DefaultNamespaceEntityPolicy(),
      new NoForeignRootFieldsEntityPolicy(),
      new FieldFormatEntityPolicy(),
      new SchemaValidEntityPolicy(),
    ]);
    const checked = await policy.enforce(entity);
    expect(await templateEntityV1beta3Validator.check(checked!)).toBe(true);
    expect(entity.metadata.name).toBe('flux-bootstrap-fleet');
    expect(spec.owner).toBeUndefined();
  });

  it('picks several clusters with the cluster picker (multiple: true → string[])', () => {
    expect(props.clusters).toMatchObject({
      type: 'array',
      items: { type: 'string' },
      uniqueItems: true,
      minItems: 1,
      'ui:field': 'FluxClusterPicker',
      'ui:options': { multiple: true },
    });
    expect(props.pathPattern.default).toBe('clusters/<cluster>');
    expect(
      new RegExp(props.pathPattern.pattern).test('clusters/<cluster>'),
    ).toBe(true);
    expect(new RegExp(props.pathPattern.pattern).test('clusters/all')).toBe(
      false,
    );
  });

  it('runs flux:bootstrap-fleet once, then registers each cluster', () => {
    expect(spec.steps.map((s: any) => s.action)).toEqual([
      'flux:bootstrap-fleet',
      'catalog:register',
    ]);
    const [fleet, register] = spec.steps;
    expect(fleet.input.clusters).toBe('${{ parameters.clusters }}');
    for (const option of [
      'fluxVersion',
      'componentsExtra',
      'networkPolicy',
      'registry',
      'interval',
      'concurrency',
      'timeout',
    ])
      expect(fleet.input[option]).toBe(`\${{ parameters.${option} }}`);
    expect(register.each).toBe('${{ parameters.clusters }}');
    expect(register.input.catalogInfoUrl).toContain(
      'clusterEntityUrl({ name: each.value',
    );
    expect(register.input.optional).toBe(true);
  });

  it('offers SSH access keys or the token over HTTPS, as the single-cluster template does', () => {
    const flux = spec.parameters.find((p: any) => p.properties.authentication);
    expect(flux.properties.authentication).toMatchObject({
      default: 'ssh',
      enum: ['ssh', 'token'],
    });
    const [ssh, token] = flux.dependencies.authentication.oneOf.map((o: any) =>
      Object.keys(o.properties).sort(),
    );
    expect(ssh).toEqual(['authentication', 'keyAlgorithm', 'readWriteKey']);
    expect(token).toEqual(['authentication', 'username']);
    const input = spec.steps[0].input;
    expect(input.tokenAuth).toBe("${{ parameters.authentication == 'token' }}");
    // The SSH-only inputs stay unset with HTTPS: the action refuses them with tokenAuth.
    expect(input.algorithm).toContain(
      "if parameters.authentication != 'token'",
    );
    expect(input.readWrite).toContain(
      "if parameters.authentication != 'token'",
    );
  });

  it("acts as the signed-in user, else the token field's token, else the integration's; masked on review", () => {
    expect(props.token['ui:field']).toBe('BitbucketServerToken');
    expect(props.token['ui:backstage'].review.mask).toBeTruthy();
    expect(props.token['ui:options'].userCredentialsSecretsKey).toBe(
      'USER_OAUTH_TOKEN',
    );
    const request = props.repoUrl['ui:options'].requestUserCredentials;
    expect(request.secretsKey).toBe('USER_OAUTH_TOKEN');
    expect(request.additionalScopes.bitbucket).toEqual(
      expect.arrayContaining(['PROJECT_ADMIN', 'REPO_ADMIN']),
    );
    // SSH: the sign-in, else the token field, else ''; HTTPS: what Flux stores, never the sign-in.
    expect(spec.steps[0].input.token).toBe(
      "${{ (secrets.token or '') if parameters.authentication == 'token' else (secrets.USER_OAUTH_TOKEN or secrets.token or '') }}",
    );
    const text = JSON.stringify({ steps: spec.steps, output: spec.output });
    expect(text).not.toContain('parameters.token');
    expect(JSON.stringify(spec.output)).not.toContain('secrets.');
  });
});
