import { ConflictError } from '@backstage/errors';
import semver from 'semver';
import { silentLogger, type EngineLogger } from '../util/logger';

/**
 * The label kustomize-controller puts on what it applies. On the Flux CRDs it means Flux applies
 * its own components from Git (`flux check` reports it as "bootstrapped").
 * @public
 */
export const KUSTOMIZE_NAME_LABEL = 'kustomize.toolkit.fluxcd.io/name';

/** The Flux version a `gotk-components.yaml` was generated for (its `# Flux Version:` line). @public */
export function componentsFluxVersion(yaml: string): string | undefined {
  return /^# Flux Version: (v\S+)\s*$/m.exec(yaml)?.[1];
}

/**
 * Refuses to replace Flux `current` (found `where`) by an older `next`, unless `allowDowngrade`
 * (then it warns): Flux does not support downgrades in general (CRD storage versions, removed
 * APIs). Returns what the change is.
 * @public
 */
export function checkFluxVersionChange(
  current: string | undefined,
  next: string,
  opts: { where: string; allowDowngrade?: boolean; logger?: EngineLogger },
): 'install' | 'same' | 'upgrade' | 'downgrade' {
  const from = current ? semver.parse(current, { loose: true }) : null;
  const to = semver.parse(next, { loose: true });
  if (!from || !to) return 'install';
  const cmp = semver.compare(from, to);
  if (cmp < 0) return 'upgrade';
  if (cmp === 0) return 'same';
  const text = `Flux ${current} is ${opts.where}; ${next} would be a downgrade`;
  if (!opts.allowDowngrade) {
    throw new ConflictError(
      `${text}, which Flux does not support in general (CRD storage versions, removed APIs); nothing was changed. Set allowDowngrade: true to do it anyway.`,
    );
  }
  (opts.logger ?? silentLogger).warn(`${text} (allowDowngrade)`);
  return 'downgrade';
}
