import path from 'node:path';
import YAML from 'yaml';
import { applyPatches, K8sObject, KustomizePatch, PatchError } from './patches';

/**
 * The `kustomize build` subset of the Flux simulator's kustomize-controller, run on a Git tree:
 *
 * - The Kustomization's `spec.path` is built from its `kustomization.yaml` (or
 *   `kustomization.yml`, `Kustomization`). When the folder has none, one is generated the way
 *   kustomize-controller does: every `.yaml`/`.yml` file below it that parses as Kubernetes
 *   objects, and every sub-folder with its own kustomization file (not descended into), in walk
 *   order. This is the `flux bootstrap` layout: `clusters/<c>/` has no kustomization file and
 *   `clusters/<c>/flux-system/kustomization.yaml` lists `gotk-components.yaml` and `gotk-sync.yaml`.
 * - Supported kustomization fields: `apiVersion`, `kind` (`Kustomization`), `resources` (and its
 *   old alias `bases`): local files and folders with their own kustomization file, recursively;
 *   `patches` (inline `patch` or `path`, with `target`; see patches.ts for the subset).
 * - NOT supported (the build fails with BuildFailed naming the field and the file, never ignored):
 *   `namespace`, `namePrefix`/`nameSuffix`, `labels`/`commonLabels`/`commonAnnotations`,
 *   `images`, `replicas`, `patchesStrategicMerge`/`patchesJson6902`, `configMapGenerator`/
 *   `secretGenerator`/`generatorOptions`, `components` and `kind: Component`, `crds`,
 *   `replacements`, `vars`, `helmCharts`, `transformers`/`generators`/`validators`,
 *   `openapi`, `sortOptions`, `buildMetadata`, remote resources (URLs), and patch `options`.
 *   The `flux bootstrap` default uses none of them.
 */

export interface TreeEntry {
  type: 'blob' | 'tree';
}

/** Read access to one commit's files (paths relative to the repository root, no leading `./`). */
export interface TreeReader {
  entry(p: string): TreeEntry | undefined;
  /** direct children of a folder (names, sorted) */
  children(dir: string): string[];
  read(p: string): Promise<string>;
}

export class KustomizeBuildError extends Error {}

const KUSTOMIZATION_FILES = [
  'kustomization.yaml',
  'kustomization.yml',
  'Kustomization',
];
const SUPPORTED_FIELDS = new Set([
  'apiVersion',
  'kind',
  'metadata',
  'resources',
  'bases',
  'patches',
]);

const join = (dir: string, name: string) =>
  path.posix.normalize(dir ? `${dir}/${name}` : name).replace(/\/+$/, '');

function kustomizationFile(tree: TreeReader, dir: string): string | undefined {
  for (const f of KUSTOMIZATION_FILES) {
    const p = dir ? `${dir}/${f}` : f;
    if (tree.entry(p)?.type === 'blob') return p;
  }
  return undefined;
}

/** Parses a multi-document YAML file into Kubernetes objects (empty documents skipped). */
export function parseObjects(text: string, file: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length)
      throw new KustomizeBuildError(
        `failed to decode Kubernetes YAML from ${file}: ${doc.errors[0].message}`,
      );
    const o = doc.toJS();
    if (o === null || o === undefined) continue;
    if (
      typeof o !== 'object' ||
      Array.isArray(o) ||
      typeof o.apiVersion !== 'string' ||
      typeof o.kind !== 'string' ||
      typeof o.metadata?.name !== 'string'
    ) {
      throw new KustomizeBuildError(
        `failed to decode Kubernetes YAML from ${file}: missing apiVersion, kind or metadata.name`,
      );
    }
    if (o.kind.endsWith('List') && Array.isArray(o.items)) {
      out.push(...(o.items as K8sObject[]));
    } else {
      out.push(o as K8sObject);
    }
  }
  return out;
}

/** The kustomization kustomize-controller generates for a folder without one. */
function generatedResources(tree: TreeReader, root: string): string[] {
  const resources: string[] = [];
  const walk = (dir: string) => {
    for (const name of tree.children(dir)) {
      const p = join(dir, name);
      const e = tree.entry(p);
      if (e?.type === 'tree') {
        if (kustomizationFile(tree, p)) resources.push(p);
        else walk(p);
      } else if (/\.ya?ml$/.test(name)) {
        resources.push(p);
      }
    }
  };
  walk(root);
  return resources;
}

function objectId(o: K8sObject): string {
  return `${o.kind}.${o.apiVersion}/${o.metadata.name}.${
    o.metadata.namespace ?? '[noNs]'
  }`;
}

/**
 * Builds `dir` of `tree` like kustomize-controller (generate + kustomize build). Throws
 * KustomizeBuildError with a message in kustomize's spirit on anything it cannot do.
 */
