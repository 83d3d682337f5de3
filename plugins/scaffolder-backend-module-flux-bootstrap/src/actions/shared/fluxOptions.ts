import type { z as zod } from 'zod/v3';
import type { FluxManifestInput } from '@flux-bootstrap/plugin-flux-bootstrap-node';

const LOG_LEVELS = ['debug', 'info', 'error'] as const;

/**
 * The Flux component options of `flux bootstrap` (`--version`, `--components`, `--registry`, …).
 * One schema for `flux:push-manifests` and `flux:install`: a template passes both the same
 * values, and flux:install checks it installs what was pushed.
 */
export const fluxComponentOptionsInput = {
  fluxVersion: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe(
        'Flux release, e.g. v2.9.4 (default: fluxBootstrap.manifests.defaultVersion, else v2.9.4). The same for flux:push-manifests and flux:install.',
      ),
  components: (z: typeof zod) =>
    z
      .array(z.string())
      .optional()
      .describe(
        'Controllers (default source-controller, kustomize-controller, helm-controller, notification-controller). source-controller and kustomize-controller are required.',
      ),
  componentsExtra: (z: typeof zod) =>
    z
      .array(z.string())
      .optional()
      .describe(
        'Extra controllers: image-reflector-controller, image-automation-controller, source-watcher.',
      ),
  registry: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe(
        'Registry the controller images come from (default ghcr.io/fluxcd; "" keeps fluxcd/<name>).',
      ),
  imagePullSecret: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe(
        'Name of an image pull secret added to every Flux pod (it must exist in the Flux namespace).',
      ),
  watchAllNamespaces: (z: typeof zod) =>
    z
      .boolean()
      .optional()
      .describe('Controllers watch all namespaces (default true).'),
  networkPolicy: (z: typeof zod) =>
    z
      .boolean()
      .optional()
      .describe("Include Flux's NetworkPolicies (default true)."),
  logLevel: (z: typeof zod) =>
    z
      .enum(LOG_LEVELS)
      .optional()
      .describe('Controller log level (default info).'),
  clusterDomain: (z: typeof zod) =>
    z
      .string()
      .optional()
      .describe('Cluster DNS domain (default cluster.local).'),
  tolerationKeys: (z: typeof zod) =>
    z
      .array(z.string())
      .optional()
      .describe('Taint keys every Flux pod tolerates (operator Exists).'),
};

/** The component options an action received, as the engine takes them. */
export type FluxComponentOptions = Pick<
  FluxManifestInput,
  keyof typeof fluxComponentOptionsInput
>;

/** Picks the component options out of an action's input (nothing else goes through). */
export function fluxComponentOptions(
  input: FluxComponentOptions,
): FluxComponentOptions {
  return {
    fluxVersion: input.fluxVersion,
    components: input.components,
    componentsExtra: input.componentsExtra,
    registry: input.registry,
    imagePullSecret: input.imagePullSecret,
    watchAllNamespaces: input.watchAllNamespaces,
    networkPolicy: input.networkPolicy,
    logLevel: input.logLevel,
    clusterDomain: input.clusterDomain,
    tolerationKeys: input.tolerationKeys,
  };
}
