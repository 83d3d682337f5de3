import { errorNameForKind, FluxBootstrapError } from '../util/errors';

/**
 * Why a Flux install stopped:
 * `missing-permissions` — the credentials cannot create what the install needs (nothing applied);
 * `managed-by-other` — Flux is installed by another tool and `force` is off (nothing applied);
 * `path-conflict` — the sync Kustomization already syncs another path (nothing applied);
 * `sync-failed` — a Flux object reported Ready=False; `suspended` — it is suspended;
 * `component-failed` — a controller Deployment cannot roll out;
 * `timeout` — not ready in time (the message lists what was still missing);
 * `interrupted` — a request failed for good mid-install (cluster unreachable, API errors after
 * retries); the message says which phase stopped and what was already applied.
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
