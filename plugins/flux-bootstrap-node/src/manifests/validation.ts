import { InputValidationError } from '../util/errors';

/**
 * Input checks shared by manifest generation and git. Every check runs before any network call
 * and throws {@link InputValidationError} naming the field. Values never reach YAML through
 * string templating (files are serialised from objects), but they also end up in git ref names,
 * URLs, file paths and command lines, so they are held to the strictest rule that applies.
 */

/** Flux controllers a bundle can hold, in flux's order. @public */
export const FLUX_DEFAULT_COMPONENTS = [
  'source-controller',
  'kustomize-controller',
  'helm-controller',
  'notification-controller',
] as const;

/** Optional controllers (`--components-extra`). @public */
export const FLUX_EXTRA_COMPONENTS = [
  'image-reflector-controller',
  'image-automation-controller',
  'source-watcher',
] as const;

/** Controllers bootstrap cannot do without. @public */
export const FLUX_REQUIRED_COMPONENTS = [
  'source-controller',
  'kustomize-controller',
] as const;

const ALL_COMPONENTS: readonly string[] = [
  ...FLUX_DEFAULT_COMPONENTS,
  ...FLUX_EXTRA_COMPONENTS,
];

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function requireString(field: string, value: unknown): string {
  if (typeof value !== 'string') {
    throw new InputValidationError(field, 'must be a string');
  }
  return value;
}

/**
 * `fluxVersion`: `v<semver>` of a Flux 2 release, e.g. `v2.9.4`. Used in the bundle URL and the
 * cache path, so nothing else is allowed.
 * @public
 */
export function validateFluxVersion(
  value: unknown,
  field = 'fluxVersion',
): string {
  const v = requireString(field, value);
  const m =
    /^v(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(-[0-9A-Za-z-]{1,40}(\.[0-9A-Za-z-]{1,40}){0,5})?$/.exec(
      v,
    );
  if (!m) {
    throw new InputValidationError(
      field,
      'must be a Flux release version of the form v<major>.<minor>.<patch>, e.g. v2.9.4',
    );
  }
  if (m[1] !== '2') {
    throw new InputValidationError(
      field,
      `Flux ${v} is not supported: the manifest generator follows Flux 2 (v2.x.y)`,
    );
  }
  return v;
}

/**
 * The cluster path in the repository (`--path`). Accepts `clusters/prod`, `./clusters/prod/`,
 * or `.`/`./` for the repository root; returns it without leading `./` and trailing `/`
 * (`''` for the root). Rejects absolute paths, `..`, empty or `.` segments, backslashes,
 * percent-encoding, control characters and `.git` segments.
 * @public
 */
export function normalizeRepoPath(value: unknown, field = 'path'): string {
  const raw = requireString(field, value);
  if (CONTROL.test(raw)) {
    throw new InputValidationError(
      field,
      'must not contain control characters or line breaks',
    );
  }
  let p = raw.trim();
  if (p === '.' || p === './') return '';
  if (p.length > 512)
    throw new InputValidationError(field, 'is longer than 512 characters');
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p) || p.startsWith('~')) {
    throw new InputValidationError(
      field,
      'must be a relative path inside the repository, e.g. clusters/my-cluster',
    );
  }
  if (p.includes('\\'))
    throw new InputValidationError(
      field,
      'must use "/" as separator (no backslash)',
    );
  if (p.includes('%')) {
    throw new InputValidationError(
      field,
      'must not contain "%" (no URL-encoded characters)',
    );
  }
  if (p.startsWith('./')) p = p.slice(2);
  if (p.endsWith('/')) p = p.slice(0, -1);
  if (p === '')
    throw new InputValidationError(
      field,
      'must not be empty (use "." for the repository root)',
    );
  for (const segment of p.split('/')) {
    if (segment === '') {
      throw new InputValidationError(
        field,
        'must not contain empty segments ("//")',
      );
    }
    if (segment === '..')
      throw new InputValidationError(field, 'must not contain ".." segments');
    if (segment === '.')
      throw new InputValidationError(field, 'must not contain "." segments');
    if (segment.toLowerCase() === '.git') {
      throw new InputValidationError(
        field,
        'must not point into a ".git" folder',
      );
    }
    if (!/^[A-Za-z0-9._@+=,-]+$/.test(segment)) {
      throw new InputValidationError(
        field,
        `has an invalid segment "${segment}": use letters, digits and . _ - @ + = ,`,
      );
    }
  }
  return p;
}

