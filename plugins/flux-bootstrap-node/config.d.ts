export interface Config {
  /** Settings of the Flux bootstrap plugins (scaffolder actions and status backend). */
  fluxBootstrap?: {
    /** Where Flux release bundles (`manifests.tar.gz`) come from. */
    manifests?: {
      /**
       * Base URL of release bundles; the bundle of version `v` is `<baseUrl>/<v>/manifests.tar.gz`.
       * Default: https://github.com/fluxcd/flux2/releases/download. Point it at a mirror for
       * air-gapped sites.
       */
      baseUrl?: string;
      /**
       * A local folder holding `<version>/manifests.tar.gz` (or the extracted `<version>/*.yaml`).
       * When set it is used instead of `baseUrl`.
       */
      localPath?: string;
      /** Folder where downloaded bundles are cached, one file per version. Default: a folder under the OS temp dir. */
      cacheDir?: string;
      /**
       * Expected sha256 (hex) of `manifests.tar.gz` per version, e.g. `v2.9.4: 3f2a…`.
       * A bundle that does not match is refused before use; cached copies are checked on every
       * use too. With `localPath`, a version that has a sha256 must be a `manifests.tar.gz`
       * (extracted files cannot be checked).
       */
      sha256?: { [version: string]: string };
      /** Flux version used when a template does not ask for one. Default v2.9.4. */
      defaultVersion?: string;
      /** PEM CA bundle trusted when downloading from `baseUrl` (a mirror with a private CA). */
      caData?: string;
      /** Timeout of one bundle download in milliseconds (redirects included). Default 120000. */
      downloadTimeoutMs?: number;
    };
    /** The Flux Operator (`distribution: operator` of flux:push-manifests and flux:install). */
    operator?: {
      /** Where the operator's release manifests (`install.yaml`: CRDs, RBAC, Deployment) come from. */
      manifests?: {
        /**
         * Base URL of the operator's releases; the manifests of release `v` are
         * `<baseUrl>/<v>/install.yaml`. Default:
         * https://github.com/controlplaneio-fluxcd/flux-operator/releases/download. Point it at a
         * mirror for air-gapped sites. The plugin never ships these files.
         */
        baseUrl?: string;
        /** A local folder holding `<version>/install.yaml`; used instead of `baseUrl` when set. */
        localPath?: string;
        /** Folder where downloaded `install.yaml` files are cached. Default: a folder under the OS temp dir. */
        cacheDir?: string;
        /**
         * Expected sha256 (hex) of `install.yaml` per operator release, e.g. `v0.58.1: 3f2a…`
         * (from the release's `flux-operator_<version>_checksums.txt`). A file that does not match
         * is refused; cached copies are checked on every use too.
         */
        sha256?: { [version: string]: string };
        /** Operator release installed when a template does not ask for one. Default v0.58.1. */
        defaultVersion?: string;
        /** PEM CA bundle trusted when downloading from `baseUrl`. */
        caData?: string;
        /** Timeout of one download in milliseconds (redirects included). Default 120000. */
        downloadTimeoutMs?: number;
      };
    };
    /**
     * Extra settings per Bitbucket Server host. Credentials stay in `integrations.bitbucketServer`;
     * entries are matched by `host`.
     */
    bitbucketServer?: Array<{
      /** Same value as `integrations.bitbucketServer[].host`. */
      host: string;
      /** PEM bundle of extra CA certificates for a server with a private or self-signed CA. */
      caData?: string;
      /** Path to such a PEM bundle. */
      caFile?: string;
      /** `host:port` of the server's SSH endpoint. Default: the host name and port 7999. */
      sshHost?: string;
      /** Timeout of one REST request in milliseconds. Default 30000. */
      requestTimeoutMs?: number;
      /** Retries on 429, 5xx and connection resets. Default 4. */
      retries?: number;
    }>;
    /**
     * The HTTP(S) proxy of the engine's outgoing requests (Bitbucket REST, git over HTTPS, the
     * Flux bundle download, Kubernetes API servers), instead of the `HTTPS_PROXY`,
     * `HTTP_PROXY` and `NO_PROXY` environment variables, which apply when this is not set. Read
     * at backend start. Git over SSH and Flux's own traffic on the cluster do not use it.
     */
    proxy?: {
      /**
       * Proxy URL for http and https targets, e.g. `http://proxy.corp.example.com:3128`, with
       * `user:password@` when the proxy requires credentials (Basic).
       * @visibility secret
       */
      url: string;
      /**
       * Hosts reached directly, in `NO_PROXY` syntax: `host`, `.domain` (and its subdomains),
       * `host:port`, or `*`. Default: the `NO_PROXY` environment variable. Loopback is not
       * bypassed unless listed.
       */
      noProxy?: string[];
    };
    /**
     * Let actions name a kubeconfig context as `cluster` (local development only; the
     * backend's kubeconfig is read). Default false.
     */
    allowKubeconfigContexts?: boolean;
    /**
     * Kubernetes versions per Flux minor, replacing the built-in rows (from `flux check --pre` and
     * the release announcements) of the minors listed. `flux:install` refuses a cluster below
     * `minimum` before any write and warns outside `supported`; the cluster picker marks clusters
     * alike. For a distribution whose version misleads.
     */
    kubernetesVersions?: Array<{
      /** The Flux minor this row is for, e.g. `v2.9`. A Flux minor newer than every row uses the newest. */
      flux: string;
      /** The oldest Kubernetes version accepted, e.g. `v1.33.0`. */
      minimum: string;
      /** Kubernetes minors the release is tested with, e.g. `[v1.34, v1.35, v1.36]`; others get a warning. Default none (no warning). */
      supported?: string[];
    }>;
    /** Status backend settings. */
    status?: {
      /**
       * Seconds a cluster's status is cached (`?refresh=true` reads it again). Default 15.
       * Statuses that are about to change (`not-installed`, `installing`) are cached for
       * `transitionalCacheTtlSeconds` instead. Past its TTL a status is answered once more, for
       * up to another TTL, while one read refreshes it behind the answer (never the two
       * transitional states).
       */
      cacheTtlSeconds?: number;
      /**
       * Seconds a `not-installed` or `installing` status is cached. Default 2, at most
       * `cacheTtlSeconds`. Short because a bootstrap moves a cluster through these states within
       * seconds and the card polls every 5 s while one is shown; still a cache, so that many
       * open cards read each cluster at most once per this many seconds.
       */
      transitionalCacheTtlSeconds?: number;
      /**
       * Seconds one cluster may take before it is reported unreachable (its requests are then
       * aborted). The Bitbucket branch-head lookup has the same bound, separately. Default 5.
       */
      clusterTimeoutSeconds?: number;
      /**
       * Clusters read in parallel. Default 100: reading a cluster is mostly waiting on the
       * network, and each cluster's own requests go out together.
       */
      concurrency?: number;
      /**
       * Namespace Flux runs in on every cluster. Default: detected per cluster (the FluxReport's
       * namespace, the Flux CRD's labels, a Namespace labelled `app.kubernetes.io/part-of=flux`,
       * else `flux-system`).
       */
      namespace?: string;
    };
  };
}
