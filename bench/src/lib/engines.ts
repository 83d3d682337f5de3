import { ConfigReader } from '@backstage/config';
import type { JsonObject } from '@backstage/types';
import { CacheManager } from '@backstage/backend-defaults/cache';
import {
  createFluxStatusReader,
  createKubeClient,
  fluxBootstrapSettings,
  type ClusterConnection,
  type FluxStatusReader,
  type KubeClient,
  type KubeObject,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
// The steps the benchmarks measure on their own are the engine's internals: the staged apply, the
// bundle cache and generator, and the commit step of pushFluxManifests on a plain git server (no
// Bitbucket REST API to look the repository up), its HTTPS transport and the kustomization scan.
/* eslint-disable @backstage/no-forbidden-package-imports */
import type { ResolvedFluxManifestOptions } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/options';
import {
  applyStaged,
  type AppliedObject,
  type ApplyStagedOptions,
} from '@flux-bootstrap/plugin-flux-bootstrap-node/src/install/apply';
import {
  loadFluxBundle,
  type ManifestsSourceConfig,
} from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/bundle';
import { generateComponentObjects } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/components';
import { gitHttpAuthHeaders } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/bitbucket/client';
import {
  commitFluxManifests,
  renderFluxManifests,
  type FluxManifestFiles,
} from '@flux-bootstrap/plugin-flux-bootstrap-node/src/git/pushFluxManifests';
import { HttpsGitTransport } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/git/transport';
import { isKubernetesManifest } from '@flux-bootstrap/plugin-flux-bootstrap-node/src/manifests/kustomization';
/* eslint-enable @backstage/no-forbidden-package-imports */
import type { BaselineEngine } from './baseline';

/**
 * What the install, push and status benchmarks call, once per engine: today's engine (imported
 * as usual, type-checked) and the `--baseline` engine (loaded from an older commit by
 * lib/baseline.ts). Both sides are driven by the same benchmark code, so they do the same work;
 * where the older engine names or shapes a step differently, its adapter below says how it is
 * called (`calls`, printed in the docs).
 */

/** A release bundle's files by name (the engine's FluxBundleFiles). */
type Files = Record<string, string>;
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** Where both engines find the engine's functions: the index first, then the internal file. */
const AT = {
  createKubeClient: ['index', 'kube/client'],
  applyStaged: ['index', 'install/apply'],
  loadFluxBundle: ['index', 'manifests/bundle'],
  generateComponentObjects: ['index', 'manifests/components'],
  renderFluxManifests: ['index', 'git/pushFluxManifests'],
  commitFluxManifests: ['index', 'git/pushFluxManifests'],
  GitPushSession: ['index', 'git/session'],
  pushComponentsCommit: ['index', 'git/fluxCommits'],
  pushSyncCommit: ['index', 'git/fluxCommits'],
  HttpsGitTransport: ['index', 'git/transport'],
  gitHttpAuthHeaders: ['index', 'bitbucket/client'],
  isKubernetesManifest: ['index', 'manifests/kustomization'],
  createFluxStatusReader: ['index', 'status/FluxStatusReader'],
  fluxBootstrapSettings: ['index', 'config/settings'],
};

// ---------------------------------------------------------------------------------------- install

export interface InstallEngine {
  /** flux:install's source of the objects: the cached bundle → the component objects. */
  planObjects(
    version: string,
    source: ManifestsSourceConfig,
    components: ResolvedFluxManifestOptions['components'],
  ): Promise<KubeObject[]>;
  createClient(conn: ClusterConnection): Promise<KubeClient>;
  applyStaged(
    client: KubeClient,
    objects: readonly KubeObject[],
    opts: ApplyStagedOptions,
  ): Promise<AppliedObject[]>;
  /** What it calls, for the docs. */
  calls: string;
}

const INSTALL_CALLS =
  '`loadFluxBundle` → `generateComponentObjects`, `createKubeClient`, `applyStaged`';

export const todayInstall: InstallEngine = {
  async planObjects(version, source, components) {
    return [
      ...generateComponentObjects(
        (await loadFluxBundle(version, source)).files,
        components,
      ),
    ];
  },
  createClient: conn => createKubeClient(conn),
  applyStaged: (client, objects, opts) => applyStaged(client, objects, opts),
  calls: INSTALL_CALLS,
};

/** The same functions under the same names since before issue 14 (only their files moved). */
export function baselineInstall(b: BaselineEngine): InstallEngine {
  const load = b.pick<typeof loadFluxBundle>(
    'loadFluxBundle',
    AT.loadFluxBundle,
  );
  const generate = b.pick<typeof generateComponentObjects>(
    'generateComponentObjects',
    AT.generateComponentObjects,
  );
  const create = b.pick<typeof createKubeClient>(
    'createKubeClient',
    AT.createKubeClient,
  );
  const apply = b.pick<typeof applyStaged>('applyStaged', AT.applyStaged);
  return {
    async planObjects(version, source, components) {
      return [...generate((await load(version, source)).files, components)];
    },
    createClient: conn => create(conn),
    applyStaged: (client, objects, opts) => apply(client, objects, opts),
    calls: INSTALL_CALLS,
  };
}

// ------------------------------------------------------------------------------------------- push

export interface PushCommitInput {
  url: string;
  token: string;
  files: FluxManifestFiles;
  options: ResolvedFluxManifestOptions;
  version: string;
  branch: string;
  author: { name: string; email: string };
  workDir: string;
}

export interface PushCommitResult {
  componentsCommit?: string;
  syncCommit?: string;
  kustomizationGenerated: boolean;
}

export interface PushEngine {
  loadBundle(
    version: string,
    source: ManifestsSourceConfig,
  ): Promise<{ files: Files }>;
  render(
    bundle: Files,
    options: ResolvedFluxManifestOptions,
  ): FluxManifestFiles;
  /** The commit + push step of pushFluxManifests on rendered files (one session, two commits). */
  commit(input: PushCommitInput): Promise<PushCommitResult>;
  isKubernetesManifest(text: string): boolean;
  calls: string;
}

const COMMIT_CALLS_TODAY =
  '`commitFluxManifests` (`GitPushSession` over `HttpsGitTransport`: both commits, the read-back of kustomization.yaml, close)';

export const todayPush: PushEngine = {
  loadBundle: (version, source) => loadFluxBundle(version, source),
  render: (bundle, options) => renderFluxManifests(bundle, options),
  commit: input =>
    commitFluxManifests(
      {
        transport: new HttpsGitTransport({
          url: input.url,
          headers: gitHttpAuthHeaders({ token: input.token }),
        }),
        files: input.files,
        version: input.version,
        branch: input.branch,
        author: input.author,
        workDir: input.workDir,
      },
      { logger: quiet },
    ),
  isKubernetesManifest: text => isKubernetesManifest(text),
  calls: COMMIT_CALLS_TODAY,
};

/** The parts of the pre-#14 git session the adapter calls. */
interface OldSession {
  readFile(tree: string, path: string): Promise<string | undefined>;
  close(): Promise<void>;
}
interface OldCommitResult {
  changed: boolean;
  commit?: string;
  tree: string;
}

/**
 * An engine with `commitFluxManifests` is called like today's. The pre-#14 engine has no entry
 * point taking rendered files (its `pushFluxManifests` renders them itself), so the adapter runs
 * that function's body minus the rendering: `GitPushSession.open`, `pushComponentsCommit`,
 * `pushSyncCommit`, the read-back of kustomization.yaml, `close` — the same work as today's
 * `commitFluxManifests`.
 */
export function baselinePush(b: BaselineEngine): PushEngine {
  const load = b.pick<typeof loadFluxBundle>(
    'loadFluxBundle',
    AT.loadFluxBundle,
  );
  const render = b.pick<typeof renderFluxManifests>(
    'renderFluxManifests',
    AT.renderFluxManifests,
  );
  const Transport = b.pick<typeof HttpsGitTransport>(
    'HttpsGitTransport',
    AT.HttpsGitTransport,
  );
  const authHeaders = b.pick<typeof gitHttpAuthHeaders>(
    'gitHttpAuthHeaders',
    AT.gitHttpAuthHeaders,
  );
  const scan = b.pick<typeof isKubernetesManifest>(
    'isKubernetesManifest',
    AT.isKubernetesManifest,
  );
  const transportFor = (input: PushCommitInput) =>
    new Transport({
      url: input.url,
      headers: authHeaders({ token: input.token }),
    });
  const common = {
    loadBundle: (version: string, source: ManifestsSourceConfig) =>
      load(version, source),
    render: (bundle: Files, options: ResolvedFluxManifestOptions) =>
      render(bundle, options),
    isKubernetesManifest: (text: string) => scan(text),
  };
  if (b.has('commitFluxManifests', AT.commitFluxManifests)) {
    const commit = b.pick<typeof commitFluxManifests>(
      'commitFluxManifests',
      AT.commitFluxManifests,
    );
    return {
      ...common,
      commit: input =>
        commit(
          {
            transport: transportFor(input),
            files: input.files,
            version: input.version,
            branch: input.branch,
            author: input.author,
            workDir: input.workDir,
          },
          { logger: quiet },
        ),
      calls: COMMIT_CALLS_TODAY,
    };
  }
  const Session = b.pick<{
    open(o: {
      transport: unknown;
      branch: string;
      workDir?: string;
      logger?: unknown;
    }): Promise<OldSession>;
  }>('GitPushSession', AT.GitPushSession);
  const components = b.pick<(o: object) => Promise<OldCommitResult>>(
    'pushComponentsCommit',
    AT.pushComponentsCommit,
  );
  const sync = b.pick<
    (
      o: object,
    ) => Promise<OldCommitResult & { kustomizationGenerated: boolean }>
  >('pushSyncCommit', AT.pushSyncCommit);
  return {
    ...common,
    async commit(input) {
      const session = await Session.open({
        transport: transportFor(input),
        branch: input.branch,
        workDir: input.workDir,
        logger: quiet,
      });
      try {
        const shared = {
          session,
          path: input.options.path,
          namespace: input.options.namespace,
          author: input.author,
          branch: input.branch,
          logger: quiet,
        };
        const c1 = await components({
          ...shared,
          version: input.version,
          content: input.files.components.content,
        });
        const c2 = await sync({
          ...shared,
          content: input.files.sync.content,
        });
        await session.readFile(c2.tree, input.files.kustomization.path);
        return {
          componentsCommit: c1.changed ? c1.commit : undefined,
          syncCommit: c2.changed ? c2.commit : undefined,
          kustomizationGenerated: c2.kustomizationGenerated,
        };
      } finally {
        await session.close();
      }
    },
    calls:
      '`GitPushSession.open` over `HttpsGitTransport`, `pushComponentsCommit`, `pushSyncCommit`, `session.readFile` (kustomization.yaml), `session.close` — its `pushFluxManifests` without the rendering, which it does inside (no entry point takes rendered files)',
  };
}

// ----------------------------------------------------------------------------------------- status

/** What the status benchmark uses of a reader. */
export type StatusReader = Pick<
  FluxStatusReader,
  'listClusters' | 'read' | 'readMany' | 'close'
>;

export interface StatusEngine {
  /** The reader as the status backend builds it: config, the engine's clients, Backstage's cache. */
  reader(data: JsonObject): Promise<StatusReader>;
  calls: string;
}

function backstageDeps(data: JsonObject) {
  const config = new ConfigReader(data);
  const cache = CacheManager.fromConfig(config).forPlugin('flux-bootstrap');
  return { config, cache };
}

export const todayStatus: StatusEngine = {
  reader(data) {
    const { config, cache } = backstageDeps(data);
    return createFluxStatusReader(fluxBootstrapSettings(config), { cache });
  },
  calls:
    '`createFluxStatusReader(fluxBootstrapSettings(config), { cache })`, then `readMany`/`read`',
};

/**
 * An engine with `fluxBootstrapSettings` is called like today's; the pre-#14 engine's
 * `createFluxStatusReader` takes the config itself (its `ConfigLike`, which Backstage's
 * `ConfigReader` satisfies) and returns the reader synchronously.
 */
export function baselineStatus(b: BaselineEngine): StatusEngine {
  const create = b.pick<(source: unknown, o: object) => unknown>(
    'createFluxStatusReader',
    AT.createFluxStatusReader,
  );
  if (b.has('fluxBootstrapSettings', AT.fluxBootstrapSettings)) {
    const settings = b.pick<(c: ConfigReader) => unknown>(
      'fluxBootstrapSettings',
      AT.fluxBootstrapSettings,
    );
    return {
      async reader(data) {
        const { config, cache } = backstageDeps(data);
        return (await create(settings(config), { cache })) as StatusReader;
      },
      calls: todayStatus.calls,
    };
  }
  return {
    async reader(data) {
      const { config, cache } = backstageDeps(data);
      return (await create(config, { cache })) as StatusReader;
    },
    calls:
      '`createFluxStatusReader(config, { cache })` (it read the config itself), then `readMany`/`read`',
  };
}
