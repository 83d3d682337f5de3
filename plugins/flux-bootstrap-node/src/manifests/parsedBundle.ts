import crypto from 'node:crypto';

/*
 * In-memory cache of what the generator derives from a release bundle: the parsed objects of
 * each file and the labelled CRDs (whose text {@link stringifyDocuments} keeps). Parsing a
 * bundle's 3 MB of YAML is the expensive part of generating `gotk-components.yaml`, and a
 * backend generates from the same few bundles again and again. A bundle is known by its version
 * and content digest ({@link identifyBundleFiles}); unidentified files are cached by identity
 * when frozen, else not at all (they could change). Everything cached is deep-frozen.
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
 * Marks and freezes `files` as the Flux `version` bundle of `digest` (sha256 of its
 * `manifests.tar.gz` or of the extracted files), so every load of it shares one cache entry.
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
  const entry = (id !== undefined ? byId.get(id) : byObject.get(files)) ?? {
    entries: new Map(),
  };
  if (id !== undefined) {
    // least recently used first
    byId.delete(id);
    while (byId.size >= MAX_CACHED_BUNDLES)
      byId.delete(byId.keys().next().value as string);
    byId.set(id, entry);
  } else if (Object.isFrozen(files)) byObject.set(files, entry);
  return entry;
}

/** `make()` once per bundle and key (a failure is not remembered). */
export function derived<T>(
  bundle: ParsedBundle,
  key: string,
  make: () => T,
): T {
  if (!bundle.entries.has(key)) bundle.entries.set(key, make());
  return bundle.entries.get(key) as T;
}

/** Forgets every cached bundle (tests). */
export function clearParsedBundles(): void {
  byId.clear();
}