/**
 * `branch`: a branch name git accepts (`git check-ref-format --branch` rules) that is also safe
 * on a command line and in a ref spec.
 * @public
 */
export function validateBranch(value: unknown, field = 'branch'): string {
  const b = requireString(field, value);
  const fail = (why: string): never => {
    throw new InputValidationError(
      field,
      `is not a valid git branch name: ${why}`,
    );
  };
  if (b.length === 0) fail('it is empty');
  if (b.length > 200) fail('it is longer than 200 characters');
  if (CONTROL.test(b)) fail('it contains control characters or line breaks');
  if (/[\s~^:?*[\\]/.test(b))
    fail('it contains a space or one of ~ ^ : ? * [ \\');
  if (b.startsWith('-')) fail('it starts with "-"');
  if (b.startsWith('/') || b.endsWith('/') || b.includes('//'))
    fail('it has an empty path component');
  if (b.includes('..')) fail('it contains ".."');
  if (b.includes('@{')) fail('it contains "@{"');
  if (b === '@' || b === 'HEAD') fail(`"${b}" is reserved`);
  if (b.endsWith('.')) fail('it ends with "."');
  if (b.startsWith('refs/')) fail('give the branch name without "refs/…"');
  for (const component of b.split('/')) {
    if (component.startsWith('.')) fail('a component starts with "."');
    if (component.endsWith('.lock')) fail('a component ends with ".lock"');
  }
  return b;
}

/** A DNS-1123 label (Kubernetes namespace names). @public */
export function validateDnsLabel(value: unknown, field: string): string {
  const v = requireString(field, value);
  if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(v)) {
    throw new InputValidationError(
      field,
      'must be a DNS-1123 label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit',
    );
  }
  return v;
}

/** A DNS-1123 subdomain (Kubernetes object names such as Secrets). @public */
export function validateDnsSubdomain(value: unknown, field: string): string {
  const v = requireString(field, value);
  if (
    v.length > 253 ||
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(v)
  ) {
    throw new InputValidationError(
      field,
      'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
    );
  }
  return v;
}

/**
 * `components` + `componentsExtra`: known names only, no duplicates, source-controller and
 * kustomize-controller present. Returns the combined list in the given order (flux appends the
 * extras to the components).
 * @public
 */
export function validateComponents(
  components: unknown,
  componentsExtra: unknown,
): string[] {
  const list = (field: string, v: unknown): string[] => {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || v.some(x => typeof x !== 'string')) {
      throw new InputValidationError(
        field,
        'must be a list of component names',
      );
    }
    for (const name of v as string[]) {
      if (!ALL_COMPONENTS.includes(name)) {
        throw new InputValidationError(
          field,
          `component "${String(name).slice(
            0,
            64,
          )}" is not available; choose from ${ALL_COMPONENTS.join(', ')}`,
        );
      }
    }
    return v as string[];
  };
  const base = list('components', components);
  const extra = list('componentsExtra', componentsExtra);
  const all = [...base, ...extra];
  const seen = new Set<string>();
  for (const c of all) {
    if (seen.has(c)) {
      throw new InputValidationError(
        extra.includes(c) ? 'componentsExtra' : 'components',
        `component "${c}" is listed twice`,
      );
    }
    seen.add(c);
  }
  for (const required of FLUX_REQUIRED_COMPONENTS) {
    if (!seen.has(required)) {
      throw new InputValidationError(
        'components',
        `component ${required} is required`,
      );
    }
  }
  return all;
}

/** An image registry prefix such as `ghcr.io/fluxcd` or `registry.local:5000/mirror/fluxcd`. @public */
export function validateRegistry(value: unknown, field = 'registry'): string {
  const v = requireString(field, value).trim();
  const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
  const host =
    '(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]{1,5})?';
  const re = new RegExp(`^(?:${host}/)?${component}(?:/${component})*$`);
  if (v.length > 255 || !re.test(v)) {
    throw new InputValidationError(
      field,
      'must be an image registry prefix such as ghcr.io/fluxcd or registry.example.com:5000/fluxcd (no tag, no scheme)',
    );
  }
  return v;
}

