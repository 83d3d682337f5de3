/** A Kubernetes object as plain JSON, exactly as the API server sends it. @public */
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

/** What discovery says about one kind. @public */
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
 * The engine's Kubernetes client. Every call is abortable (OperationAbortedError); failures are
 * {@link KubeApiError}s whose messages never carry credentials.
 * @public
 */
export interface KubeClient {
  /** The cluster's name, for messages. */
  readonly clusterName: string;
  /** One object; `undefined` when it (or its kind) does not exist. `metadataOnly`: PartialObjectMetadata. */
  get<T extends KubeObject = KubeObject>(
    ref: KubeObjectRef,
    opts?: { signal?: AbortSignal; metadataOnly?: boolean },
  ): Promise<T | undefined>;
  /** All pages of a kind's objects, with apiVersion and kind; `[]` when the kind does not exist. */
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
  /** Server-side apply with the given field manager (idempotent, so retried). */
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
   * JSON merge patch (RFC 7386) under `fieldManager`, for what apply cannot do (dropping list items
   * another manager owns, `flux reconcile|suspend|resume`). `undefined` when the object is absent.
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
  /** SelfSubjectAccessReviews: may the client's credentials do each thing? */
  canI(
    checks: KubeAccessCheck[],
    opts?: { signal?: AbortSignal },
  ): Promise<{ allowed: boolean; reason?: string }[]>;
  /** Creates the Namespace when it does not exist; never modifies an existing one. */
  ensureNamespace(
    name: string,
    opts: { fieldManager: string; signal?: AbortSignal },
  ): Promise<void>;
  /** Discovery (cached per client, asked again for an unknown kind); `undefined` when not served. */
  resourceFor(
    apiVersion: string,
    kind: string,
    opts?: { signal?: AbortSignal; refresh?: boolean },
  ): Promise<KubeResourceInfo | undefined>;
  /** `GET /version` of the API server. */
  version(opts?: {
    signal?: AbortSignal;
  }): Promise<{ gitVersion: string; major: string; minor: string }>;
  /** Releases pooled connections. */
  close(): void;
}
