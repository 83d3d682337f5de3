import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { Parser } from 'tar';
import type { EngineLogger } from '../util/logger';
import { silentLogger } from '../util/logger';
import { combineSignals } from '../util/async';
import {
  FluxBootstrapError,
  isAbortError,
  OperationAbortedError,
} from '../util/errors';
import { FluxBundleError, FluxBundleFiles } from './components';
import { digestOfFiles, identifyBundleFiles } from './parsedBundle';
import { validateFluxVersion } from './validation';

const MAX_COMPRESSED_BYTES = 64 * 1024 * 1024;
const MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024;
const MAX_REDIRECTS = 5;

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
  const tarball = await download(url, source, options.signal);
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

/** GET with redirects (no credentials are ever sent), a size cap, a timeout and the abort signal. */
async function download(
  url: string,
  source: ManifestsSourceConfig,
  signal?: AbortSignal,
): Promise<Buffer> {
  const combined = combineSignals([signal], source.downloadTimeoutMs);
  try {
    let current = new URL(url);
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const res = await getOnce(current, source.caPem, combined.signal);
      if (res.status >= 300 && res.status < 400 && res.location) {
        current = new URL(res.location, current);
        if (current.protocol !== 'https:' && current.protocol !== 'http:') {
          throw new Error(
            `redirect to unsupported URL scheme ${current.protocol}`,
          );
        }
        continue;
      }
      if (res.status !== 200) {
        throw new FluxBundleError(
          `failed to download the Flux bundle from ${url}: HTTP ${res.status}${
            res.status === 404
              ? ' (is the version released and the mirror complete?)'
              : ''
          }`,
        );
      }
      return res.body;
    }
    throw new FluxBundleError(
      `failed to download the Flux bundle from ${url}: too many redirects`,
    );
  } catch (e) {
    if (combined.timedOut()) {
      throw new FluxBundleError(
        `failed to download the Flux bundle from ${url}: no answer within ${source.downloadTimeoutMs} ms`,
      );
    }
    if (signal?.aborted || isAbortError(e))
      throw new OperationAbortedError(
        'Cancelled while downloading the Flux bundle',
      );
    if (e instanceof FluxBundleError) throw e;
    throw new FluxBundleError(
      `failed to download the Flux bundle from ${url}: ${(e as Error).message}`,
    );
  } finally {
    combined.dispose();
  }
}

function getOnce(
  url: URL,
  caPem: string | undefined,
  signal: AbortSignal,
): Promise<{ status: number; location?: string; body: Buffer }> {
  const isHttps = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (isHttps ? https : http).request(
      url,
      {
        method: 'GET',
        signal,
        headers: { 'user-agent': 'flux-bootstrap-backstage', accept: '*/*' },
        ...(isHttps && caPem ? { ca: [...tls.rootCertificates, caPem] } : {}),
      },
      res => {
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          res.resume();
          resolve({
            status,
            location: res.headers.location,
            body: Buffer.alloc(0),
          });
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_COMPRESSED_BYTES) {
            res.destroy(
              new Error(`bundle larger than ${MAX_COMPRESSED_BYTES} bytes`),
            );
            return;
          }
          chunks.push(c);
        });
        res.on('error', reject);
        res.on('aborted', () =>
          reject(new Error('connection closed before the download finished')),
        );
        res.on('end', () => resolve({ status, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
