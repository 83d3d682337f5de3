import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { buildAndPack, entryPoints, PackedPackage, sh } from './packs';

jest.setTimeout(15 * 60_000);

// What `npm publish` would upload, checked the way a consumer resolves it: every entry point of
// the manifest names a file inside the tarball, nothing points back at src/, and the dependencies
// name nothing that is not on a registry.
describe('npm pack of the published packages', () => {
  let outDir: string;
  let packed: PackedPackage[];

  beforeAll(() => {
    outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-pack-'));
    packed = buildAndPack(outDir);
  });
  afterAll(() => fs.rmSync(outDir, { recursive: true, force: true }));

  const plugin = (name: string) => {
    const p = packed.find(x => x.name === name);
    if (!p) throw new Error(`${name} was not packed`);
    return p;
  };

  it('packs the five plugins and the templates', () => {
    expect(packed.map(p => p.name).sort()).toEqual([
      '@flux-bootstrap/flux-bootstrap-templates',
      '@flux-bootstrap/plugin-flux-bootstrap',
      '@flux-bootstrap/plugin-flux-bootstrap-backend',
      '@flux-bootstrap/plugin-flux-bootstrap-common',
      '@flux-bootstrap/plugin-flux-bootstrap-node',
      '@flux-bootstrap/plugin-scaffolder-backend-module-flux-bootstrap',
    ]);
  });

  it('resolves main, module, types, exports and typesVersions to files in each tarball', () => {
    for (const p of packed.filter(x => x.dir.startsWith('plugins/'))) {
      const entries = entryPoints(p.manifest);
      expect({ name: p.name, hasMain: entries.length > 0 }).toEqual({
        name: p.name,
        hasMain: true,
      });
      for (const entry of entries) {
        expect({
          name: p.name,
          entry,
          inTarball: p.files.includes(entry),
        }).toEqual({ name: p.name, entry, inTarball: true });
        expect({ name: p.name, entry }).not.toEqual({
          name: p.name,
          entry: expect.stringMatching(/^src\//),
        });
      }
      expect(p.manifest.main).toMatch(/^(\.\/)?dist\/index\.(cjs|esm)\.js$/);
      expect(p.manifest.types).toMatch(/^(\.\/)?dist\/index\.d\.ts$/);
      // Only the build output goes out, no sources or tests.
      expect(p.files.filter(f => f.startsWith('src/'))).toEqual([]);
      expect(p.files.filter(f => /\.test\./.test(f))).toEqual([]);
      expect(p.files).toEqual(expect.arrayContaining(['README.md']));
    }
  });

  it('ships the frontend alpha entry (new frontend system) with its feature marker', () => {
    const fe = plugin('@flux-bootstrap/plugin-flux-bootstrap');
    expect(fe.manifest.exports['./alpha']).toEqual(
      expect.objectContaining({
        import: './dist/alpha.esm.js',
        types: './dist/alpha.d.ts',
      }),
    );
    expect(fe.manifest.backstage.features).toEqual({
      './alpha': '@backstage/FrontendPlugin',
    });
    expect(fe.manifest.typesVersions['*'].alpha).toEqual(['dist/alpha.d.ts']);
  });

  it('ships the backend features and the engine config schema', () => {
    for (const name of [
      '@flux-bootstrap/plugin-flux-bootstrap-backend',
      '@flux-bootstrap/plugin-scaffolder-backend-module-flux-bootstrap',
    ]) {
      expect(plugin(name).manifest.backstage.features).toEqual({
        '.': '@backstage/BackendFeature',
      });
    }
    const node = plugin('@flux-bootstrap/plugin-flux-bootstrap-node');
    expect(node.manifest.configSchema).toBe('config.schema.json');
    expect(node.files).toContain('config.schema.json');
  });

  it('depends only on published packages, with ranges an app can share', () => {
    const problems: string[] = [];
    for (const p of packed) {
      const deps = {
        ...p.manifest.dependencies,
        ...p.manifest.peerDependencies,
        ...p.manifest.devDependencies,
      } as Record<string, string>;
      for (const [dep, range] of Object.entries(deps)) {
        // The private test ground never leaks into a published package.
        if (/^@flux-bootstrap\/test-/.test(dep)) {
          problems.push(`${p.name} depends on ${dep}`);
        }
        // Caret ranges: an app on a later patch or minor shares one copy.
        if (
          (dep.startsWith('@backstage/') ||
            dep.startsWith('@flux-bootstrap/')) &&
          !/^\^\d+\.\d+\.\d+$/.test(range)
        ) {
          problems.push(`${p.name} pins ${dep}@${range}`);
        }
      }
      if (p.manifest.engines?.node !== '22 || 24') {
        problems.push(`${p.name} engines.node ${p.manifest.engines?.node}`);
      }
    }
    expect(problems).toEqual([]);
    // React comes from the app.
    const fe = plugin('@flux-bootstrap/plugin-flux-bootstrap');
    expect(Object.keys(fe.manifest.peerDependencies).sort()).toEqual([
      'react',
      'react-dom',
      'react-router-dom',
    ]);
    for (const peer of ['react', 'react-dom', 'react-router-dom']) {
      expect(fe.manifest.dependencies[peer]).toBeUndefined();
    }
  });

  it('ships the four templates, the bootstrap ones with the owner a parameter and no group of our own', () => {
    const t = plugin('@flux-bootstrap/flux-bootstrap-templates');
    expect(t.files.sort()).toEqual([
      'README.md',
      'flux-bootstrap-bitbucket-server/template.yaml',
      'flux-bootstrap-fleet/template.yaml',
      'flux-bootstrap-git/template.yaml',
      'flux-decommission/template.yaml',
      'package.json',
    ]);
    const decommission = YAML.parse(
      sh('tar', [
        'xzf',
        t.tarball,
        '-O',
        'package/flux-decommission/template.yaml',
      ]),
    );
    expect(decommission.kind).toBe('Template');
    expect(decommission.spec.owner).toBeUndefined();
    for (const file of [
      'flux-bootstrap-bitbucket-server/template.yaml',
      'flux-bootstrap-git/template.yaml',
      'flux-bootstrap-fleet/template.yaml',
    ]) {
      const text = sh('tar', ['xzf', t.tarball, '-O', `package/${file}`]);
      const template = YAML.parse(text);
      expect(template.kind).toBe('Template');
      expect(template.spec.owner).toBeUndefined();
      const ownerParam = template.spec.parameters
        .map((page: any) => page.properties?.owner)
        .find(Boolean);
      expect(ownerParam['ui:field']).toBe('OwnerPicker');
      expect(ownerParam.default).toBeUndefined();
      expect(text).not.toContain('platform-team');
    }
  });
});
