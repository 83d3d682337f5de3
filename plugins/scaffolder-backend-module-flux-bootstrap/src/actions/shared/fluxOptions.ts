import type { z as zod } from 'zod/v3';
import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';
import {
  FLUX_DEFAULTS,
  FLUX_DEFAULT_COMPONENTS,
  FLUX_EXTRA_COMPONENTS,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import { kubeNamespace, kubeObjectName } from './domainInputs';
import { ruled } from './io';

/*
 * The options of `flux bootstrap` that flux:push-manifests and flux:install share, with flux's
 * defaults and their rules: a template passes both actions the same values, and flux:install
 * checks it installs what was pushed. Values never reach YAML through templating, but they end
 * up in URLs, file paths and image names: the strictest rule that applies holds.
 */

type Z = typeof zod;

/** A string schema that refuses a value `problem` finds fault with, saying what it found. */
const checked = (z: Z, problem: (value: string) => string | undefined) =>
  ruled(z, value => {
    const found = problem(value);
    if (found) throw new Error(found);
    return value;
  });

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const DNS_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const COMPONENTS: readonly string[] = [
  ...FLUX_DEFAULT_COMPONENTS,
  ...FLUX_EXTRA_COMPONENTS,
];

/** What is wrong with a controller name, unless a Flux release bundle holds it. */
const componentProblem = (name: string) =>
  COMPONENTS.includes(name)
    ? undefined
    : `component "${name.slice(
        0,
        64,
      )}" is not available; choose from ${COMPONENTS.join(', ')}`;

/** A list whose first bad item is an issue of the list itself (the field a user filled in). */
const listOf = (z: Z, problem: (value: string) => string | undefined) =>
  z.array(z.string()).superRefine((items, ctx) => {
    const found = items.map(problem).find(Boolean);
    if (found) ctx.addIssue({ code: 'custom', message: found });
  });

/**
 * A Flux 2 release, `v2.<minor>.<patch>`: it ends up in a download URL and a cache path. Or, for
 * the Flux Operator only (see operatorOptions.ts), a range such as `2.9.x`.
 */
export const fluxVersion = (z: Z) =>
  checked(z, v => {
    if (/^v?2\.((0|[1-9]\d{0,5})\.)?x$/.test(v)) return undefined;
    if (
      !/^v(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(-[0-9A-Za-z-]{1,40}(\.[0-9A-Za-z-]{1,40}){0,5})?$/.test(
        v,
      )
    )
      return 'must be a Flux release version of the form v<major>.<minor>.<patch>, e.g. v2.9.4';
    return v.startsWith('v2.')
      ? undefined
      : `Flux ${v} is not supported: the manifest generator follows Flux 2 (v2.x.y)`;
  });

const REGISTRY = (() => {
  const part = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
  const label = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
  const host = `${label}(?:\\.${label})*(?::[0-9]{1,5})?`;
  return new RegExp(`^(?:${host}/)?${part}(?:/${part})*$`);
})();

/** What is wrong with a taint key, unless it is a qualified name with an optional DNS prefix. */
const taintKeyProblem = (key: string) => {
  const slash = key.indexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const ok =
    (prefix === undefined ||
      (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix))) &&
    /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(
      key.slice(slash + 1),
    );
  return ok
    ? undefined
    : `"${key
        .slice(0, 80)
        .replace(
          CONTROL,
          '?',
        )}" is not a valid taint key (e.g. node-role.kubernetes.io/infra)`;
};

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** A Go duration (`1m`, `90s`, `1h30m`) in milliseconds; undefined when the text is not one. */
export function parseGoDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, num, unit] of text.matchAll(
    /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g,
  ))
    total += Number(num) * DURATION_UNITS[unit];
  return total;
}

/** Milliseconds as Go's `time.Duration.String()` prints them from a second up (`1m0s`, `1h0m0s`). */
export function formatGoDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms - h * 3_600_000) / 60_000);
  const s = +((ms - h * 3_600_000 - m * 60_000) / 1000).toFixed(3);
  if (h > 0) return `${h}h${m}m${s}s`;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** A Go duration between 10 s and 24 h, parsed into milliseconds. */
export const goDuration = (z: Z, example: string) =>
  checked(z, v => {
    const ms = parseGoDuration(v.trim());
    if (ms === undefined) return `must be a duration such as ${example}`;
    return ms < 10_000 || ms > 24 * 3_600_000
      ? 'must be between 10s and 24h'
      : undefined;
  }).transform(v => parseGoDuration(v.trim())!);

const urlOf = (v: string) => (URL.canParse(v) ? new URL(v) : undefined);

/**
 * The URL Flux clones from (`GitRepository.spec.url`): `ssh://` or `https://` (`http://` for
 * plain-HTTP servers), without credentials, whitespace or control characters.
 */
