import { ConflictError } from '@backstage/errors';
import semver from 'semver';
import { silentLogger, type EngineLogger } from '../util/logger';

/** The Flux version a `gotk-components.yaml` was generated for (its `# Flux Version:` line). */
export const componentsFluxVersion = (yaml: string) =>
  /^# Flux Version: (v\S+)\s*$/m.exec(yaml)?.[1];

/** Refuses to replace Flux `current` (found `where`) by an older `next` unless `allowDowngrade`. */
export function checkFluxVersionChange(
  current: string | undefined,
  next: string,
  opts: { where: string; allowDowngrade?: boolean; logger?: EngineLogger },
): 'install' | 'same' | 'upgrade' | 'downgrade' {
  const from = current ? semver.parse(current, { loose: true }) : null;
  const to = semver.parse(next, { loose: true });
  if (!from || !to) return 'install';
  const cmp = semver.compare(from, to);
  if (cmp <= 0) return cmp ? 'upgrade' : 'same';
  const text = `Flux ${current} is ${opts.where}; ${next} would be a downgrade`;
  if (!opts.allowDowngrade) {
    throw new ConflictError(
      `${text}, which Flux does not support in general (CRD storage versions, removed APIs); nothing was changed. Set allowDowngrade: true to do it anyway.`,
    );
  }
  (opts.logger ?? silentLogger).warn(`${text} (allowDowngrade)`);
  return 'downgrade';
}
