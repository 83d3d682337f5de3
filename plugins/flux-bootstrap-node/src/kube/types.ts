/**
 * A Kubernetes object as the engine handles it: plain JSON, exactly as the API server sends it
 * (no client-side model, so no field is dropped or converted).
 * @public
 */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    generation?: number;
    uid?: string;
    managedFields?: unknown[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

/** Names one object. `namespace` is ignored for cluster-scoped kinds. @public */
export interface KubeObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** What discovery says about one kind (from `/api/v1` or `/apis/<group>/<version>`). @public */
export interface KubeResourceInfo {
  /** Plural resource name, e.g. `deployments`. */
  name: string;
  namespaced: boolean;
  kind: string;
  verbs: string[];
}

/** One SelfSubjectAccessReview question. `group` is '' for the core API group. @public */
export interface KubeAccessCheck {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
  name?: string;
}

/**
 * The engine's Kubernetes client: server-side apply, get, list, delete, access reviews.
 * Every call takes an AbortSignal and is released promptly when it aborts (OperationAbortedError).
 * Failures are {@link KubeApiError}s whose messages never carry credentials.
 * @public
 */
export interface KubeClient {
  /** The cluster name the client talks to (for messages). */
  readonly clusterName: string;
  /**
   * Reads one object; `undefined` when it (or its kind) does not exist. With `metadataOnly`, only
   * its `metadata` (a PartialObjectMetadata: a CRD's labels without its large schema).
   */
  get<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    opts?: { signal?: AbortSignal; metadataOnly?: boolean },
  ): Promise<T | undefined>;
  /**
   * Lists objects of a kind (all pages); `[]` when the kind does not exist. Items carry apiVersion
   * and kind. With `metadataOnly`, items hold only `metadata` (a PartialObjectMetadataList: cheap
   * for "which of these exist").
   */
  list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    opts?: {
      namespace?: string;
      labelSelector?: string;
      metadataOnly?: boolean;
      signal?: AbortSignal;
    },
  ): Promise<T[]>;
  /**
   * Server-side apply (`PATCH`, `application/apply-patch+yaml`) with the given field manager.
   * Identical content is a no-op on the server (resourceVersion unchanged). Retried on 5xx/429 and
   * connection resets (apply is idempotent).
   */
  apply<T extends KubeObject = KubeObject>(
    obj: KubeObject,
    opts: {
      fieldManager: string;
      force?: boolean;
      dryRun?: boolean;
      signal?: AbortSignal;
    },
  ): Promise<T>;
  /**
   * JSON merge patch (RFC 7386, `application/merge-patch+json`) of one object, recorded under
   * `fieldManager` (an Update in managedFields). For what server-side apply cannot do: removing
   * list items another manager owns (finalizers), or changing a few fields the way `flux
   * reconcile|suspend|resume` do. `undefined` when the object does not exist. Idempotent for the
   * same patch, so retried like apply.
   */
  patch<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    patch: Record<string, unknown>,
    opts: { fieldManager: string; signal?: AbortSignal },
  ): Promise<T | undefined>;
  /** Deletes one object; `false` when it did not exist. */
  delete(
    ref: KubeObjectRef,
    opts?: {
      signal?: AbortSignal;
      propagationPolicy?: 'Foreground' | 'Background' | 'Orphan';
    },
  ): Promise<boolean>;
  /** Asks the API server (SelfSubjectAccessReview) whether the client's credentials may do each thing. */
  canI(
    checks: KubeAccessCheck[],
    opts?: { signal?: AbortSignal },
  ): Promise<{ allowed: boolean; reason?: string }[]>;
  /** Creates the Namespace when it does not exist; never modifies an existing one. */
  ensureNamespace(
    name: string,
    opts: { fieldManager: string; signal?: AbortSignal },
  ): Promise<void>;
  /**
   * Discovery: the resource behind a kind, cached per client (refreshed when a kind is not found,
   * e.g. right after its CRD was applied). `undefined` when the server does not serve it.
   */
  resourceFor(
    apiVersion: string,
    kind: string,
    opts?: { signal?: AbortSignal; refresh?: boolean },
  ): Promise<KubeResourceInfo | undefined>;
  /** `GET /version` of the API server. */
  version(opts?: {
    signal?: AbortSignal;
  }): Promise<{ gitVersion: string; major: string; minor: string }>;
  /** Releases pooled connections. The client must not be used afterwards. */
  close(): void;
}
