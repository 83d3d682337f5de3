import { GitPushSession, type GitAuthor } from '../git/session';
import type { TreeEditor } from '../git/tree';
import type { GitTransport } from '../git/transport';
import {
  generateKustomizationFile,
  KUSTOMIZATION_FILE_NAMES,
  scanKustomizationResources,
} from '../manifests/kustomization';
import type { ResolvedFluxManifestOptions } from '../manifests/options';
import { parseYamlDocuments, stringifyObject } from '../manifests/yaml';
import { runCheckpointDirectly, type CheckpointFn } from '../util/checkpoint';
import { FluxBootstrapError } from '../util/errors';
import type { EngineLogger } from '../util/logger';
import { Redactor } from '../util/redact';
import type { PullRequestCommits } from '../git/pullRequestMode';
import {
  BOOTSTRAP_FILES,
  FLUX_INSTANCE_FILE,
  renderFluxInstanceFiles,
  type FluxOperatorOptions,
} from './instance';

/** The folder holds what the other distribution wrote: moving back, or forward without `migrate`. @public */
export class DistributionConflictError extends FluxBootstrapError {
  constructor(message: string) {
    super('ConflictError', message);
  }
}

/**
 * Refuses flux bootstrap's commits in a folder holding the Flux Operator's instance (the operator
 * would keep reconciling it over bootstrap's manifests). Call it from an edit, before writing.
 * @public
 */
export async function refuseBootstrapOverInstance(
  tree: TreeEditor,
  dir: string,
): Promise<void> {
  if (await tree.exists(`${dir}/${FLUX_INSTANCE_FILE}`))
    throw new DistributionConflictError(
      `${dir}/${FLUX_INSTANCE_FILE} exists: Flux on this cluster is managed by the Flux Operator, and moving back to flux bootstrap is not supported; keep distribution "operator" (uninstall Flux first to bootstrap it again)`,
    );
}

/** Inputs of {@link pushFluxInstance}. @public */
export interface PushFluxInstanceOptions {
  transport: GitTransport;
  options: ResolvedFluxManifestOptions;
  operator: FluxOperatorOptions;
  author: GitAuthor;
  commitMessageAppendix?: string;
  signingKey?: string;
  /**
   * Replace flux bootstrap's files in the same commit; only once the FluxInstance adopted the
   * controllers (else the bootstrap Kustomization prunes them). Without it: `migrationPending`.
   */
  migrate?: boolean;
  workDir?: string;
  /** The branch the commit goes to (a pull request's); the instance syncs `options.branch`. */
  branch?: string;
}

/** What {@link pushFluxInstance} did (public data only). @public */
export interface PushFluxInstanceResult {
  commitHash: string;
  changed: boolean;
  manifestsPath: string;
  /** `<branch>@sha1:<commitHash>`. */
  revision: string;
  /** The folder holds flux bootstrap's files and `migrate` was not set: nothing was written. */
  migrationPending: boolean;
  files: Record<string, string>;
}

/**
 * Operator mode of flux:push-manifests: ONE commit writing `<path>/<ns>/flux-instance.yaml` and a
 * `kustomization.yaml` listing it (an existing one only gains the entry), and with `migrate`
 * removing flux bootstrap's files. Identical content makes no commit. Redacted.
 * @public
 */
export async function pushFluxInstance(
  input: PushFluxInstanceOptions,
  deps: {
    logger: EngineLogger;
    redactor?: Redactor;
    signal?: AbortSignal;
    checkpoint?: CheckpointFn;
  },
): Promise<PushFluxInstanceResult> {
  const redactor = deps.redactor ?? new Redactor();
  const logger = redactor.wrapLogger(deps.logger);
  const { options, transport } = input;
  const { dir, files } = renderFluxInstanceFiles(options, input.operator);
  const instancePath = `${dir}/${FLUX_INSTANCE_FILE}`;
  const branch = input.branch ?? options.branch;
  const session = await GitPushSession.open({
    transport,
    branch,
    logger,
    workDir: input.workDir,
  }).catch(async e => {
    await transport.close();
    throw redactor.redactError(e);
  });
  try {
    const result = await (deps.checkpoint ?? runCheckpointDirectly)(
      'push-instance',
      async () => {
        let pending = false;
        let replaced = false;
        const subject = input.migrate
          ? 'Replace flux bootstrap manifests by the Flux Operator instance'
          : 'Add Flux Operator instance';
        const r = await session.commitAndPush({
          message: [subject, input.commitMessageAppendix]
            .filter(Boolean)
            .join('\n\n'),
          author: input.author,
          signingKey: input.signingKey,
          signal: deps.signal,
          edit: async tree => {
            const bootstrap: string[] = [];
            for (const f of BOOTSTRAP_FILES)
              if (await tree.exists(`${dir}/${f}`)) bootstrap.push(f);
            pending = bootstrap.length > 0 && !input.migrate;
            replaced = bootstrap.length > 0 && !pending;
            if (pending) return;
            tree.write(instancePath, files[instancePath]);
            for (const f of bootstrap) tree.remove(`${dir}/${f}`);
            await writeKustomization(tree, dir, instancePath, replaced);
          },
        });
        const current: Record<string, string> = {};
        for (const path of [instancePath, `${dir}/kustomization.yaml`]) {
          const text = await session.readFile(r.tree, path);
          if (text !== undefined) current[path] = text;
        }
        return { changed: r.changed, head: r.head, pending, replaced, current };
      },
    );
    logger.info(
      result.pending
        ? `${dir} holds flux bootstrap's manifests: nothing is written until the FluxInstance adopted the controllers (flux:install with distribution operator), then a run with migrate replaces them by ${FLUX_INSTANCE_FILE}`
        : `${
            result.changed ? 'Committed and pushed' : 'Up to date:'
          } ${instancePath}${
            result.replaced
              ? ' (replacing gotk-components.yaml and gotk-sync.yaml)'
              : ''
          } on "${branch}" at ${result.head}`,
    );
    return {
      commitHash: result.head,
      changed: result.changed,
      manifestsPath: dir,
      revision: `${branch}@sha1:${result.head}`,
      migrationPending: result.pending,
      files: result.current,
    };
  } catch (error) {
    throw redactor.redactError(error);
  } finally {
    await session.close();
  }
}

