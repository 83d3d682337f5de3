import crypto from 'node:crypto';
import YAML from 'yaml';
import { FLUX_COMPONENTS, FluxBundle, toMultiDocYaml } from './bundle';
import { applyPatches, K8sObject, KustomizePatch } from './patches';

/** Parses a multi-document YAML file of the bundle into objects (skipping empty documents). */
export function parseBundleFile(text: string): Record<string, any>[] {
  return YAML.parseAllDocuments(text)
    .map(d => d.toJS())
    .filter(o => o && typeof o === 'object');
}

/**
 * Test-side rendering of the fixture bundle into the objects of one Flux installation — what
 * `flux install --export` (and the Flux Operator's builder) make of a release bundle, reduced to
 * what the simulator and tests need: namespace placement, the `-<namespace>` RBAC suffix, labels,
 * image registry (and digests), components and network policies. It is NOT the product's
 * generator (no args patches, no node selector); use it to write a `gotk-components.yaml` into a
 * test repository, for `applyFluxBundle`, and in the operator simulator.
 */

export const DEFAULT_FLUX_COMPONENTS = [
  'source-controller',
  'kustomize-controller',
  'helm-controller',
  'notification-controller',
];

export interface RenderFluxOptions {
  namespace: string;
  /** default: the four default components of flux install / FluxInstance */
  components?: string[];
  /**
   * Image registry: images become `<registry>/<component>:<tag>` (default `ghcr.io/fluxcd`, as
   * flux install). `''` keeps the bundle's `fluxcd/<component>:<tag>`.
   */
  registry?: string;
  /** Pin images by digest (`…:<tag>@sha256:<digest>`), as the Flux Operator does for known registries. */
  digests?: boolean;
  /** Include policies.yaml (default true, as flux install's `--network-policy`). */
  networkPolicy?: boolean;
  /** Include the Namespace object (default true). */
  namespaceObject?: boolean;
  /** Also label the Deployments' pod templates (flux2's labels.yaml does; the operator does not). Default true. */
  podTemplateLabels?: boolean;
  /** Labels added to every object (after instance/version/part-of). */
  labels?: Record<string, string>;
  /** Annotations added to every object. */
  annotations?: Record<string, string>;
  /** kustomize patches applied last (see patches.ts). */
  patches?: KustomizePatch[];
}

const CLUSTER_SCOPED = new Set([
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'Namespace',
]);

/** A stable fake image digest for a fixture image (the fixture's "flux-images" metadata). */
export function fixtureImageDigest(image: string): string {
  return `sha256:${crypto.createHash('sha256').update(image).digest('hex')}`;
}

/** The objects of a Flux installation of `bundle` (see the module comment). */
export function renderFluxInstall(
  bundle: Pick<FluxBundle, 'files' | 'version'>,
  opts: RenderFluxOptions,
): K8sObject[] {
  const ns = opts.namespace;
  const components = opts.components ?? DEFAULT_FLUX_COMPONENTS;
  for (const c of components) {
    if (!(FLUX_COMPONENTS as readonly string[]).includes(c))
      throw new Error(`unknown Flux component ${c}`);
  }
  const registry = opts.registry ?? 'ghcr.io/fluxcd';
  const labels = {
    'app.kubernetes.io/instance': ns,
    'app.kubernetes.io/part-of': 'flux',
    'app.kubernetes.io/version': bundle.version,
    ...(opts.labels ?? {}),
  };
  const docs: K8sObject[] = [];
  if (opts.namespaceObject ?? true) {
    docs.push({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: ns,
        labels: {
          'pod-security.kubernetes.io/warn': 'restricted',
          'pod-security.kubernetes.io/warn-version': 'latest',
        },
      },
    });
  }
  for (const c of components) {
    const text = bundle.files[`${c}.yaml`];
    if (text === undefined) throw new Error(`bundle has no ${c}.yaml`);
    docs.push(...(parseBundleFile(text) as K8sObject[]));
  }
  for (const o of parseBundleFile(bundle.files['rbac.yaml'] ?? '')) {
    const renamed = JSON.parse(
      JSON.stringify(o).replaceAll('"flux-system"', JSON.stringify(ns)),
    );
    if (CLUSTER_SCOPED.has(o.kind))
      renamed.metadata.name = `${o.metadata.name}-${ns}`;
    if (
      renamed.roleRef?.kind === 'ClusterRole' &&
      renamed.roleRef.name !== 'cluster-admin'
    ) {
      renamed.roleRef.name = `${renamed.roleRef.name}-${ns}`;
    }
    docs.push(renamed);
  }
  if (opts.networkPolicy ?? true)
    docs.push(
      ...(parseBundleFile(bundle.files['policies.yaml'] ?? '') as K8sObject[]),
    );
  for (const o of docs) {
    o.metadata.labels = { ...(o.metadata.labels ?? {}), ...labels };
    if (opts.annotations)
      o.metadata.annotations = {
        ...(o.metadata.annotations ?? {}),
        ...opts.annotations,
      };
    if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = ns;
    if (o.kind === 'Deployment') {
      if (opts.podTemplateLabels ?? true)
        o.spec.template.metadata.labels = {
          ...o.spec.template.metadata.labels,
          ...labels,
        };
      for (const ctr of o.spec.template.spec.containers ?? []) {
        const m = /^fluxcd\/([^:@]+):([^@]+)$/.exec(ctr.image);
        if (!m || !registry) continue;
        const image = `${registry.replace(/\/+$/, '')}/${m[1]}:${m[2]}`;
        ctr.image = opts.digests
          ? `${image}@${fixtureImageDigest(image)}`
          : image;
      }
    }
  }
  return opts.patches?.length
    ? applyPatches(docs, opts.patches, 'patches')
    : docs;
}

