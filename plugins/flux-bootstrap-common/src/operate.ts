/*
 * Day-2 operations on a cluster's Flux sync (reconcile now, suspend, resume): the annotations
 * the status backend writes on the sync Kustomization next to `spec.suspend`, so whoever looks
 * at the object (kubectl, the flux CLI, the card) sees who suspended it and why.
 */

/** Why the sync was suspended, as the user gave it. @public */
export const FLUX_SUSPENDED_REASON_ANNOTATION =
  'flux-bootstrap.io/suspended-reason';
/** Entity ref of the user who suspended it, e.g. `user:default/alice`. @public */
export const FLUX_SUSPENDED_BY_ANNOTATION = 'flux-bootstrap.io/suspended-by';
/** When it was suspended (RFC 3339). @public */
export const FLUX_SUSPENDED_AT_ANNOTATION = 'flux-bootstrap.io/suspended-at';
/** Why it was resumed, when a reason was given. @public */
export const FLUX_RESUMED_REASON_ANNOTATION =
  'flux-bootstrap.io/resumed-reason';
/** Entity ref of the user who resumed it. @public */
export const FLUX_RESUMED_BY_ANNOTATION = 'flux-bootstrap.io/resumed-by';
/** When it was resumed (RFC 3339). @public */
export const FLUX_RESUMED_AT_ANNOTATION = 'flux-bootstrap.io/resumed-at';
