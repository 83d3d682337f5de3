import type { z as zod } from 'zod/v3';

/*
 * `distribution: operator` (issue 18), shared by flux:push-manifests and flux:install: Flux is
 * installed through the Flux Operator from a FluxInstance in Git instead of flux bootstrap's
 * manifests. A template passes both actions the same values.
 */

type Z = typeof zod;

/** A Flux version range the operator resolves (`2.9.x`, `2.x`), not one release. */
export const isFluxVersionRange = (v: string) => /^v?\d+\.(\d+\.)?x$/.test(v);

/** The operator's inputs of both actions, with their defaults. */
export const fluxOperatorInput = (z: Z) => ({
  distribution: z
    .enum(['bootstrap', 'operator'])
    .default('bootstrap')
    .describe(
      'How Flux is installed: bootstrap (default) as flux bootstrap does, or operator — the Flux Operator from a FluxInstance in <path>/<namespace>/flux-instance.yaml; fluxVersion may then be a range such as 2.9.x. A cluster bootstrapped the classic way is migrated; the reverse is refused.',
    ),
  clusterType: z
    .enum(['kubernetes', 'openshift', 'aws', 'azure', 'gcp'])
    .default('kubernetes')
    .describe(
      'With distribution operator: the FluxInstance cluster.type (default kubernetes).',
    ),
  clusterSize: z
    .enum(['small', 'medium', 'large'])
    .optional()
    .describe(
      'With distribution operator: the FluxInstance cluster.size (controller concurrency and limits; default unset).',
    ),
  multitenant: z
    .boolean()
    .default(false)
    .describe(
      'With distribution operator: the FluxInstance cluster.multitenant lockdown (default false).',
    ),
  operatorVersion: z
    .string()
    .regex(/^v\d+\.\d+\.\d+$/, 'must be a Flux Operator release, e.g. v0.58.1')
    .optional()
    .describe(
      'With distribution operator: the Flux Operator release whose install.yaml flux:install applies (default fluxBootstrap.operator.manifests.defaultVersion, else v0.58.1).',
    ),
});

type OperatorInput = {
  distribution: 'bootstrap' | 'operator';
  fluxVersion?: string;
  recurseSubmodules?: boolean;
  clusterType: 'kubernetes' | 'openshift' | 'aws' | 'azure' | 'gcp';
  clusterSize?: 'small' | 'medium' | 'large';
  multitenant: boolean;
  operatorVersion?: string;
};

/** Cross-field rules: a range and the cluster profile only with the operator. */
export function refineOperator(v: OperatorInput, ctx: zod.RefinementCtx) {
  const issue = (field: string, message: string) =>
    ctx.addIssue({ code: 'custom', path: [field], message });
  if (v.distribution === 'operator') {
    if (v.recurseSubmodules)
      issue(
        'recurseSubmodules',
        'is not supported with distribution operator (the FluxInstance sync has no such field)',
      );
    return;
  }
  if (v.fluxVersion && isFluxVersionRange(v.fluxVersion))
    issue(
      'fluxVersion',
      `a version range (${v.fluxVersion}) needs distribution operator; flux bootstrap installs one release, e.g. v2.9.4`,
    );
  for (const field of ['clusterSize', 'operatorVersion'] as const)
    if (v[field]) issue(field, 'is only used with distribution operator');
  if (v.multitenant || v.clusterType !== 'kubernetes')
    issue(
      v.multitenant ? 'multitenant' : 'clusterType',
      'is only used with distribution operator',
    );
}

/** The engine's `operator` request, and the manifests input without a version range. */
export function operatorRequest<T extends OperatorInput>(v: T) {
  if (v.distribution !== 'operator')
    return { manifests: v, operator: undefined };
  const range = v.fluxVersion && isFluxVersionRange(v.fluxVersion);
  return {
    manifests: { ...v, fluxVersion: range ? undefined : v.fluxVersion },
    operator: {
      version: v.fluxVersion,
      clusterType: v.clusterType,
      clusterSize: v.clusterSize,
      multitenant: v.multitenant,
      release: v.operatorVersion,
    },
  };
}
