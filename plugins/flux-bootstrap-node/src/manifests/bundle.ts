import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { Parser } from 'tar';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import { HttpClient, HttpError, withSystemRoots } from '../http';
import { FluxBootstrapError } from '../util/errors';
import { FluxBundleError, FluxBundleFiles } from './components';
import { digestOfFiles, identifyBundleFiles } from './parsedBundle';
import { validateFluxVersion } from './validation';

const MAX_COMPRESSED_BYTES = 64 * 1024 * 1024;
const MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024;

/** `fluxBootstrap.manifests` as the engine uses it. @public */
export interface ManifestsSourceConfig {
  baseUrl: string;
  /** A local folder with `<version>/manifests.tar.gz` or `<version>/*.yaml`; replaces `baseUrl`. */
  localPath?: string;
  cacheDir: string;
  /** Expected sha256 (hex, lower-case) of `manifests.tar.gz` per version. */
  sha256: Record<string, string>;
  defaultVersion: string;
  caPem?: string;
  downloadTimeoutMs: number;
}

/** A bundle's sha256 differs from the configured one; the bundle is not used (a `ConflictError`). @public */
export class BundleChecksumError extends FluxBootstrapError {
  constructor(
    readonly version: string,
    readonly expected: string,
    readonly actual: string,
    where: string,
  ) {
    super(
      'ConflictError',
      `the Flux ${version} bundle from ${where} has sha256 ${actual}, but fluxBootstrap.manifests.sha256 expects ${expected}; refusing to use it`,
    );
  }
}

/** A bundle ready for {@link generateComponentsManifest}. @public */
export interface LoadedFluxBundle {
  version: string;
  /** The bundle's YAML files, frozen: every load of the same bundle shares one parse of them. */
  files: FluxBundleFiles;
  /** sha256 of `manifests.tar.gz` (absent for an extracted local folder). */
  sha256?: string;
  origin: 'download' | 'cache' | 'local';
  /** URL or path it was read from. */
  location: string;
}

const BUNDLE_FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$/;

/**
 * Reads the YAML files of a `manifests.tar.gz` in memory. Only flat regular `*.yaml` files are
 * taken; nothing is written to disk, so entry names cannot escape anywhere. Sizes are capped.
 * @public
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

/** Options of {@link loadFluxBundle}. @public */
export interface LoadFluxBundleOptions {
  signal?: AbortSignal;
  logger?: EngineLogger;
}

/**
 * Gets the release bundle of `version` from the configured place: the local folder, else the
 * on-disk cache, else a download from `baseUrl` (cached afterwards). A configured sha256 is
 * checked on every use, cached copies included; a mismatch is refused.
 * @public
 */
export async function loadFluxBundle(
  versionInput: string,
  source: ManifestsSourceConfig,
  options: LoadFluxBundleOptions = {},
): Promise<LoadedFluxBundle> {
  const version = validateFluxVersion(versionInput);
  const logger = options.logger ?? silentLogger;
  const expected = source.sha256[version];
  const verified = expected ? ' (sha256 verified)' : '';
  /** The bundle in a tarball whose sha256 matches the configured one, if any. */
  const fromTarball = async (
    tarball: Buffer,
    origin: LoadedFluxBundle['origin'],
    location: string,
  ): Promise<LoadedFluxBundle> => {
    const sha256 = crypto.createHash('sha256').update(tarball).digest('hex');
    if (expected && sha256 !== expected) {
      throw new BundleChecksumError(version, expected, sha256, location);
    }
    const files = await readBundleTarball(tarball, version);
    identifyBundleFiles(files, version, `sha256:${sha256}`);
    return { version, files, sha256, origin, location };
  };

  if (source.localPath) {
    const dir = path.join(source.localPath, version);
    const tarPath = path.join(dir, 'manifests.tar.gz');
    const tarball = await fs.readFile(tarPath).catch(() => undefined);
    if (tarball) {
      const bundle = await fromTarball(tarball, 'local', tarPath);
      logger.info(`Using the Flux ${version} bundle ${tarPath}${verified}`);
      return bundle;
    }
    const names = (await fs.readdir(dir).catch(() => []))
      .filter(n => BUNDLE_FILE.test(n))
      .sort();
    if (names.length === 0) {
      throw new FluxBundleError(
        `no Flux ${version} bundle in fluxBootstrap.manifests.localPath: expected ${tarPath} or the extracted *.yaml files in ${dir}`,
      );
    }
    if (expected) {
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

  const url = `${source.baseUrl}/${version}/manifests.tar.gz`;
  const cacheFile = path.join(source.cacheDir, version, 'manifests.tar.gz');
  const cached = await fs.readFile(cacheFile).catch(() => undefined);
  if (cached) {
    try {
      const bundle = await fromTarball(cached, 'cache', cacheFile);
      logger.info(
        `Using the cached Flux ${version} bundle ${cacheFile}${verified}`,
      );
      return bundle;
    } catch (e) {
      logger.warn(
        `The cached Flux ${version} bundle ${cacheFile} ${
          e instanceof BundleChecksumError
            ? 'does not match the configured sha256'
            : 'is unreadable'
        }; downloading it again`,
      );
      await fs.rm(cacheFile, { force: true });
    }
  }

  logger.info(`Downloading the Flux ${version} bundle from ${url}`);
  const tarball = await download(url, source, logger, options.signal);
  const bundle = await fromTarball(tarball, 'download', url);
  await writeAtomically(cacheFile, tarball).catch(e =>
    logger.warn(
      `Could not cache the Flux ${version} bundle in ${cacheFile}: ${
        (e as Error).message
      }`,
    ),
  );
  logger.info(
    `Downloaded the Flux ${version} bundle (${tarball.length} bytes, sha256 ${
      bundle.sha256
    }${expected ? ', verified' : ''})`,
  );
  return bundle;
}

async function writeAtomically(file: string, data: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${crypto.randomUUID()}.tmp`;
  try {
    await fs.writeFile(tmp, data, { mode: 0o644 });
    await fs.rename(tmp, file);
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/** GET following redirects (no credentials are ever sent), size-capped, on the HTTP layer. */
async function download(
  url: string,
  source: ManifestsSourceConfig,
  logger: EngineLogger,
  signal?: AbortSignal,
): Promise<Buffer> {
  const failed = (why: string) =>
    new FluxBundleError(
      `failed to download the Flux bundle from ${url}: ${why}`,
    );
  try {
    const res = await new HttpClient({
      tls: { ca: withSystemRoots(source.caPem) },
      timeoutMs: source.downloadTimeoutMs,
      maxResponseBytes: MAX_COMPRESSED_BYTES,
      retries: 2,
      logger,
    }).request({
      method: 'GET',
      url,
      headers: { accept: '*/*' },
      signal,
      what: 'download the Flux bundle',
      followRedirects: true,
    });
    if (res.status === 200) return res.body;
    throw failed(
      `HTTP ${res.status}${
        res.status === 404
          ? ' (is the version released and the mirror complete?)'
          : ''
      }`,
    );
  } catch (e) {
    if (e instanceof HttpError) throw failed(e.detail);
    throw e;
  }
}
