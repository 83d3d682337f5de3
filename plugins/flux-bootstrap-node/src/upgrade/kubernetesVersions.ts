import type { Config } from '@backstage/config';
import { InputError } from '@backstage/errors';
import semver from 'semver';
import type { KubeClient } from '../kube/types';
import { silentLogger, type EngineLogger } from '../util/logger';

/**
 * Kubernetes versions Flux minor `flux` (`v2.9`) supports: below `minimum` is refused, outside
 * the `supported` minors warned about.
 * @public
 */
export interface KubernetesVersionSupport {
  flux: string;
  minimum: string;
  supported: string[];
}

/**
 * `minimum`: `kubernetesConstraints` (`>=<minimum>-0`) in fluxcd/flux2 `cmd/flux/check.go` at the
 * release tag, what `flux check --pre` enforces. `supported`: the "Supported Kubernetes versions"
 * table of the release announcement (https://fluxcd.io/blog/, "Announcing Flux 2.N GA"). A Flux
 * minor newer than every row gets the newest row (minimums only rise); an older one is not checked.
 */
const KUBERNETES_VERSION_SUPPORT: KubernetesVersionSupport[] = [
  { flux: 'v2.5', minimum: 'v1.30.0', supported: ['v1.30', 'v1.31', 'v1.32'] },
  { flux: 'v2.6', minimum: 'v1.31.0', supported: ['v1.31', 'v1.32', 'v1.33'] },
  { flux: 'v2.7', minimum: 'v1.32.0', supported: ['v1.32', 'v1.33', 'v1.34'] },
  { flux: 'v2.8', minimum: 'v1.33.0', supported: ['v1.33', 'v1.34', 'v1.35'] },
  { flux: 'v2.9', minimum: 'v1.33.0', supported: ['v1.34', 'v1.35', 'v1.36'] },
];

/** A judged version; `untested`: accepted by `flux check --pre`, not in the release's matrix. @public */
export interface KubernetesVersionVerdict {
  level: 'supported' | 'untested' | 'unsupported';
  /** In words, e.g. `>=1.33.0 (Flux v2.9 is tested with 1.34, 1.35, 1.36)`. */
  range: string;
  message: string;
}

const parse = (v: string) =>
  semver.parse(v.trim(), { loose: true }) ?? semver.coerce(v);
const minorOf = (v: string) => {
  const s = parse(v);
  return s && `${s.major}.${s.minor}`;
};
const newer = (a: string, b: string) => semver.gt(parse(a)!, parse(b)!);

/** Judges Kubernetes `kubernetesVersion` (a `GET /version` gitVersion) for Flux `fluxVersion`. @public */
export function judgeKubernetesVersion(
  kubernetesVersion: string,
  fluxVersion: string,
  table: KubernetesVersionSupport[] = KUBERNETES_VERSION_SUPPORT,
): KubernetesVersionVerdict {
  const [newest] = [...table].sort((a, b) => (newer(a.flux, b.flux) ? -1 : 1));
  const row =
    table.find(r => minorOf(r.flux) === minorOf(fluxVersion)) ??
    (newest && newer(fluxVersion, newest.flux) ? newest : undefined);
  const kube = parse(kubernetesVersion);
  if (!row || !kube) {
    const message = `No Kubernetes range is known for Flux ${fluxVersion}; not checked (fluxBootstrap.kubernetesVersions can add one)`;
    return { level: 'untested', range: 'unknown', message };
  }
  const minimum = parse(row.minimum)!.version;
  const tested = row.supported.map(minorOf).join(', ');
  const range = `>=${minimum}${
    tested && ` (Flux ${row.flux} is tested with ${tested})`
  }`;
  const says = {
    supported: `supported (${range})`,
    untested: `accepted by flux check --pre but not in the release's support matrix; supported ${range}`,
    unsupported: `not supported, Flux needs ${range}`,
  };
  let level: KubernetesVersionVerdict['level'] = 'supported';
  if (!semver.satisfies(kube, `>=${minimum}-0`, { includePrerelease: true }))
    level = 'unsupported';
  else if (tested && !tested.split(', ').includes(minorOf(kubernetesVersion)!))
    level = 'untested';
  const head = `Kubernetes ${kubernetesVersion} with Flux ${fluxVersion}`;
  return { level, range, message: `${head}: ${says[level]}` };
}

/** Like `flux check --pre` (`GET /version`): InputError when unsupported, warns when untested. */
export async function checkKubernetesVersion(
  client: KubeClient,
  fluxVersion: string,
  table: KubernetesVersionSupport[],
  opts: { signal?: AbortSignal; logger?: EngineLogger } = {},
): Promise<KubernetesVersionVerdict> {
  const logger = opts.logger ?? silentLogger;
  const { gitVersion } = await client.version({ signal: opts.signal });
  const v = judgeKubernetesVersion(gitVersion, fluxVersion, table);
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

/** The built-in table with the `fluxBootstrap.kubernetesVersions` rows replacing their Flux minor's. */
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
    const bad = [row.flux, row.minimum, ...row.supported].find(
      v => !/^v?\d+\.\d+(\.\d+)?$/.test(v),
    );
    if (bad)
      throw new Error(`${key}[${i}]: "${bad}" is not a version like v1.33.0`);
    return row;
  });
  const own = new Set(rows.map(r => minorOf(r.flux)));
  return [
    ...KUBERNETES_VERSION_SUPPORT.filter(r => !own.has(minorOf(r.flux))),
    ...rows,
  ];
}
