/*
 * The configuration reference (docs/reference/configuration.md) against config.d.ts and
 * against the keys the engine actually reads, plus the integrity of the docs site (mkdocs nav,
 * relative links). Regenerate the reference with `node docs/scripts/generate.js`.
 */
import fs from 'node:fs';
import path from 'node:path';
// The generator lives with the docs (docs/scripts), outside any package; `node
// docs/scripts/generate.js` runs the same code.
// eslint-disable-next-line @backstage/no-relative-monorepo-imports
import {
  brokenLinks,
  CONFIG_PAGE,
  CONFIG_SCHEMA,
  configKeys,
  docsPages,
  GENERATE_COMMAND,
  mkdocsNavPages,
  REPO_ROOT,
  renderConfigPage,
} from '../../../../docs/scripts/reference';
import { ConfigReader, type Config } from '@backstage/config';
import { readFluxBootstrapSettings } from './settings';

/** `a.b[].c` → `a.b.c`, the form a key takes in prose. */
const plain = (key: string) => key.replace(/\[\]/g, '');

/**
 * A Config over `data` that records the full path of every value read, with `[]` for the items
 * of a config array, e.g. `integrations.bitbucketServer[].token`.
 */
function recordingConfig(
  data: ConstructorParameters<typeof ConfigReader>[0],
  reads: Set<string>,
): Config {
  const wrap = (config: Config, prefix: string): Config =>
    new Proxy(config, {
      get(target, prop, receiver) {
        const method = Reflect.get(target, prop, receiver);
        if (typeof prop !== 'string' || !/^(get|has)/.test(prop)) return method;
        return (key: string | undefined, ...rest: unknown[]) => {
          const result = method.call(target, key, ...rest);
          const full = `${prefix}${key ?? ''}`;
          if (!/Config(Array)?$/.test(prop)) reads.add(full);
          else if (Array.isArray(result))
            return result.map(c => wrap(c, `${full}[].`));
          else if (result) return wrap(result, `${full}.`);
          return result;
        };
      },
    });
  return wrap(new ConfigReader(data), '');
}

/** Every config key the engine's settings reader touches, with every optional part present. */
async function keysTheEngineReads(): Promise<Set<string>> {
  const reads = new Set<string>();
  const config = recordingConfig(
    {
      integrations: {
        bitbucketServer: [
          {
            host: 'bitbucket.example.com',
            apiBaseUrl: 'https://bitbucket.example.com/rest/api/1.0',
            token: 't',
          },
        ],
      },
      kubernetes: {
        clusterLocatorMethods: [
          {
            type: 'config',
            clusters: [
              {
                name: 'prod',
                url: 'https://127.0.0.1:6443',
                caData: Buffer.from('-----BEGIN CERTIFICATE-----').toString(
                  'base64',
                ),
              },
            ],
          },
        ],
      },
      fluxBootstrap: {
        bitbucketServer: [{ host: 'bitbucket.example.com', caData: 'x' }],
        manifests: { baseUrl: 'https://mirror.example.com/flux' },
        kubernetesVersions: [
          { flux: 'v2.9', minimum: 'v1.33.0', supported: ['v1.34'] },
        ],
        status: {},
      },
    },
    reads,
  );
  await readFluxBootstrapSettings(config);
  return reads;
}