/** Dry run of {@link pushFluxInstance}: logs the files it would write. @public */
export function dryRunFluxInstance(
  options: ResolvedFluxManifestOptions,
  operator: FluxOperatorOptions,
  logger: EngineLogger,
): PushFluxInstanceResult {
  const { dir, files } = renderFluxInstanceFiles(options, operator);
  const instancePath = `${dir}/${FLUX_INSTANCE_FILE}`;
  logger.info(
    `Dry run: would commit "Add Flux Operator instance" to "${options.branch}" with ${instancePath} and ${dir}/kustomization.yaml (no gotk-components.yaml); nothing was pushed. ${instancePath}:\n${files[instancePath]}`,
  );
  return {
    commitHash: '',
    changed: true,
    manifestsPath: dir,
    revision: `${options.branch}@sha1:`,
    migrationPending: false,
    files,
  };
}

/**
 * Makes the folder's kustomization list the instance instead of flux bootstrap's files (generated
 * as flux does when there is none). Its patches were written for bootstrap's objects: a migration
 * with them is refused (they belong in the instance's `spec.kustomize.patches`).
 */
async function writeKustomization(
  tree: TreeEditor,
  dir: string,
  instancePath: string,
  migrating: boolean,
) {
  let path: string | undefined;
  for (const name of KUSTOMIZATION_FILE_NAMES)
    if (!path && (await tree.exists(`${dir}/${name}`))) path = `${dir}/${name}`;
  if (!path) {
    const resources = await scanKustomizationResources(tree, dir, {
      isKnownManifest: p => p === instancePath,
    });
    tree.write(
      `${dir}/kustomization.yaml`,
      generateKustomizationFile(resources),
    );
    return;
  }
  const [k] = parseYamlDocuments(await tree.read(path), path) as Record<
    string,
    unknown
  >[];
  const patches = [
    'patches',
    'patchesStrategicMerge',
    'patchesJson6902',
  ].filter(f => f in (k ?? {}));
  if (migrating && patches.length)
    throw new DistributionConflictError(
      `${path} has ${patches.join(
        ', ',
      )} for flux bootstrap's manifests; move them to the FluxInstance (spec.kustomize.patches) and remove them from ${path}, then run again — nothing was changed`,
    );
  const listed = Array.isArray(k?.resources) ? (k.resources as string[]) : [];
  const resources = [
    ...listed.filter(r => !BOOTSTRAP_FILES.includes(r)),
    ...(listed.includes(FLUX_INSTANCE_FILE) ? [] : [FLUX_INSTANCE_FILE]),
  ];
  if (resources.join('\n') !== listed.join('\n'))
    tree.write(path, stringifyObject({ ...k, resources }));
}

/** {@link pushFluxInstance}'s commit as the commit step of a pull request (or a direct push). */
export function fluxInstanceCommits(
  input: Omit<PushFluxInstanceOptions, 'transport' | 'branch'> & {
    cluster: string;
  },
): PullRequestCommits<PushFluxInstanceResult> {
  const { operator, options, cluster } = input;
  return {
    push: (to, deps) => pushFluxInstance({ ...input, ...to }, deps),
    describe: pushed => {
      const file = `${pushed.manifestsPath}/${FLUX_INSTANCE_FILE}`;
      const ns = options.namespace;
      return {
        title: `flux: Flux Operator instance with Flux ${operator.version} on cluster ${cluster}`,
        description: `The Flux Operator's FluxInstance ${ns}/flux for cluster ${cluster} with Flux ${
          operator.version
        } (distribution.version), syncing \`${options.path || '.'}\` of ${
          options.branch
        }: \`${file}\`${
          input.migrate
            ? ", replacing flux bootstrap's gotk-components.yaml and gotk-sync.yaml"
            : ''
        }. The Flux Operator installs or upgrades Flux to it once this is merged. (Opened by Backstage, flux:push-manifests.)`,
      };
    },
  };
}
