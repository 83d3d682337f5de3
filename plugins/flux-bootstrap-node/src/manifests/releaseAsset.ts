import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { FluxBundleError } from './components';
import { HttpClient, HttpError, withSystemRoots } from '../http';
import { FluxBootstrapError } from '../util/errors';
import { silentLogger, type EngineLogger } from '../util/logger';

/** `fluxBootstrap.manifests` or `fluxBootstrap.operator.manifests`: where an asset comes from. @public */
export interface ManifestsSourceConfig {
  /** The asset of version `v` is `<baseUrl>/<v>/<file>`. */
  baseUrl: string;
  /** A local folder with `<version>/<file>`; replaces `baseUrl`. */
  localPath?: string;
  cacheDir: string;
  /** Expected sha256 (hex, lower-case) of the asset per version. */
  sha256: Record<string, string>;
  defaultVersion: string;
  caPem?: string;
  downloadTimeoutMs: number;
}

/** An asset whose sha256 differs from the configured one; it is not used (a `ConflictError`). @public */
export class BundleChecksumError extends FluxBootstrapError {
  constructor(message: string) {
    super('ConflictError', message);
  }
}

type AssetOrigin = 'download' | 'cache' | 'local';

/** What {@link loadReleaseAsset} loads: the asset's file and how to read and name it. */
export interface ReleaseAssetRequest<T> {
  /** For messages, e.g. `the Flux v2.9.4 bundle`. */
  what: string;
  version: string;
  file: string;
  /** For messages, e.g. `fluxBootstrap.manifests`. */
  configKey: string;
  source: ManifestsSourceConfig;
  /** Reads the checked content; throws when it is unusable (a cached copy is then fetched again). */
  read(data: Buffer): Promise<T> | T;
  maxBytes: number;
}

/**
 * Gets a release asset from the local folder (`undefined` when it has no such file), else the
 * on-disk cache, else a download from `baseUrl` (cached afterwards). A configured sha256 is
 * checked on every use, cached copies included; a mismatch is refused.
 */
export async function loadReleaseAsset<T>(
  req: ReleaseAssetRequest<T>,
  options: { signal?: AbortSignal; logger?: EngineLogger } = {},
): Promise<
  | { value: T; sha256: string; origin: AssetOrigin; location: string }
  | undefined
> {
  const { what, version, source } = req;
  const logger = options.logger ?? silentLogger;
  const expected = source.sha256[version];
  const verified = expected ? ' (sha256 verified)' : '';
  const use = async (data: Buffer, origin: AssetOrigin, location: string) => {
    const sha256 = crypto.createHash('sha256').update(data).digest('hex');
    if (expected && sha256 !== expected)
      throw new BundleChecksumError(
        `${what} from ${location} has sha256 ${sha256}, but ${req.configKey}.sha256 expects ${expected}; refusing to use it`,
      );
    return { value: await req.read(data), sha256, origin, location };
  };

  if (source.localPath) {
    const file = path.join(source.localPath, version, req.file);
    const data = await fs.readFile(file).catch(() => undefined);
    if (!data) return undefined;
    const asset = await use(data, 'local', file);
    logger.info(`Using ${what} ${file}${verified}`);
    return asset;
  }

  const url = `${source.baseUrl}/${version}/${req.file}`;
  const cacheFile = path.join(source.cacheDir, version, req.file);
  const cached = await fs.readFile(cacheFile).catch(() => undefined);
  const cachedWhat = `cached ${what.replace(/^the /, '')} ${cacheFile}`;
  if (cached) {
    try {
      const asset = await use(cached, 'cache', cacheFile);
      logger.info(`Using the ${cachedWhat}${verified}`);
      return asset;
    } catch (e) {
      logger.warn(
        `The ${cachedWhat} ${
          e instanceof BundleChecksumError
            ? 'does not match the configured sha256'
            : 'is unreadable'
        }; downloading it again`,
      );
      await fs.rm(cacheFile, { force: true });
    }
  }

  logger.info(`Downloading ${what} from ${url}`);
  const data = await download(req, url, logger, options.signal);
  const asset = await use(data, 'download', url);
  await writeAtomically(cacheFile, data).catch(e =>
    logger.warn(
      `Could not cache ${what} in ${cacheFile}: ${(e as Error).message}`,
    ),
  );
  logger.info(
    `Downloaded ${what} (${data.length} bytes, sha256 ${asset.sha256}${
      expected ? ', verified' : ''
    })`,
  );
  return asset;
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
  req: ReleaseAssetRequest<unknown>,
  url: string,
  logger: EngineLogger,
  signal?: AbortSignal,
): Promise<Buffer> {
  const failed = (why: string) =>
    new FluxBundleError(`failed to download ${req.what} from ${url}: ${why}`);
  try {
    const res = await new HttpClient({
      tls: { ca: withSystemRoots(req.source.caPem) },
      timeoutMs: req.source.downloadTimeoutMs,
      maxResponseBytes: req.maxBytes,
      retries: 2,
      logger,
    }).request({
      method: 'GET',
      url,
      headers: { accept: '*/*' },
      signal,
      what: `download ${req.what}`,
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