export async function kustomizeBuild(
  tree: TreeReader,
  dir: string,
): Promise<K8sObject[]> {
  const root = dir
    .replace(/^\.?\/+/, '')
    .replace(/\/+$/, '')
    .replace(/^\.$/, '');
  if (root && tree.entry(root)?.type !== 'tree') {
    throw new KustomizeBuildError(
      `kustomization path not found: stat ${root}: no such file or directory`,
    );
  }
  const add = (
    objs: K8sObject[],
    from: string,
    into: K8sObject[],
    seen: Set<string>,
  ) => {
    for (const o of objs) {
      const id = objectId(o);
      if (seen.has(id))
        throw new KustomizeBuildError(
          `kustomize build failed: accumulating resources from '${from}': may not add resource with an already registered id: ${id}`,
        );
      seen.add(id);
      into.push(o);
    }
  };

  const buildDir = async (d: string, stack: string[]): Promise<K8sObject[]> => {
    if (stack.includes(d))
      throw new KustomizeBuildError(
        `kustomize build failed: cycle detected: ${[...stack, d].join(' -> ')}`,
      );
    const kfile = kustomizationFile(tree, d);
    const objects: K8sObject[] = [];
    const seen = new Set<string>();
    if (!kfile) {
      // Only the root may lack a kustomization file (kustomize-controller generates it).
      if (stack.length)
        throw new KustomizeBuildError(
          `kustomize build failed: unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory '${d}'`,
        );
      for (const r of generatedResources(tree, d)) {
        const e = tree.entry(r)!;
        if (e.type === 'tree')
          add(await buildDir(r, [...stack, d]), r, objects, seen);
        else add(parseObjects(await tree.read(r), r), r, objects, seen);
      }
      return objects;
    }
    let k: any;
    try {
      k = YAML.parse(await tree.read(kfile)) ?? {};
    } catch (e) {
      throw new KustomizeBuildError(
        `kustomize build failed: invalid Kustomization ${kfile}: ${
          (e as Error).message
        }`,
      );
    }
    if (typeof k !== 'object' || Array.isArray(k))
      throw new KustomizeBuildError(
        `kustomize build failed: invalid Kustomization ${kfile}: not a YAML map`,
      );
    if (k.kind !== undefined && k.kind !== 'Kustomization')
      throw new KustomizeBuildError(
        `the Flux simulator does not support kind '${k.kind}' in ${kfile} (only Kustomization)`,
      );
    for (const field of Object.keys(k)) {
      if (!SUPPORTED_FIELDS.has(field))
        throw new KustomizeBuildError(
          `the Flux simulator does not support the kustomization field '${field}' in ${kfile} (supported: resources, patches)`,
        );
    }
    const entries: unknown[] = [...(k.resources ?? []), ...(k.bases ?? [])];
    for (const r of entries) {
      if (typeof r !== 'string')
        throw new KustomizeBuildError(
          `kustomize build failed: invalid resource ${JSON.stringify(
            r,
          )} in ${kfile}`,
        );
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(r) || /^(github\.com|git@)/.test(r))
        throw new KustomizeBuildError(
          `the Flux simulator does not support remote resource '${r}' in ${kfile}`,
        );
      const p = join(d, r);
      if (p === '..' || p.startsWith('../') || path.posix.isAbsolute(r))
        throw new KustomizeBuildError(
          `kustomize build failed: accumulating resources from '${r}': security; file '${r}' is not in or below the repository root`,
        );
      const e = p === '.' ? { type: 'tree' as const } : tree.entry(p);
      if (!e)
        throw new KustomizeBuildError(
          `kustomize build failed: accumulating resources: accumulating resources from '${r}': open ${p}: no such file or directory`,
        );
      if (e.type === 'tree')
        add(await buildDir(p, [...stack, d]), p, objects, seen);
      else add(parseObjects(await tree.read(p), p), p, objects, seen);
    }
    if (k.patches !== undefined) {
      if (!Array.isArray(k.patches))
        throw new KustomizeBuildError(
          `kustomize build failed: 'patches' in ${kfile} is not a list`,
        );
      const patches: KustomizePatch[] = [];
      for (const p of k.patches) {
        if (p?.options)
          throw new KustomizeBuildError(
            `the Flux simulator does not support patch options in ${kfile}`,
          );
        let text: string | undefined = p?.patch;
        if (text === undefined && typeof p?.path === 'string') {
          const pp = join(d, p.path);
          if (tree.entry(pp)?.type !== 'blob')
            throw new KustomizeBuildError(
              `kustomize build failed: patch file '${p.path}' in ${kfile}: no such file or directory`,
            );
          text = await tree.read(pp);
        }
        if (typeof text !== 'string')
          throw new KustomizeBuildError(
            `kustomize build failed: a patch in ${kfile} has neither 'patch' nor 'path'`,
          );
        patches.push({ patch: text, target: p.target });
      }
      try {
        const patched = applyPatches(objects, patches, kfile);
        objects.splice(0, objects.length, ...patched);
      } catch (e) {
        if (e instanceof PatchError)
          throw new KustomizeBuildError(`kustomize build failed: ${e.message}`);
        throw e;
      }
    }
    return objects;
  };
  return buildDir(root, []);
}
