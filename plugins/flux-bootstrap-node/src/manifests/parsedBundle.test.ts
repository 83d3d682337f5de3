import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { packFlat } from '@flux-bootstrap/test-peers';
import { loadFluxBundle } from './bundle';
import {
  generateComponentObjects,
  generateComponentsManifest,
  type FluxBundleFiles,
} from './components';
import { clearParsedBundles } from './parsedBundle';
import { stringifyObject } from './yaml';
import { ConfigReader } from '@backstage/config';
import { readManifestsConfig } from '../config/settings';
import {
  expectGolden,
  goldenOptions,
  readFixtureBundle,
} from './__fixtures__/fixtureBundle';

const golden = goldenOptions();
const defaults = golden.defaults.components;
const custom = golden.custom.components;

function parse(text: string): unknown[] {
  return YAML.parseAllDocuments(text)
    .map(d => d.toJS())
    .filter(Boolean);
}

function isDeepFrozen(value: unknown): boolean {
  if (!value || typeof value !== 'object') return true;
  return (
    Object.isFrozen(value) && Object.values(value as object).every(isDeepFrozen)
  );
}

describe('generation from a parsed-once bundle', () => {
  let tmp: string;
  let fixture: FluxBundleFiles;
  let tarball: Buffer;
  let sha256: string;

  beforeAll(async () => {
    fixture = readFixtureBundle();
    tarball = await packFlat(fixture);
    sha256 = crypto.createHash('sha256').update(tarball).digest('hex');
  });
  beforeEach(async () => {
    clearParsedBundles();
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'parsed-bundle-test-'));
    await fs.mkdir(path.join(tmp, 'cache', 'v2.9.4'), { recursive: true });
    await fs.writeFile(
      path.join(tmp, 'cache', 'v2.9.4', 'manifests.tar.gz'),
      tarball,
    );
  });
  afterEach(async () => {
    await fs.rm(tmp, { recursive: true, force: true });
  });

  const load = () =>
    loadFluxBundle(
      'v2.9.4',
      readManifestsConfig(
        new ConfigReader({
          fluxBootstrap: {
            manifests: {
              // never contacted: the bundle is in the cache
              baseUrl: 'http://127.0.0.1:1',
              cacheDir: path.join(tmp, 'cache'),
              sha256: { 'v2.9.4': sha256 },
            },
          },
        }),
      ),
    );

  // eslint-disable-next-line jest/expect-expect
  it('stays byte-identical to the golden files across loads and alternating options', async () => {
    for (let round = 0; round < 2; round++) {
      const bundle = await load();
      expect(bundle.origin).toBe('cache');
      expectGolden(
        'custom/gotk-components.yaml',
        generateComponentsManifest(bundle.files, custom),
      );
      expectGolden(
        'default/gotk-components.yaml',
        generateComponentsManifest(bundle.files, defaults),
      );
    }
  });

  it('parses a bundle once per version and sha256: every load shares the parsed CRDs', async () => {
    const first = await load();
    const second = await load();
    expect(second.files).not.toBe(first.files);
    expect(Object.isFrozen(first.files)).toBe(true);
    const a = generateComponentObjects(first.files, defaults);
    const b = generateComponentObjects(second.files, defaults);
    const crdsA = a.filter(o => o.kind === 'CustomResourceDefinition');
    const crdsB = b.filter(o => o.kind === 'CustomResourceDefinition');
    expect(crdsA.length).toBeGreaterThan(0);
    crdsA.forEach((crd, i) => expect(crdsB[i]).toBe(crd));
    // Objects the options change are the caller's own copies each time.
    const deployment = (list: readonly unknown[]) =>
      list.find(o => (o as { kind: string }).kind === 'Deployment') as object;
    expect(deployment(b)).not.toBe(deployment(a));
    expect(deployment(b)).toEqual(deployment(a));
    // Another namespace labels the CRDs differently: other objects.
    const other = generateComponentObjects(second.files, custom).filter(
      o => o.kind === 'CustomResourceDefinition',
    );
    expect(other[0]).not.toBe(crdsA[0]);
    expect(other[0].metadata.labels?.['app.kubernetes.io/instance']).toBe(
      'flux-prod',
    );
  });

  it('returns deep-frozen objects that equal the parsed text, so nothing a caller does leaks into the cache', async () => {
    const bundle = await load();
    for (const options of [defaults, custom]) {
      const objects = generateComponentObjects(bundle.files, options);
      expect(isDeepFrozen(objects)).toBe(true);
      expect(objects).toEqual(
        parse(generateComponentsManifest(bundle.files, options)),
      );
    }
    const objects = generateComponentObjects(bundle.files, defaults);
    const crd = objects.find(o => o.kind === 'CustomResourceDefinition')!;
    expect(() => {
      (crd.metadata.labels as Record<string, string>).extra = 'x';
    }).toThrow(TypeError);
    expect(() => {
      (crd.spec as Record<string, unknown>).group = 'evil.example.com';
    }).toThrow(TypeError);
    expectGolden(
      'default/gotk-components.yaml',
      generateComponentsManifest(bundle.files, defaults),
    );
  });

  it('does not cache a bundle it cannot identify (a plain files object may change)', () => {
    const files: FluxBundleFiles = { ...fixture };
    const before = generateComponentObjects(files, defaults).find(
      o => o.kind === 'CustomResourceDefinition',
    )!;
    const name = Object.keys(files).find(n =>
      files[n].includes('kind: CustomResourceDefinition'),
    )!;
    files[name] = files[name].replace(
      /kind: CustomResourceDefinition/,
      'kind: CustomResourceDefinition\n# changed',
    );
    const after = generateComponentObjects(files, defaults).find(
      o => o.kind === 'CustomResourceDefinition',
    )!;
    expect(after).not.toBe(before);
    expect(after).toEqual(before);
  });

  it('shares the parse of an extracted local bundle folder too (keyed by a digest of its files)', async () => {
    const dir = path.join(tmp, 'local', 'v2.9.4');
    await fs.mkdir(dir, { recursive: true });
    for (const [name, text] of Object.entries(fixture))
      await fs.writeFile(path.join(dir, name), text);
    const source = readManifestsConfig(
      new ConfigReader({
        fluxBootstrap: { manifests: { localPath: path.join(tmp, 'local') } },
      }),
    );
    const a = await loadFluxBundle('v2.9.4', source);
    const b = await loadFluxBundle('v2.9.4', source);
    const crd = (files: FluxBundleFiles) =>
      generateComponentObjects(files, custom).find(
        o => o.kind === 'CustomResourceDefinition',
      );
    expect(crd(b.files)).toBe(crd(a.files));
    expectGolden(
      'custom/gotk-components.yaml',
      generateComponentsManifest(b.files, custom),
    );
    // Edited files are another bundle.
    await fs.appendFile(path.join(dir, 'source-controller.yaml'), '\n# edit\n');
    const c = await loadFluxBundle('v2.9.4', source);
    expect(crd(c.files)).not.toBe(crd(a.files));
  });
});

describe('key order', () => {
  it('sorts keys by code point (as Go does), also where UTF-16 order differs', () => {
    // U+1F600 is a surrogate pair (D83D DE00): before U+FF61 in UTF-16, after it by code point.
    const text = stringifyObject({
      '\u{1F600}': 1,
      '\uFF61': 2,
      b: 3,
      a: 4,
      B: 5,
    });
    expect(text.split('\n').map(l => l.split(':')[0])).toEqual([
      'B',
      'a',
      'b',
      '\uFF61',
      '\u{1F600}',
      '',
    ]);
  });
});