/** `logLevel`: debug, info or error (flux's enum). @public */
export function validateLogLevel(
  value: unknown,
  field = 'logLevel',
): 'debug' | 'info' | 'error' {
  if (value === 'debug' || value === 'info' || value === 'error') return value;
  throw new InputValidationError(field, 'must be one of debug, info, error');
}

/** `clusterDomain`: a DNS name such as cluster.local. @public */
export function validateClusterDomain(
  value: unknown,
  field = 'clusterDomain',
): string {
  const v = requireString(field, value);
  if (
    v.length > 253 ||
    !/^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$/.test(
      v,
    )
  ) {
    throw new InputValidationError(
      field,
      'must be a DNS name such as cluster.local',
    );
  }
  return v;
}

/** `tolerationKeys`: Kubernetes taint keys (qualified names with an optional DNS prefix). @public */
export function validateTolerationKeys(
  value: unknown,
  field = 'tolerationKeys',
): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some(x => typeof x !== 'string')) {
    throw new InputValidationError(field, 'must be a list of taint keys');
  }
  const name = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
  for (const key of value as string[]) {
    const slash = key.indexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const local = slash >= 0 ? key.slice(slash + 1) : key;
    const okPrefix =
      prefix === undefined ||
      (prefix.length <= 253 &&
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(
          prefix,
        ));
    if (!okPrefix || !name.test(local)) {
      throw new InputValidationError(
        field,
        `"${key
          .slice(0, 80)
          .replace(
            CONTROL,
            '?',
          )}" is not a valid taint key (e.g. node-role.kubernetes.io/infra)`,
      );
    }
  }
  return [...(value as string[])];
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`1m`, `90s`, `1h30m`) into milliseconds. Returns undefined when the
 * text is not one.
 * @public
 */
export function parseGoDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, num, unit] of text.matchAll(
    /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g,
  )) {
    total += Number(num) * DURATION_UNITS[unit];
  }
  return total;
}

/** Formats milliseconds the way Go's `time.Duration.String()` does for whole seconds and above (`1m0s`, `1h0m0s`, `30s`). @public */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const totalSeconds = ms / 1000;
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds - h * 3600) / 60);
  const s = +(totalSeconds - h * 3600 - m * 60).toFixed(3);
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

/** `interval` of the GitRepository: a Go duration ≥ 10s, returned in Go's canonical form. @public */
export function validateInterval(value: unknown, field = 'interval'): string {
  const v = requireString(field, value).trim();
  const ms = parseGoDuration(v);
  if (ms === undefined) {
    throw new InputValidationError(
      field,
      'must be a duration such as 1m, 30s or 1h30m',
    );
  }
  if (ms < 10_000 || ms > 24 * 3_600_000) {
    throw new InputValidationError(field, 'must be between 10s and 24h');
  }
  return formatGoDuration(ms);
}

/**
 * The URL Flux clones from (`GitRepository.spec.url`): `ssh://` or `https://` (or `http://` for
 * tests and plain-HTTP servers), without credentials, whitespace or control characters.
 * @public
 */
export function validateSyncUrl(value: unknown, field = 'syncUrl'): string {
  const v = requireString(field, value);
  if (CONTROL.test(v) || /\s/.test(v)) {
    throw new InputValidationError(
      field,
      'must not contain whitespace or control characters',
    );
  }
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new InputValidationError(field, 'must be an ssh:// or https:// URL');
  }
  if (!['ssh:', 'https:', 'http:'].includes(url.protocol)) {
    throw new InputValidationError(field, 'must be an ssh:// or https:// URL');
  }
  if (url.password || (url.protocol !== 'ssh:' && url.username)) {
    throw new InputValidationError(field, 'must not contain credentials');
  }
  if (!url.hostname || url.hostname.startsWith('-')) {
    throw new InputValidationError(field, 'must name a host');
  }
  return v;
}
