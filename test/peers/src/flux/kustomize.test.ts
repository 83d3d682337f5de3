import path from 'node:path';
import { kustomizeBuild, KustomizeBuildError, TreeReader } from './kustomize';
import {
  applyJson6902,
  applyPatches,
  applyStrategicMerge,
  matchesTarget,
  PatchError,
} from './patches';

/** An in-memory repository tree. */
function tree(files: Record<string, string>): TreeReader {
  const dirs = new Set<string>(['']);
  for (const f of Object.keys(files)) {
    let d = path.posix.dirname(f);
    while (d !== '.') {
      dirs.add(d);
      d = path.posix.dirname(d);
    }
  }
  return {
    entry: p => {
      if (p in files) return { type: 'blob' };
      return dirs.has(p) ? { type: 'tree' } : undefined;
    },
    children: dir =>
      [...Object.keys(files), ...dirs]
        .filter(p => p && path.posix.dirname(p) === (dir || '.'))
        .map(p => path.posix.basename(p))
        .filter((v, i, a) => a.indexOf(v) === i)
        .sort(),
    read: async p => {
      if (!(p in files)) throw new Error(`${p}: no such file`);
      return files[p];
    },
  };
}

const cm = (name: string, ns = 'default') =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n  namespace: ${ns}\ndata:\n  k: v\n`;
const K = (body: string) =>
  `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n${body}`;

const ids = (objs: any[]) => objs.map(o => `${o.kind}/${o.metadata.name}`);

describe('kustomizeBuild', () => {
  it('generates the kustomization of a folder without one, like kustomize-controller (the flux bootstrap layout)', async () => {
    const t = tree({
      'clusters/dev/flux-system/kustomization.yaml': K(
        'resources:\n- gotk-components.yaml\n- gotk-sync.yaml\n',
      ),
      'clusters/dev/flux-system/gotk-components.yaml': `${cm('a')}---\n${cm(
        'b',
      )}`,
      'clusters/dev/flux-system/gotk-sync.yaml': cm('sync'),
      'clusters/dev/flux-system/notes.txt': 'ignored',
      'clusters/dev/apps.yaml': cm('apps'),
      'clusters/dev/infra/deep/x.yml': cm('x'),
      'clusters/other/z.yaml': cm('z'),
    });
    expect(ids(await kustomizeBuild(t, './clusters/dev'))).toEqual([
      'ConfigMap/apps',
      'ConfigMap/a',
      'ConfigMap/b',
      'ConfigMap/sync',
      'ConfigMap/x',
    ]);
  });

  it('builds nested resources and patches (JSON6902 with a target, strategic merge by the patch identity)', async () => {
    const t = tree({
      'base/kustomization.yaml': K('resources:\n- cm.yaml\n- deploy.yaml\n'),
      'base/cm.yaml': cm('settings'),
      'base/deploy.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:1\n        env:\n        - name: A\n          value: "1"\n      - name: sidecar\n        image: side:1\n',
      'overlay/kustomization.yaml': K(
        "resources:\n- ../base\npatches:\n- path: deploy-patch.yaml\n- target:\n    kind: ConfigMap\n    labelSelector: '!skip'\n  patch: |\n    - op: replace\n      path: /data/k\n      value: patched\n",
      ),
      'overlay/deploy-patch.yaml':
        'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app:2\n        env:\n        - name: B\n          value: "2"\n      tolerations:\n      - key: dedicated\n        operator: Exists\n',
    });
    const out = await kustomizeBuild(t, 'overlay');
    expect(ids(out)).toEqual(['ConfigMap/settings', 'Deployment/web']);
    expect(out[0].data).toEqual({ k: 'patched' });
    const spec = out[1].spec.template.spec;
    expect(spec.containers).toEqual([
      {
        name: 'app',
        image: 'app:2',
        env: [
          { name: 'A', value: '1' },
          { name: 'B', value: '2' },
        ],
      },
      { name: 'sidecar', image: 'side:1' },
    ]);
    expect(spec.tolerations).toEqual([
      { key: 'dedicated', operator: 'Exists' },
    ]);
  });

  it.each([
    ['namePrefix: x-\n', "'namePrefix'"],
    ['images:\n- name: a\n  newTag: b\n', "'images'"],
    ['configMapGenerator:\n- name: c\n', "'configMapGenerator'"],
    [
      'resources:\n- https://github.com/org/repo//x\n',
      "remote resource 'https://github.com/org/repo//x'",
    ],
    [
      'resources:\n- missing.yaml\n',
      "accumulating resources from 'missing.yaml'",
    ],
    ['resources:\n- ../../etc\n', 'not in or below the repository root'],
    ['resources:\n- a.yaml\n- b.yaml\n', 'already registered id'],
  ])('refuses %j with a clear message', async (body, message) => {
    const t = tree({
      'app/kustomization.yaml': K(body),
      'app/a.yaml': cm('same'),
      'app/b.yaml': cm('same'),
    });
    const err = await kustomizeBuild(t, 'app').catch(e => e);
    expect(err).toBeInstanceOf(KustomizeBuildError);
    expect(err.message).toContain(message);
  });

  it('refuses a Component, a folder without kustomization file as resource, and a missing path', async () => {
    const t = tree({
      'c/kustomization.yaml':
        'apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n',
      'r/kustomization.yaml': K('resources:\n- plain\n'),
      'r/plain/x.yaml': cm('x'),
    });
    await expect(kustomizeBuild(t, 'c')).rejects.toThrow(/kind 'Component'/);
    await expect(kustomizeBuild(t, 'r')).rejects.toThrow(
      /unable to find one of 'kustomization.yaml'/,
    );
    await expect(kustomizeBuild(t, 'nope')).rejects.toThrow(
      /kustomization path not found/,
    );
    await expect(
      kustomizeBuild(tree({ 'x/bad.yaml': 'foo: bar\n' }), 'x'),
    ).rejects.toThrow(/failed to decode Kubernetes YAML from x\/bad.yaml/);
  });
});

describe('patches', () => {
  const deploy = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'source-controller',
      namespace: 'flux-system',
      labels: { app: 'x', tier: 'flux' },
    },
    spec: {
      template: {
        spec: { containers: [{ name: 'manager', args: ['--a', '--b'] }] },
      },
    },
  };

  it('applies JSON6902 operations and reports a missing path', () => {
    const out = applyJson6902(deploy, [
      {
        op: 'replace',
        path: '/spec/template/spec/containers/0/args/1',
        value: '--log-level=debug',
      },
      {
        op: 'add',
        path: '/spec/template/spec/containers/0/args/-',
        value: '--c',
      },
      { op: 'add', path: '/metadata/labels/new~1key', value: 'v' },
      { op: 'remove', path: '/metadata/labels/tier' },
      { op: 'test', path: '/metadata/name', value: 'source-controller' },
    ]);
    expect(out.spec.template.spec.containers[0].args).toEqual([
      '--a',
      '--log-level=debug',
      '--c',
    ]);
    expect(out.metadata.labels).toEqual({ app: 'x', 'new/key': 'v' });
    expect(deploy.metadata.labels.tier).toBe('flux'); // input untouched
    expect(() =>
      applyJson6902(deploy, [
        { op: 'replace', path: '/spec/nope/x', value: 1 },
      ]),
    ).toThrow(PatchError);
  });

  it('matches targets by anchored regex, label and annotation selectors, and refuses set-based selectors', () => {
    expect(
      matchesTarget(deploy, { kind: 'Deployment', name: 'source-.*' }),
    ).toBe(true);
    expect(matchesTarget(deploy, { name: 'source' })).toBe(false);
    expect(matchesTarget(deploy, { group: 'apps', version: 'v1' })).toBe(true);
    expect(matchesTarget(deploy, { labelSelector: 'app=x,tier!=other' })).toBe(
      true,
    );
    expect(matchesTarget(deploy, { labelSelector: '!app' })).toBe(false);
    expect(() =>
      matchesTarget(deploy, { labelSelector: 'app in (x)' }),
    ).toThrow(/set-based/);
  });

  it('merges strategic-merge patches (null deletes, $patch directives are refused)', () => {
    const out = applyStrategicMerge(deploy as any, {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'all', labels: { app: null } },
      spec: {
        template: { spec: { nodeSelector: { 'kubernetes.io/os': 'linux' } } },
      },
    });
    expect(out.metadata.name).toBe('source-controller');
    expect(out.metadata.labels).toEqual({ tier: 'flux' });
    expect(out.spec.template.spec.nodeSelector).toEqual({
      'kubernetes.io/os': 'linux',
    });
    expect(() =>
      applyPatches(
        [deploy as any],
        [
          {
            patch:
              'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: source-controller\n$patch: delete\n',
          },
        ],
        'here',
      ),
    ).toThrow(/"\$patch"/);
    expect(() =>
      applyPatches(
        [deploy as any],
        [{ patch: '- op: add\n  path: /x\n  value: 1\n' }],
        'here',
      ),
    ).toThrow(/needs a target/);
  });
});
