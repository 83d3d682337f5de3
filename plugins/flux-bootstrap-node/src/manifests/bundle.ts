import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { Parser } from 'tar';
import type { ConfigLike } from '../config/ConfigLike';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import { HttpClient, HttpError, withSystemRoots } from '../http';
import { FluxBundleError, FluxBundleFiles } from './components';
import { digestOfFiles, identifyBundleFiles } from './parsedBundle';
import { validateFluxVersion } from './validation';

/** The Flux release the generator is tested with; used when neither input nor config names one. @public */
export const DEFAULT_FLUX_VERSION = 'v2.9.4';

/** Where official release bundles live: `<base>/<version>/manifests.tar.gz`. @public */
export const FLUX_RELEASES_BASE_URL =
  'https://github.com/fluxcd/flux2/releases/download';

const MAX_COMPRESSED_BYTES = 64 * 1024 * 1024;
const MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024;

/** `fluxBootstrap.manifests` as the engine uses it. @public */
export interface ManifestsSourceConfig {
  /** Base URL of bundles (official releases or a mirror). */
  baseUrl: string;
  /** A local folder with `<version>/manifests.tar.gz` or `<version>/*.yaml`; replaces `baseUrl`. */
  localPath?: string;
  /** Folder of downloaded bundles, one per version. */
  cacheDir: string;
  /** Expected sha256 (hex, lower-case) of `manifests.tar.gz` per version. */
  sha256: Record<string, string>;
  /** Version used when none is requested. */
  defaultVersion: string;
  /** Extra CA (PEM) trusted for downloads. */
  caPem?: string;
  /** Timeout of one download in milliseconds. */
  downloadTimeoutMs: number;
}

/** Thrown when a bundle's sha256 differs from the configured one; the bundle is not used. @public */
export class BundleChecksumError extends Error {
  constructor(
    readonly version: string,
    readonly expected: string,
    readonly actual: string,
    where: string,
  ) {
    super(
      `the Flux ${version} bundle from ${where} has sha256 ${actual}, but fluxBootstrap.manifests.sha256 expects ${expected}; refusing to use it`,
    );
    this.name = 'BundleChecksumError';
  }
}

/**
 * Reads `fluxBootstrap.manifests` (see config.d.ts). Config errors are reported with the key.
 * @public
 */
export function readManifestsConfig(
  config?: ConfigLike,
): ManifestsSourceConfig {
  const c = config?.getOptionalConfig('fluxBootstrap.manifests');
  const baseUrl = (
    c?.getOptionalString('baseUrl') ?? FLUX_RELEASES_BASE_URL
  ).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(baseUrl);
  } catch {
    throw new Error(
      `fluxBootstrap.manifests.baseUrl "${baseUrl}" is not a URL`,
    );
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new Error('fluxBootstrap.manifests.baseUrl must be an http(s) URL');
  }
  if (parsed.username || parsed.password) {
    throw new Error(
      'fluxBootstrap.manifests.baseUrl must not contain credentials',
    );
  }
  const sha256: Record<string, string> = {};
  const raw = c?.getOptional<unknown>('sha256');
  const addSum = (version: unknown, sum: unknown) => {
    if (
      typeof version !== 'string' ||
      typeof sum !== 'string' ||
      !/^[0-9a-fA-F]{64}$/.test(sum.trim())
    ) {
      throw new Error(
        `fluxBootstrap.manifests.sha256 must map versions to 64 hex digits (bad entry for "${String(
          version,
        )}")`,
      );
    }
    sha256[version] = sum.trim().toLowerCase();
  };
  if (Array.isArray(raw)) {
    for (const entry of raw)
      addSum((entry as any)?.version, (entry as any)?.sha256);
  } else if (raw && typeof raw === 'object') {
    for (const [version, sum] of Object.entries(raw as Record<string, unknown>))
      addSum(version, sum);
  } else if (raw !== undefined) {
    throw new Error(
      'fluxBootstrap.manifests.sha256 must be a map of version to sha256',
    );
  }
  const defaultVersion =
    c?.getOptionalString('defaultVersion') ?? DEFAULT_FLUX_VERSION;
  try {
    validateFluxVersion(
      defaultVersion,
      'fluxBootstrap.manifests.defaultVersion',
    );
  } catch (e) {
    throw new Error((e as Error).message);
  }
  return {
    baseUrl,
    localPath: c?.getOptionalString('localPath') || undefined,
    cacheDir:
      c?.getOptionalString('cacheDir') ??
      path.join(os.tmpdir(), 'flux-bootstrap-manifests'),
    sha256,
    defaultVersion,
    caPem: c?.getOptionalString('caData') || undefined,
    downloadTimeoutMs: c?.getOptionalNumber('downloadTimeoutMs') ?? 120_000,
  };
}

/** A bundle ready for {@link generateComponentsManifest}. @public */
export interface LoadedFluxBundle {
  version: string;
  /**
   * The bundle's YAML files, frozen. Generations from any load of the same bundle (version and
   * content) share one parse of these files.
   */
  files: FluxBundleFiles;
  /** sha256 of `manifests.tar.gz` (absent for an extracted local folder). */
  sha256?: string;
  /** Where it came from. */
  origin: 'download' | 'cache' | 'local';
  /** URL or path it was read from. */
  location: string;
}