describe('configuration reference (docs/reference/configuration.md)', () => {
  const schema = fs.readFileSync(CONFIG_SCHEMA, 'utf8');
  const page = fs.readFileSync(CONFIG_PAGE, 'utf8');
  const declared = configKeys(schema).map(k => k.key);

  it('is exactly what the generator produces from config.d.ts', () => {
    const generated = renderConfigPage(page, schema);
    const a = generated.split('\n');
    const b = page.split('\n');
    const i = a.findIndex((line, n) => line !== b[n]);
    const problem =
      generated === page
        ? ''
        : `${path.relative(
            REPO_ROOT,
            CONFIG_PAGE,
          )} is out of date with config.d.ts: run ${GENERATE_COMMAND}\nline ${
            i + 1
          }:\n  generated: ${a[i]}\n  committed: ${b[i]}`;
    expect(problem).toBe('');
  });

  it('documents every key config.d.ts declares', () => {
    expect(declared).toEqual(
      expect.arrayContaining([
        'fluxBootstrap.manifests.baseUrl',
        'fluxBootstrap.bitbucketServer[].sshHost',
        'fluxBootstrap.status.cacheTtlSeconds',
      ]),
    );
    const missing = declared.filter(k => !page.includes(`\`${k}\``));
    expect(missing).toEqual([]);
  });

  it('mentions no fluxBootstrap key, anywhere in docs/, that config.d.ts does not declare', () => {
    const known = new Set(declared.map(plain));
    const isDeclared = (key: string) =>
      known.has(plain(key)) ||
      // a map entry such as fluxBootstrap.manifests.sha256.v2.9.4
      declared.some(
        k =>
          k.includes('.<') &&
          plain(key).startsWith(`${plain(k.slice(0, k.indexOf('.<')))}.`),
      );
    expect(isDeclared('fluxBootstrap.bitbucketServer[].caFile')).toBe(true);
    expect(isDeclared('fluxBootstrap.manifests.sha256.v2.9.4')).toBe(true);
    expect(isDeclared('fluxBootstrap.status.refreshSeconds')).toBe(false);
    const unknown: string[] = [];
    for (const p of docsPages()) {
      const text = fs.readFileSync(path.join(REPO_ROOT, 'docs', p), 'utf8');
      for (const m of text.matchAll(
        /`(fluxBootstrap(?:\.[A-Za-z0-9]+|\[\])*)/g,
      )) {
        if (!isDeclared(m[1])) unknown.push(`docs/${p}: ${m[1]}`);
      }
    }
    expect(unknown).toEqual([]);
  });

  it('declares in config.d.ts every fluxBootstrap key the engine reads', async () => {
    const reads = [...(await keysTheEngineReads())];
    const ours = reads.filter(k => k.startsWith('fluxBootstrap.'));
    // the recorder really sees nested reads
    expect(ours).toEqual(
      expect.arrayContaining([
        'fluxBootstrap.manifests.localPath',
        'fluxBootstrap.bitbucketServer[].caData',
      ]),
    );
    expect(ours.filter(k => !declared.includes(k))).toEqual([]);
  });

  it("documents every key of Backstage's own config the engine reads", async () => {
    // ScmIntegrations also looks at the other integration types (integrations.github, …).
    const theirs = [...(await keysTheEngineReads())].filter(
      k =>
        !k.startsWith('fluxBootstrap') &&
        (!k.startsWith('integrations.') ||
          k.startsWith('integrations.bitbucketServer')),
    );
    expect(theirs).toEqual(
      expect.arrayContaining([
        'integrations.bitbucketServer[].token',
        'kubernetes.clusterLocatorMethods[].clusters[].serviceAccountToken',
      ]),
    );
    expect(theirs.filter(k => !page.includes(`\`${k}\``))).toEqual([]);
  });
});

describe('documentation site (mkdocs.yml and docs/)', () => {
  it('lists every page in the mkdocs nav, and only pages that exist', () => {
    const nav = mkdocsNavPages();
    const pages = docsPages();
    expect(nav.filter(p => !pages.includes(p))).toEqual([]);
    expect(pages.filter(p => !nav.includes(p))).toEqual([]);
  });

  it('has no broken relative link or anchor', () => {
    expect(docsPages().flatMap(brokenLinks)).toEqual([]);
  });

  it('links the README to the documentation', () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const links = [...readme.matchAll(/\]\((docs\/[^)#\s]+)/g)].map(m => m[1]);
    expect(links).toEqual(expect.arrayContaining(['docs/index.md']));
    for (const link of links) {
      expect(fs.existsSync(path.join(REPO_ROOT, link))).toBe(true);
    }
  });
});
