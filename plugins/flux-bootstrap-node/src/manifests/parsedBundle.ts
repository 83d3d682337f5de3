import crypto from 'node:crypto';

/**
 * In-memory cache of what the generator derives from a release bundle: the parsed objects of
 * each file and the CRDs with their labels (whose serialised text {@link stringifyDocuments}
 * keeps). Parsing a bundle's 3 MB of YAML is the expensive part of generating
 * `gotk-components.yaml`; a running backend generates from the same few bundles again and again.
 *
 * A bundle is known by its Flux version and the sha256 of its content ({@link identifyBundleFiles},
 * done by `loadFluxBundle`), so every load of the same bundle shares one entry. A files object
 * without that identity is cached by identity when it is frozen, otherwise not at all (it could
 * change between two generations). Everything cached is deep-frozen: the generator clones what it
 * changes.
 */

/** Derived data of one bundle, keyed by what it was derived from. */
export interface ParsedBundle {
  readonly entries: Map<string, unknown>;
}

const MAX_CACHED_BUNDLES = 4;

const bundleIds = new WeakMap<object, string>();
const byId = new Map<string, ParsedBundle>();
const byObject = new WeakMap<object, ParsedBundle>();

/**
 * Marks `files` as the content of the Flux `version` bundle whose digest is `digest` (the sha256
 * of its `manifests.tar.gz`, or of the extracted files) and freezes it, so that generations from
 * any load of that bundle share their parsed objects. Returns `files`.
 */
export function identifyBundleFiles<T extends Record<string, string>>(
  files: T,
  version: string,
  digest: string,
): T {
  Object.freeze(files);
  bundleIds.set(files, `${version}@${digest}`);
  return files;
}

/** sha256 over the names and contents of extracted bundle files (no tarball to hash). */
export function digestOfFiles(files: Record<string, string>): string {
  const hash = crypto.createHash('sha256');
  for (const name of Object.keys(files).sort()) {
    hash.update(`${name}\0${Buffer.byteLength(files[name])}\0`);
    hash.update(files[name]);
  }
  return `files-sha256:${hash.digest('hex')}`;
}

/** The cache entry of a bundle (a fresh, uncached one when the bundle cannot be identified). */
export function parsedBundleFor(files: Record<string, string>): ParsedBundle {
  const id = bundleIds.get(files);
  if (id !== undefined) {
    let entry = byId.get(id);
    if (entry) {
      // least recently used first
      byId.delete(id);
    } else {
      entry = { entries: new Map() };
      while (byId.size >= MAX_CACHED_BUNDLES)
        byId.delete(byId.keys().next().value as string);
    }
    byId.set(id, entry);
    return entry;
  }
  if (Object.isFrozen(files)) {
    let entry = byObject.get(files);
    if (!entry) {
      entry = { entries: new Map() };
      byObject.set(files, entry);
    }
    return entry;
  }
  return { entries: new Map() };
}

/** `make()` once per bundle and key (a failure is not remembered). */
export function derived<T>(
  bundle: ParsedBundle,
  key: string,
  make: () => T,
): T {
  if (bundle.entries.has(key)) return bundle.entries.get(key) as T;
  const value = make();
  bundle.entries.set(key, value);
  return value;
}

/** Forgets every cached bundle (tests). */
export function clearParsedBundles(): void {
  byId.clear();
}