function sha256Hex(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * Reads the YAML files of a `manifests.tar.gz` in memory. Only flat regular `*.yaml` files are
 * taken; nothing is written to disk, so entry names cannot escape anywhere. Sizes are capped.
 * @public
 */
export async function readBundleTarball(
  tarball: Buffer,
  version = 'requested',
): Promise<FluxBundleFiles> {
  let tar: Buffer;
  try {
    tar = zlib.gunzipSync(tarball, { maxOutputLength: MAX_UNCOMPRESSED_BYTES });
  } catch (e) {
    throw new FluxBundleError(
      `the Flux ${version} bundle is not a readable manifests.tar.gz: ${
        (e as Error).message
      }`,
    );
  }
  const files: FluxBundleFiles = {};
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      strict: true,
      onReadEntry: entry => {
        const name = entry.path.replace(/^\.\//, '');
        const wanted =
          (entry.type === 'File' || entry.type === 'OldFile') &&
          /^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$/.test(name);
        if (!wanted) {
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
    parser.on('error', (e: Error) => reject(e));
    parser.on('end', () => resolve());
    try {
      parser.end(tar);
    } catch (e) {
      reject(e);
    }
  }).catch(e => {
    throw new FluxBundleError(
      `the Flux ${version} bundle is not a readable tar archive: ${
        (e as Error).message
      }`,
    );
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

  if (source.localPath) {
    const dir = path.join(source.localPath, version);
    const tarPath = path.join(dir, 'manifests.tar.gz');
    const tarball = await fs.readFile(tarPath).catch(() => undefined);
    if (tarball) {
      const actual = sha256Hex(tarball);
      if (expected && actual !== expected) {
        throw new BundleChecksumError(version, expected, actual, tarPath);
      }
      logger.info(
        `Using the Flux ${version} bundle ${tarPath}${
          expected ? ' (sha256 verified)' : ''
        }`,
      );
      return {
        version,
        files: identifyBundleFiles(
          await readBundleTarball(tarball, version),
          version,
          `sha256:${actual}`,
        ),
        sha256: actual,
        origin: 'local',
        location: tarPath,
      };
    }
    const names = await fs.readdir(dir).catch(() => undefined);
    const yamlNames = (names ?? [])
      .filter(n => /^[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$/.test(n))
      .sort();
    if (yamlNames.length === 0) {
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
    for (const n of yamlNames)
      files[n] = await fs.readFile(path.join(dir, n), 'utf8');
    logger.info(`Using the extracted Flux ${version} bundle in ${dir}`);
    return {
      version,
      files: identifyBundleFiles(files, version, digestOfFiles(files)),
      origin: 'local',
      location: dir,
    };
  }

  const url = `${source.baseUrl}/${version}/manifests.tar.gz`;
  const cacheFile = path.join(source.cacheDir, version, 'manifests.tar.gz');
  const cached = await fs.readFile(cacheFile).catch(() => undefined);
  if (cached) {
    const actual = sha256Hex(cached);
    if (!expected || actual === expected) {
      try {
        const files = identifyBundleFiles(
          await readBundleTarball(cached, version),
          version,
          `sha256:${actual}`,
        );
        logger.info(
          `Using the cached Flux ${version} bundle ${cacheFile}${
            expected ? ' (sha256 verified)' : ''
          }`,
        );
        return {
          version,
          files,
          sha256: actual,
          origin: 'cache',
          location: cacheFile,
        };
      } catch {
        logger.warn(
          `The cached Flux ${version} bundle ${cacheFile} is unreadable; downloading it again`,
        );
      }
    } else {
      logger.warn(
        `The cached Flux ${version} bundle ${cacheFile} does not match the configured sha256; downloading it again`,
      );
    }
    await fs.rm(cacheFile, { force: true });
  }

  logger.info(`Downloading the Flux ${version} bundle from ${url}`);
  const tarball = await download(url, source, logger, options.signal);
  const actual = sha256Hex(tarball);
  if (expected && actual !== expected) {
    throw new BundleChecksumError(version, expected, actual, url);
  }
  const files = identifyBundleFiles(
    await readBundleTarball(tarball, version),
    version,
    `sha256:${actual}`,
  );
  await writeAtomically(cacheFile, tarball).catch(e =>
    logger.warn(
      `Could not cache the Flux ${version} bundle in ${cacheFile}: ${
        (e as Error).message
      }`,
    ),
  );
  logger.info(
    `Downloaded the Flux ${version} bundle (${
      tarball.length
    } bytes, sha256 ${actual}${expected ? ', verified' : ''})`,
  );
  return { version, files, sha256: actual, origin: 'download', location: url };
}

async function writeAtomically(file: string, data: Buffer): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.${crypto
    .randomBytes(6)
    .toString('hex')}.tmp`;
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