/** `gotk-components.yaml` as flux bootstrap commits it (header + the rendered objects). */
export function gotkComponentsYaml(
  bundle: Pick<FluxBundle, 'files' | 'version'>,
  opts: RenderFluxOptions,
): string {
  const components = opts.components ?? DEFAULT_FLUX_COMPONENTS;
  return `---\n# This manifest was generated by flux. DO NOT EDIT.\n# Flux Version: ${
    bundle.version
  }\n# Components: ${components.join(',')}\n${toMultiDocYaml(
    renderFluxInstall(bundle, opts),
  )}`;
}

export interface GotkSyncOptions {
  namespace: string;
  /** GitRepository/Kustomization name (default: the namespace) */
  name?: string;
  url: string;
  branch?: string;
  /** `clusters/dev` (the Kustomization gets `./clusters/dev`) */
  path: string;
  secretName?: string;
  interval?: string;
}

/** `gotk-sync.yaml` as flux bootstrap commits it (flux-bootstrap-spec.md §5.2). */
export function gotkSyncYaml(o: GotkSyncOptions): string {
  const name = o.name ?? o.namespace;
  return `# This manifest was generated by flux. DO NOT EDIT.\n---\n${toMultiDocYaml(
    [
      {
        apiVersion: 'source.toolkit.fluxcd.io/v1',
        kind: 'GitRepository',
        metadata: { name, namespace: o.namespace },
        spec: {
          interval: o.interval ?? '1m0s',
          ref: { branch: o.branch ?? 'main' },
          secretRef: { name: o.secretName ?? name },
          url: o.url,
        },
      },
      {
        apiVersion: 'kustomize.toolkit.fluxcd.io/v1',
        kind: 'Kustomization',
        metadata: { name, namespace: o.namespace },
        spec: {
          interval: '10m0s',
          path: `./${o.path.replace(/^\.?\/+/, '')}`,
          prune: true,
          sourceRef: { kind: 'GitRepository', name },
        },
      },
    ],
  )}`;
}

/** The `flux-system/kustomization.yaml` flux bootstrap writes. */
export const GOTK_KUSTOMIZATION_YAML =
  'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- gotk-components.yaml\n- gotk-sync.yaml\n';

/**
 * The three files `flux bootstrap` commits under `<path>/<namespace>/`, keyed by repository path,
 * e.g. for a test repository: `repo.commit(fluxBootstrapFiles(bundle, {...}))`.
 */
export function fluxBootstrapFiles(
  bundle: Pick<FluxBundle, 'files' | 'version'>,
  o: GotkSyncOptions & Omit<RenderFluxOptions, 'namespace'>,
): Record<string, string> {
  const dir = `${o.path.replace(/^\.?\/+/, '').replace(/\/+$/, '')}/${
    o.namespace
  }`;
  return {
    [`${dir}/gotk-components.yaml`]: gotkComponentsYaml(bundle, o),
    [`${dir}/gotk-sync.yaml`]: gotkSyncYaml(o),
    [`${dir}/kustomization.yaml`]: GOTK_KUSTOMIZATION_YAML,
  };
}
