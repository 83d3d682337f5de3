import type { z as zod } from 'zod/v3';
import {
  FLUX_DEFAULTS,
  FLUX_DEFAULT_COMPONENTS,
  FLUX_EXTRA_COMPONENTS,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import {
  dnsLabel,
  dnsName,
  dnsSubdomain,
  dnsSubdomainProblem,
  fluxVersion,
  formatGoDuration,
  goDuration,
  registry,
  ruled,
  taintKey,
} from './refinements';

type Z = typeof zod;

const COMPONENTS: readonly string[] = [
  ...FLUX_DEFAULT_COMPONENTS,
  ...FLUX_EXTRA_COMPONENTS,
];

/** A controller a Flux bundle holds. */
const component = (z: Z) =>
  ruled(z, name =>
    COMPONENTS.includes(name)
      ? undefined
      : `component "${name.slice(
          0,
          64,
        )}" is not available; choose from ${COMPONENTS.join(', ')}`,
  );

/**
 * The Flux component options of `flux bootstrap` (`--version`, `--components`, `--registry`, …),
 * with flux's defaults. One schema for `flux:push-manifests` and `flux:install`: a template
 * passes both the same values, and flux:install checks it installs what was pushed.
 */
export const fluxComponentOptionsInput = (z: Z) => ({
  fluxVersion: fluxVersion(z)
    .optional()
    .describe(
      'Flux release, e.g. v2.9.4 (default: fluxBootstrap.manifests.defaultVersion, else v2.9.4). The same for flux:push-manifests and flux:install.',
    ),
  components: z
    .array(component(z))
    .default([...FLUX_DEFAULTS.components])
    .describe(
      'Controllers (default source-controller, kustomize-controller, helm-controller, notification-controller). source-controller and kustomize-controller are required.',
    ),
  componentsExtra: z
    .array(component(z))
    .default([])
    .describe(
      'Extra controllers: image-reflector-controller, image-automation-controller, source-watcher.',
    ),
  registry: registry(z)
    .default(FLUX_DEFAULTS.registry)
    .describe(
      'Registry the controller images come from (default ghcr.io/fluxcd; "" keeps fluxcd/<name>).',
    ),
  imagePullSecret: ruled(z, v =>
    v === '' ? undefined : dnsSubdomainProblem(v),
  )
    .optional()
    .describe(
      'Name of an image pull secret added to every Flux pod (it must exist in the Flux namespace).',
    ),
  watchAllNamespaces: z
    .boolean()
    .default(FLUX_DEFAULTS.watchAllNamespaces)
    .describe('Controllers watch all namespaces (default true).'),
  networkPolicy: z
    .boolean()
    .default(FLUX_DEFAULTS.networkPolicy)
    .describe("Include Flux's NetworkPolicies (default true)."),
  logLevel: z
    .enum(['debug', 'info', 'error'])
    .default(FLUX_DEFAULTS.logLevel)
    .describe('Controller log level (default info).'),
  clusterDomain: dnsName(z)
    .default(FLUX_DEFAULTS.clusterDomain)
    .describe('Cluster DNS domain (default cluster.local).'),
  tolerationKeys: z
    .array(taintKey(z))
    .default([])
    .describe('Taint keys every Flux pod tolerates (operator Exists).'),
});

/** The sync options both actions have; each action describes them in its own words. */
export const fluxSyncOptionsInput = (z: Z) => ({
  namespace: dnsLabel(z).default(FLUX_DEFAULTS.namespace),
  secretName: dnsSubdomain(z).default(FLUX_DEFAULTS.secretName),
  /** The GitRepository interval, a Go duration in Go's form (`1m0s`). */
  interval: goDuration(z, '1m, 30s or 1h30m')
    .transform(formatGoDuration)
    .default('1m'),
  recurseSubmodules: z.boolean().default(FLUX_DEFAULTS.recurseSubmodules),
});

/**
 * `components` + `componentsExtra`: no duplicates, source-controller and kustomize-controller
 * present (flux appends the extras).
 */
export function refineComponents(
  value: { components: string[]; componentsExtra: string[] },
  ctx: zod.RefinementCtx,
) {
  const all = [...value.components, ...value.componentsExtra];
  const twice = all.find((c, i) => all.indexOf(c) !== i);
  if (twice) {
    ctx.addIssue({
      code: 'custom',
      path: [
        value.componentsExtra.includes(twice)
          ? 'componentsExtra'
          : 'components',
      ],
      message: `component "${twice}" is listed twice`,
    });
  }
  for (const required of ['source-controller', 'kustomize-controller']) {
    if (!all.includes(required)) {
      ctx.addIssue({
        code: 'custom',
        path: ['components'],
        message: `component ${required} is required`,
      });
    }
  }
}
