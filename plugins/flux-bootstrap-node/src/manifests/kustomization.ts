import {
  compareUtf8,
  isK8sObject,
  parseYamlDocuments,
  stringifyObject,
} from './yaml';

/** File names kustomize recognises as a kustomization. @public */
export const KUSTOMIZATION_FILE_NAMES = [
  'kustomization.yaml',
  'kustomization.yml',
  'Kustomization',
];

/** Read access to a git tree or a folder; paths relative to its root (`''`), with `/`. @public */
export interface DirectoryReader {
  list(dir: string): Promise<Array<{ name: string; type: 'file' | 'dir' }>>;
  read(path: string): Promise<string>;
}

/** True when kustomize accepts the text as resources: YAML of Kubernetes objects only (or empty). @public */
export function isKubernetesManifest(text: string): boolean {
  try {
    return parseYamlDocuments(text, 'file').every(isK8sObject);
  } catch {
    return false;
  }
}

const isKustomizationFile = (e: { name: string; type: string }) =>
  e.type === 'file' && KUSTOMIZATION_FILE_NAMES.includes(e.name);

/** Options of {@link scanKustomizationResources}. @public */
export interface ScanKustomizationOptions {
  /** True for a file the caller generated and knows is there unchanged (skips parsing 3 MB). */
  isKnownManifest?: (path: string) => boolean | Promise<boolean>;
}

/**
 * The resources of `kustomization.yaml` in `dir`, like flux's `kustomization.Generate`: in
 * lexical order, sub-folders with a kustomization file (not descended into) and Kubernetes YAML.
 * @public
 */
export async function scanKustomizationResources(
  reader: DirectoryReader,
  dir: string,
  options: ScanKustomizationOptions = {},
): Promise<string[]> {
  const resources: string[] = [];
  const walk = async (current: string, rel: string) => {
    const entries = [...(await reader.list(current))].sort((a, b) =>
      compareUtf8(a.name, b.name),
    );
    for (const entry of entries) {
      const full = current ? `${current}/${entry.name}` : entry.name;
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.type === 'dir') {
        const inner = await reader.list(full);
        if (inner.some(isKustomizationFile)) resources.push(relPath);
        else await walk(full, relPath);
      } else if (
        (await options.isKnownManifest?.(full)) ||
        isKubernetesManifest(await reader.read(full))
      ) {
        resources.push(relPath);
      }
    }
  };
  await walk(dir, '');
  return resources;
}

/** Serialises a kustomize `Kustomization` listing the resources (flux's generated form). @public */
export function generateKustomizationFile(resources: string[]): string {
  return stringifyObject({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    ...(resources.length > 0 ? { resources } : {}),
  });
}
