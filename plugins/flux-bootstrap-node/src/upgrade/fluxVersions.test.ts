import { buildFluxBundle } from '@flux-bootstrap/test-peers';
import { generateComponentsManifest } from '../manifests/components';
import { resolveFluxManifestOptions } from '../manifests/options';
import { checkFluxVersionChange, componentsFluxVersion } from './fluxVersions';

describe('componentsFluxVersion', () => {
  it('reads the version of a generated gotk-components.yaml', async () => {
    const bundle = await buildFluxBundle({ version: 'v2.10.0' });
    const resolved = resolveFluxManifestOptions(
      { path: 'clusters/dev', syncUrl: 'ssh://git@127.0.0.1/fleet.git' },
      { fluxVersion: 'v2.10.0' },
    );
    const yaml = generateComponentsManifest(bundle.files, resolved.components);
    expect(componentsFluxVersion(yaml)).toBe('v2.10.0');
    expect(componentsFluxVersion('apiVersion: v1\nkind: List\n')).toBe(
      undefined,
    );
  });
});

describe('checkFluxVersionChange', () => {
  const where = 'in clusters/dev/flux-system/gotk-components.yaml';

  it('tells install, same and upgrade apart', () => {
    expect(checkFluxVersionChange(undefined, 'v2.9.4', { where })).toBe(
      'install',
    );
    expect(checkFluxVersionChange('v2.9.4', 'v2.9.4', { where })).toBe('same');
    expect(checkFluxVersionChange('v2.9.4', 'v2.10.0', { where })).toBe(
      'upgrade',
    );
    expect(checkFluxVersionChange('v2.9.4', 'v2.9.10', { where })).toBe(
      'upgrade',
    );
  });

  it('refuses a downgrade (a ConflictError naming both versions) unless allowDowngrade, which warns', () => {
    expect(() =>
      checkFluxVersionChange('v2.10.0', 'v2.9.4', { where }),
    ).toThrow(
      expect.objectContaining({
        name: 'ConflictError',
        message:
          'Flux v2.10.0 is in clusters/dev/flux-system/gotk-components.yaml; v2.9.4 would be a downgrade, which Flux does not support in general (CRD storage versions, removed APIs); nothing was changed. Set allowDowngrade: true to do it anyway.',
      }),
    );
    expect(() => checkFluxVersionChange('v2.9.5', 'v2.9.4', { where })).toThrow(
      'would be a downgrade',
    );
    const warnings: string[] = [];
    const logger = {
      error() {},
      debug() {},
      info() {},
      warn: (m: string) => warnings.push(m),
    };
    expect(
      checkFluxVersionChange('v2.10.0', 'v2.9.4', {
        where,
        allowDowngrade: true,
        logger,
      }),
    ).toBe('downgrade');
    expect(warnings).toEqual([
      `Flux v2.10.0 is ${where}; v2.9.4 would be a downgrade (allowDowngrade)`,
    ]);
  });
});
