import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * Why a Flux install stopped. Nothing was applied for `missing-permissions`, `managed-by-other`
 * (another tool manages Flux and `force` is off) and `path-conflict` (the sync Kustomization
 * syncs another path). `sync-failed` (Ready=False), `suspended`, `component-failed` (a controller
 * cannot roll out) and `timeout` (the message lists what was missing) end the wait;
 * `interrupted`: a request failed for good mid-install, the message says in which phase.
 * @public
 */
export type FluxInstallErrorReason =
  | 'missing-permissions'
  | 'managed-by-other'
  | 'path-conflict'
  | 'sync-failed'
  | 'suspended'
  | 'component-failed'
  | 'timeout'
  | 'interrupted';

/** A Flux install that cannot proceed or did not become ready, named as Backstage names its reason. @public */
export class FluxInstallError extends FluxBootstrapError {
  readonly reason: FluxInstallErrorReason;
  /** What was missing: permissions, or objects not ready yet. */
  readonly missing: string[];

  constructor(
    reason: FluxInstallErrorReason,
    message: string,
    missing: string[] = [],
  ) {
    super(errorNameForKind(reason), message);
    this.reason = reason;
    this.missing = missing;
  }
}
