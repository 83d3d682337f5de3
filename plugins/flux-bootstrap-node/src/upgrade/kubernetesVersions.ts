import type { Config } from '@backstage/config';
import { InputError } from '@backstage/errors';
import semver from 'semver';
import type { KubeClient } from '../kube/types';
import { silentLogger, type EngineLogger } from '../util/logger';

/** The Kubernetes versions one Flux minor supports. @public */
export interface KubernetesVersionSupport {
  /** The Flux minor, e.g. `v2.9`. */
  flux: string;
  /** The oldest Kubernetes `flux check --pre` accepts (`>=<minimum>-0`); older is refused. */
  minimum: string;
  /** Kubernetes minors of the release's support matrix; others at or above `minimum` get a warning. */
  supported: string[];
}

/**
 * Kubernetes per Flux minor. `minimum`: `kubernetesConstraints` in fluxcd/flux2
 * `cmd/flux/check.go` at the release tag (what `flux check --pre` enforces). `supported`: the
 * "Supported Kubernetes versions" table of the release announcement on https://fluxcd.io/blog/
 * ("Announcing Flux 2.N GA"). A Flux minor newer than every row gets the newest row (minimums only
 * rise); an older one is not checked. `fluxBootstrap.kubernetesVersions` replaces rows.
 * @public
 */
export const KUBERNETES_VERSION_SUPPORT: readonly KubernetesVersionSupport[] = [
  { flux: 'v2.5', minimum: 'v1.30.0', supported: ['v1.30', 'v1.31', 'v1.32'] },
  { flux: 'v2.6', minimum: 'v1.31.0', supported: ['v1.31', 'v1.32', 'v1.33'] },
  { flux: 'v2.7', minimum: 'v1.32.0', supported: ['v1.32', 'v1.33', 'v1.34'] },
  { flux: 'v2.8', minimum: 'v1.33.0', supported: ['v1.33', 'v1.34', 'v1.35'] },
  { flux: 'v2.9', minimum: 'v1.33.0', supported: ['v1.34', 'v1.35', 'v1.36'] },
];

/** What {@link judgeKubernetesVersion} found. @public */
export interface KubernetesVersionVerdict {
  /** `untested`: `flux check --pre` accepts it, the release's matrix does not list it (a warning). */
  level: 'supported' | 'untested' | 'unsupported';
  kubernetesVersion: string;
  fluxVersion: string;
  /** The supported range in words, e.g. `>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)`. */
  range: string;
  message: string;
}

const parse = (v: string) =>
  semver.parse(v.trim(), { loose: true }) ?? semver.coerce(v);
const minorOf = (v: string) => {
  const s = parse(v);
  return s ? `${s.major}.${s.minor}` : undefined;
};

/** Judges Kubernetes `kubernetesVersion` (a `GET /version` gitVersion) for Flux `fluxVersion`. @public */
export function judgeKubernetesVersion(
  kubernetesVersion: string,
  fluxVersion: string,
  table: readonly KubernetesVersionSupport[] = KUBERNETES_VERSION_SUPPORT,
): KubernetesVersionVerdict {
  const verdict = (
    level: KubernetesVersionVerdict['level'],
    range: string,
    message: string,
  ) => ({ level, kubernetesVersion, fluxVersion, range, message });
  const rows = [...table].sort((a, b) =>
    semver.compare(parse(a.flux)!, parse(b.flux)!),
  );
  const flux = parse(fluxVersion);
  const newest = rows[rows.length - 1];
  const row =
    rows.find(r => minorOf(r.flux) === minorOf(fluxVersion)) ??
    (flux && newest && semver.gt(flux, parse(newest.flux)!)
      ? newest
      : undefined);
  const kube = parse(kubernetesVersion);
  if (!row || !kube) {
    return verdict(
      'untested',
      'unknown',
      row
        ? `Kubernetes "${kubernetesVersion}" is not a version; not checked`
        : `No Kubernetes range is known for Flux ${fluxVersion}; not checked (fluxBootstrap.kubernetesVersions can add one)`,
    );
  }
  const minimum = parse(row.minimum)!.version;
  const tested = row.supported.map(m => minorOf(m)).join(', ');
  const range = `>=${minimum}${
    tested ? ` (Flux ${row.flux} is tested with ${tested})` : ''
  }`;
  const head = `Kubernetes ${kubernetesVersion} with Flux ${fluxVersion}`;
  if (!semver.satisfies(kube, `>=${minimum}-0`, { includePrerelease: true }))
    return verdict(
      'unsupported',
      range,
      `${head}: not supported, Flux needs ${range}`,
    );
  if (
    tested &&
    !row.supported.some(m => minorOf(m) === minorOf(kubernetesVersion))
  )
    return verdict(
      'untested',
      range,
      `${head}: accepted by flux check --pre but not in the release's support matrix; supported ${range}`,
    );
  return verdict('supported', range, `${head}: supported (${range})`);
}

/**
 * Reads `GET /version` and judges it (like `flux check --pre`) before anything is written:
 * throws an InputError naming both versions and the range when it is unsupported, warns when
 * it is untested.
 * @public
 */
export async function checkKubernetesVersion(
  client: KubeClient,
  fluxVersion: string,
  opts: {
    table?: readonly KubernetesVersionSupport[];
    signal?: AbortSignal;
    logger?: EngineLogger;
  } = {},
): Promise<KubernetesVersionVerdict> {
  const logger = opts.logger ?? silentLogger;
  const { gitVersion } = await client.version({ signal: opts.signal });
  const v = judgeKubernetesVersion(gitVersion, fluxVersion, opts.table);
  const where = `cluster "${client.clusterName}"`;
  if (v.level === 'unsupported') {
    throw new InputError(
      `${v.message}, on ${where}; nothing was changed. Upgrade the cluster or choose an older Flux version; for a distribution whose version misleads, set fluxBootstrap.kubernetesVersions.`,
    );
  }
  if (v.level === 'untested') logger.warn(`${v.message} (${where})`);
  else logger.info(`✔ ${v.message} (${where})`);
  return v;
}

/** The table with `fluxBootstrap.kubernetesVersions` rows replacing those of their Flux minor. @public */
export function readKubernetesVersionsConfig(
  config: Config,
): KubernetesVersionSupport[] {
  const key = 'fluxBootstrap.kubernetesVersions';
  const rows = (config.getOptionalConfigArray(key) ?? []).map((c, i) => {
    const row = {
      flux: c.getString('flux'),
      minimum: c.getString('minimum'),
      supported: c.getOptionalStringArray('supported') ?? [],
    };
    for (const v of [row.flux, row.minimum, ...row.supported]) {
      if (!/^v?\d+\.\d+(\.\d+)?$/.test(v))
        throw new Error(`${key}[${i}]: "${v}" is not a version like v1.33.0`);
    }
    return row;
  });
  const own = new Set(rows.map(r => minorOf(r.flux)));
  return [
    ...KUBERNETES_VERSION_SUPPORT.filter(r => !own.has(minorOf(r.flux))),
    ...rows,
  ];
}