export const syncUrl = (z: Z) =>
  checked(z, v => {
    const u = urlOf(v);
    if (CONTROL.test(v) || /\s/.test(v))
      return 'must not contain whitespace or control characters';
    if (!u || !['ssh:', 'https:', 'http:'].includes(u.protocol))
      return 'must be an ssh:// or https:// URL';
    if (u.password || (u.protocol !== 'ssh:' && u.username))
      return 'must not contain credentials';
    return !u.hostname || u.hostname.startsWith('-')
      ? 'must name a host'
      : undefined;
  });

/**
 * The Flux component options (`--version`, `--components`, `--registry`, …) with flux's
 * defaults.
 */
export const fluxComponentOptionsInput = (z: Z) => ({
  fluxVersion: fluxVersion(z)
    .optional()
    .describe(
      'Flux release, e.g. v2.9.4 (default: fluxBootstrap.manifests.defaultVersion, else v2.9.4); with distribution operator also a range such as 2.9.x. The same for flux:push-manifests and flux:install.',
    ),
  components: listOf(z, componentProblem)
    .default([...FLUX_DEFAULTS.components])
    .describe(
      'Controllers (default source-controller, kustomize-controller, helm-controller, notification-controller). source-controller and kustomize-controller are required.',
    ),
  componentsExtra: listOf(z, componentProblem)
    .default([])
    .describe(
      'Extra controllers: image-reflector-controller, image-automation-controller, source-watcher.',
    ),
  registry: checked(z, v =>
    v.trim().length <= 255 && REGISTRY.test(v.trim())
      ? undefined
      : 'must be an image registry prefix such as ghcr.io/fluxcd or registry.example.com:5000/fluxcd (no tag, no scheme)',
  )
    .transform(v => v.trim())
    .default(FLUX_DEFAULTS.registry)
    .describe(
      'Registry the controller images come from (default ghcr.io/fluxcd; docker.io/fluxcd for Docker Hub).',
    ),
  imagePullSecret: kubeObjectName(z)
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
  clusterDomain: checked(z, v => {
    const label = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
    return v.length <= 253 && new RegExp(`^${label}(\\.${label})*$`).test(v)
      ? undefined
      : 'must be a DNS name such as cluster.local';
  })
    .default(FLUX_DEFAULTS.clusterDomain)
    .describe('Cluster DNS domain (default cluster.local).'),
  tolerationKeys: listOf(z, taintKeyProblem)
    .default([])
    .describe('Taint keys every Flux pod tolerates (operator Exists).'),
});

const COMPONENT_OPTIONS = [
  'fluxVersion',
  'components',
  'componentsExtra',
  'registry',
  'imagePullSecret',
  'watchAllNamespaces',
  'networkPolicy',
  'logLevel',
  'clusterDomain',
  'tolerationKeys',
] as const;

/** The Flux component options of a parsed input (what {@link fluxComponentOptionsInput} adds). */
export function fluxComponentOptions<
  T extends Partial<Record<(typeof COMPONENT_OPTIONS)[number], unknown>>,
>(input: T): Pick<T, (typeof COMPONENT_OPTIONS)[number]> {
  return Object.fromEntries(
    COMPONENT_OPTIONS.filter(k => k in input).map(k => [k, input[k]]),
  ) as Pick<T, (typeof COMPONENT_OPTIONS)[number]>;
}

/** The sync options both actions have; each action describes them in its own words. */
export const fluxSyncOptionsInput = (z: Z) => ({
  namespace: kubeNamespace(z).default(FLUX_DEFAULTS.namespace),
  secretName: kubeObjectName(z).default(FLUX_DEFAULTS.secretName),
  /** The GitRepository interval, a Go duration, in Go's form (`1m0s`). */
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

/**
 * The revision Flux must reach — what flux:push-manifests pushed, `<branch>@sha1:<sha>` (also
 * `refs/heads/<branch>@sha1:…` or a bare `sha1:<sha>`) — checked against the synced branch and
 * returned as `<branch>@sha1:<sha>`. `<branch>@sha1:` without a commit (a dry run of
 * flux:push-manifests) is returned as is: only a dry run of flux:install accepts it.
 */
export function checkRevision(
  value: string,
  branch: string,
): { revision: string } | { problem: string } {
  const otherBranch = (ref: string | undefined) => {
    const name = ref?.replace(/^refs\/heads\//, '');
    return name && name !== branch
      ? {
          problem: `is a revision of branch "${name}", but Flux is set to sync branch "${branch}"`,
        }
      : undefined;
  };
  const pending = /^(?:(.+)@)?sha1:$/.exec(value);
  if (pending)
    return otherBranch(pending[1]) ?? { revision: `${branch}@sha1:` };
  const parsed = parseFluxRevision(value);
  const digest = `${parsed.algorithm}:${parsed.sha}`;
  if (
    !value.includes(':') ||
    !/^(sha1:[0-9a-f]{40}|sha256:[0-9a-f]{64})$/.test(digest)
  ) {
    return {
      problem: `must be <branch>@sha1:<commit sha> as flux:push-manifests outputs it (got "${value}")`,
    };
  }
  return otherBranch(parsed.ref) ?? { revision: `${branch}@${digest}` };
}
