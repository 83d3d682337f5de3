import { featureFlagsApiRef } from '@backstage/core-plugin-api';
import { renderTestApp, TestApiProvider } from '@backstage/frontend-test-utils';
import scaffolderPlugin from '@backstage/plugin-scaffolder/alpha';
import {
  ScaffolderFieldExtensions,
  useCustomFieldExtensions,
} from '@backstage/plugin-scaffolder-react';
import { formFieldsApiRef } from '@backstage/plugin-scaffolder-react/alpha';
import { render } from '@testing-library/react';
import fluxBootstrapPlugin from '../alpha';
import {
  BitbucketServerRepoUrlPickerFieldExtension,
  FluxClusterPickerFieldExtension,
  SecretTextareaFieldExtension,
  BitbucketServerTokenFieldExtension,
} from '../plugin';
import { BitbucketServerToken } from './BitbucketServerToken';
import { BitbucketServerRepoUrlPicker } from './BitbucketServerRepoUrlPicker';
import { ClusterPicker } from './ClusterPicker';
import { SecretTextarea } from './SecretTextarea';

const NAMES = [
  'FluxClusterPicker',
  'BitbucketServerRepoUrlPicker',
  'SecretTextarea',
  'BitbucketServerToken',
];

describe('scaffolder form fields, new frontend system', () => {
  it("are in the scaffolder's form fields of an app that installs the plugin, with their components, validation and ui:options schema", async () => {
    const { apis } = renderTestApp({
      features: [scaffolderPlugin, fluxBootstrapPlugin],
    });
    const fields = (await apis
      .get(formFieldsApiRef)!
      .loadFormFields()) as unknown as {
      name: string;
      component: unknown;
      validation?: unknown;
      schema?: { schema: { uiOptions?: { properties?: object } } };
    }[];
    const ours = fields.filter(f => NAMES.includes(f.name));
    expect(ours.map(f => f.name).sort()).toEqual([...NAMES].sort());
    const byName = Object.fromEntries(ours.map(f => [f.name, f]));
    expect(byName.FluxClusterPicker.component).toBe(ClusterPicker);
    expect(byName.BitbucketServerRepoUrlPicker.component).toBe(
      BitbucketServerRepoUrlPicker,
    );
    expect(byName.SecretTextarea.component).toBe(SecretTextarea);
    expect(byName.BitbucketServerToken.component).toBe(BitbucketServerToken);
    expect(typeof byName.BitbucketServerToken.validation).toBe('function');
    expect(typeof byName.FluxClusterPicker.validation).toBe('function');
    expect(typeof byName.BitbucketServerRepoUrlPicker.validation).toBe(
      'function',
    );
    expect(
      Object.keys(
        byName.FluxClusterPicker.schema!.schema.uiOptions!.properties!,
      ),
    ).toEqual(['multiple', 'allowedClusters']);
    expect(
      Object.keys(
        byName.BitbucketServerToken.schema!.schema.uiOptions!.properties!,
      ),
    ).toEqual(['repoUrlField', 'userCredentialsSecretsKey']);
  });
});

describe('scaffolder form fields, legacy frontend system', () => {
  it('are field extensions the scaffolder page collects from <ScaffolderFieldExtensions>', () => {
    let collected: { name: string; component: unknown }[] = [];
    function Probe(props: { outlet: React.ReactNode }) {
      collected = useCustomFieldExtensions(props.outlet);
      return null;
    }
    render(
      <TestApiProvider
        apis={[[featureFlagsApiRef, { isActive: () => false } as any]]}
      >
        <Probe
          outlet={
            <ScaffolderFieldExtensions>
              <FluxClusterPickerFieldExtension />
              <BitbucketServerRepoUrlPickerFieldExtension />
              <SecretTextareaFieldExtension />
              <BitbucketServerTokenFieldExtension />
            </ScaffolderFieldExtensions>
          }
        />
      </TestApiProvider>,
    );
    expect(collected.map(f => f.name)).toEqual(NAMES);
    expect(collected.map(f => f.component)).toEqual([
      ClusterPicker,
      BitbucketServerRepoUrlPicker,
      SecretTextarea,
      BitbucketServerToken,
    ]);
  });
});
