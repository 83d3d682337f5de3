import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { Parser } from 'tar';
import { silentLogger, type EngineLogger } from '../util/logger';
import { FluxBundleError, FluxBundleFiles } from './components';
import { digestOfFiles, identifyBundleFiles } from './parsedBundle';
import { validateFluxVersion } from './validation';
import {
  BundleChecksumError,
  loadReleaseAsset,
  type ManifestsSourceConfig,
} from './releaseAsset';

export { BundleChecksumError, type ManifestsSourceConfig };

const MAX_COMPRESSED_BYTES = 64 * 1024 * 1024;
const MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024;

/**
 * A bundle ready for {@link generateComponentsManifest}: its frozen YAML files, the sha256 of
 * `manifests.tar.gz` (none for an extracted folder), and the URL or path it was read from.
 */
export interface LoadedFluxBundle {
  version: string;
  files: FluxBundleFiles;
  sha256?: string;
  origin: 'download' | 'cache' | 'local';
  location: string;
}

const BUNDLE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$/;

/**
 * Reads the flat regular `*.yaml` files of a `manifests.tar.gz` in memory (size-capped; nothing
 * is written to disk, so entry names cannot escape anywhere).
 */
export async function readBundleTarball(
  tarball: Buffer,
  version = 'requested',
): Promise<FluxBundleFiles> {
  const unreadable = (what: string, e: unknown) =>
    new FluxBundleError(
      `the Flux ${version} bundle is not a readable ${what}: ${
        (e as Error).message
      }`,
    );
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(tarball, { maxOutputLength: MAX_UNCOMPRESSED_BYTES });
  } catch (e) {
    throw unreadable('manifests.tar.gz', e);
  }
  const files: FluxBundleFiles = {};
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onReadEntry: entry => {
        const name = entry.path.replace(/^\.\//, '');
        if (!/^(Old)?File$/.test(entry.type) || !BUNDLE_FILE.test(name)) {
          entry.resume();
          return;
        }
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => {
          files[name] = Buffer.concat(chunks).toString('utf8');
        });
      },
    });
    parser.on('error', reject);
    parser.on('end', resolve);
    try {
      parser.end(tar);
    } catch (e) {
      reject(e);
    }
  }).catch(e => {
    throw unreadable('tar archive', e);
  });
  if (Object.keys(files).length === 0) {
    throw new FluxBundleError(`the Flux ${version} bundle holds no manifests`);
  }
  return files;
}

/**
 * Gets the release bundle of `version` as {@link loadReleaseAsset} does, or the extracted
 * `*.yaml` files of a local folder without `manifests.tar.gz`.
 */
export async function loadFluxBundle(
  versionInput: string,
  source: ManifestsSourceConfig,
  options: { signal?: AbortSignal; logger?: EngineLogger } = {},
): Promise<LoadedFluxBundle> {
  const version = validateFluxVersion(versionInput);
  const logger = options.logger ?? silentLogger;
  const asset = await loadReleaseAsset(
    {
      what: `the Flux ${version} bundle`,
      version,
      file: 'manifests.tar.gz',
      configKey: 'fluxBootstrap.manifests',
      source,
      maxBytes: MAX_COMPRESSED_BYTES,
      read: async tarball => readBundleTarball(tarball, version),
    },
    options,
  );
  if (asset) {
    identifyBundleFiles(asset.value, version, `sha256:${asset.sha256}`);
    const { value: files, sha256, origin, location } = asset;
    return { version, files, sha256, origin, location };
  }
  const dir = path.join(source.localPath!, version);
  const names = (await fs.readdir(dir).catch(() => []))
    .filter(n => BUNDLE_FILE.test(n))
    .sort();
  if (names.length === 0) {
    throw new FluxBundleError(
      `no Flux ${version} bundle in fluxBootstrap.manifests.localPath: expected ${path.join(
        dir,
        'manifests.tar.gz',
      )} or the extracted *.yaml files in ${dir}`,
    );
  }
  if (source.sha256[version]) {
    throw new FluxBundleError(
      `fluxBootstrap.manifests.sha256 is set for ${version}, but ${dir} holds extracted files that cannot be checked against it; put manifests.tar.gz there instead`,
    );
  }
  const files: FluxBundleFiles = {};
  for (const n of names)
    files[n] = await fs.readFile(path.join(dir, n), 'utf8');
  logger.info(`Using the extracted Flux ${version} bundle in ${dir}`);
  identifyBundleFiles(files, version, digestOfFiles(files));
  return { version, files, origin: 'local', location: dir };
}
