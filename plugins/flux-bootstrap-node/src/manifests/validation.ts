import { InputValidationError } from '../util/errors';

/*
 * Input checks of manifest generation and git. Each runs before any network call and throws an
 * InputValidationError naming the field. Values never reach YAML through templating, but they end
 * up in ref names, URLs, file paths and command lines: the strictest rule that applies holds.
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

const ALL_COMPONENTS: readonly string[] = [
  ...FLUX_DEFAULT_COMPONENTS,
  ...FLUX_EXTRA_COMPONENTS,
];

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const DNS_LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const DNS_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function str(field: string, value: unknown): string {
  if (typeof value === 'string') return value;
  throw new InputValidationError(field, 'must be a string');
}

/** `value` as a string satisfying `ok`, else an InputValidationError of `field` saying `message`. */
function checked(
  field: string,
  value: unknown,
  ok: (v: string) => boolean,
  message: string,
): string {
  if (!ok(str(field, value))) throw new InputValidationError(field, message);
  return value as string;
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
  const v = checked(
    field,
    value,
    s =>
      /^v(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(-[0-9A-Za-z-]{1,40}(\.[0-9A-Za-z-]{1,40}){0,5})?$/.test(
        s,
      ),
    'must be a Flux release version of the form v<major>.<minor>.<patch>, e.g. v2.9.4',
  );
  if (!v.startsWith('v2.')) {
    throw new InputValidationError(
      field,
      `Flux ${v} is not supported: the manifest generator follows Flux 2 (v2.x.y)`,
    );
  }
  return v;
}

/** Problems of a repository path, each with its message; the first that applies is reported. */
const PATH_RULES: [(p: string) => boolean, string][] = [
  [p => p.length > 512, 'is longer than 512 characters'],
  [
    p => /^(\/|[A-Za-z]:|~)/.test(p),
    'must be a relative path inside the repository, e.g. clusters/my-cluster',
  ],
  [p => p.includes('\\'), 'must use "/" as separator (no backslash)'],
  [p => p.includes('%'), 'must not contain "%" (no URL-encoded characters)'],
];

const SEGMENT_RULES: [(s: string) => boolean, string][] = [
  [s => s === '', 'must not contain empty segments ("//")'],
  [s => s === '..', 'must not contain ".." segments'],
  [s => s === '.', 'must not contain "." segments'],
  [s => s.toLowerCase() === '.git', 'must not point into a ".git" folder'],
];

/**
 * The cluster path in the repository (`--path`): `clusters/prod`, `./clusters/prod/`, or
 * `.`/`./` for the root; returned without leading `./` and trailing `/` (`''` for the root).
 * Rejects absolute paths, `..`, empty or `.` segments, backslashes, percent-encoding, control
 * characters and `.git` segments.
 * @public
 */
export function normalizeRepoPath(value: unknown, field = 'path'): string {
  const raw = checked(
    field,
    value,
    v => !CONTROL.test(v),
    'must not contain control characters or line breaks',
  );
  let p = raw.trim();
  if (p === '.' || p === './') return '';
  const fail = (message: string) => new InputValidationError(field, message);
  for (const [bad, message] of PATH_RULES) if (bad(p)) throw fail(message);
  p = p.replace(/^\.\//, '').replace(/\/$/, '');
  if (p === '')
    throw fail('must not be empty (use "." for the repository root)');
  for (const segment of p.split('/')) {
    for (const [bad, message] of SEGMENT_RULES)
      if (bad(segment)) throw fail(message);
    if (!/^[A-Za-z0-9._@+=,-]+$/.test(segment)) {
      throw fail(
        `has an invalid segment "${segment}": use letters, digits and . _ - @ + = ,`,
      );
    }
  }
  return p;
}

/** What `git check-ref-format --branch` refuses (and what is unsafe on a command line). */
const BRANCH_RULES: [(b: string) => boolean, string][] = [
  [b => b.length === 0, 'it is empty'],
  [b => b.length > 200, 'it is longer than 200 characters'],
  [b => CONTROL.test(b), 'it contains control characters or line breaks'],
  [b => /[\s~^:?*[\\]/.test(b), 'it contains a space or one of ~ ^ : ? * [ \\'],
  [b => b.startsWith('-'), 'it starts with "-"'],
  [b => /^\/|\/$|\/\//.test(b), 'it has an empty path component'],
  [b => b.includes('..'), 'it contains ".."'],
  [b => b.includes('@{'), 'it contains "@{"'],
  [b => b === '@' || b === 'HEAD', '"@" and "HEAD" are reserved'],
  [b => b.endsWith('.'), 'it ends with "."'],
  [b => b.startsWith('refs/'), 'give the branch name without "refs/…"'],
  [b => /(^|\/)\./.test(b), 'a component starts with "."'],
  [b => /\.lock(\/|$)/.test(b), 'a component ends with ".lock"'],
];

/**
 * `branch`: a branch name git accepts (`git check-ref-format --branch` rules) that is also safe
 * on a command line and in a ref spec.
 * @public
 */
export function validateBranch(value: unknown, field = 'branch'): string {
  const b = str(field, value);
  const broken = BRANCH_RULES.find(([bad]) => bad(b));
  if (broken) {
    throw new InputValidationError(
      field,
      `is not a valid git branch name: ${broken[1]}`,
    );
  }
  return b;
}

/** A DNS-1123 label (Kubernetes namespace names). @public */
export function validateDnsLabel(value: unknown, field: string): string {
  return checked(
    field,
    value,
    v => new RegExp(`^${DNS_LABEL}$`).test(v),
    'must be a DNS-1123 label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit',
  );
}

/** A DNS-1123 subdomain (Kubernetes object names such as Secrets). @public */
export function validateDnsSubdomain(value: unknown, field: string): string {
  return checked(
    field,
    value,
    v => v.length <= 253 && DNS_SUBDOMAIN.test(v),
    'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
  );
}

/**
 * `components` + `componentsExtra`: known names only, no duplicates, source-controller and
 * kustomize-controller present. Returns them combined in the given order (as flux appends the
 * extras).
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
    const unknown = v.find(name => !ALL_COMPONENTS.includes(name));
    if (unknown !== undefined) {
      throw new InputValidationError(
        field,
        `component "${String(unknown).slice(
          0,
          64,
        )}" is not available; choose from ${ALL_COMPONENTS.join(', ')}`,
      );
    }
    return v;
  };
  const base = list('components', components);
  const extra = list('componentsExtra', componentsExtra);
  const all = [...base, ...extra];
  const twice = all.find((c, i) => all.indexOf(c) !== i);
  if (twice) {
    throw new InputValidationError(
      extra.includes(twice) ? 'componentsExtra' : 'components',
      `component "${twice}" is listed twice`,
    );
  }
  for (const required of ['source-controller', 'kustomize-controller']) {
    if (!all.includes(required)) {
      throw new InputValidationError(
        'components',
        `component ${required} is required`,
      );
    }
  }
  return all;
}

const REGISTRY = (() => {
  const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
  const label = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
  const host = `${label}(?:\\.${label})*(?::[0-9]{1,5})?`;
  return new RegExp(`^(?:${host}/)?${component}(?:/${component})*$`);
})();

/** An image registry prefix such as `ghcr.io/fluxcd` or `registry.local:5000/mirror/fluxcd`. @public */
export function validateRegistry(value: unknown, field = 'registry'): string {
  const v = str(field, value).trim();
  if (v.length > 255 || !REGISTRY.test(v)) {
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
  const label = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
  return checked(
    field,
    value,
    v => v.length <= 253 && new RegExp(`^${label}(\\.${label})*$`).test(v),
    'must be a DNS name such as cluster.local',
  );
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
    const okPrefix =
      prefix === undefined ||
      (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
    if (!okPrefix || !name.test(key.slice(slash + 1))) {
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
  return [...value];
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
 * Parses a Go duration (`1m`, `90s`, `1h30m`) into milliseconds; undefined when the text is not
 * one.
 * @public
 */
export function parseGoDuration(text: string): number | undefined {
  if (!/^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, num, unit] of text.matchAll(
    /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g,
  ))
    total += Number(num) * DURATION_UNITS[unit];
  return total;
}

/** Milliseconds as Go's `time.Duration.String()` prints whole seconds and above (`1m0s`, `1h0m0s`, `30s`). @public */
export function formatGoDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms - h * 3_600_000) / 60_000);
  const s = +((ms - h * 3_600_000 - m * 60_000) / 1000).toFixed(3);
  if (h > 0) return `${h}h${m}m${s}s`;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** `interval` of the GitRepository: a Go duration ≥ 10s, returned in Go's canonical form. @public */
export function validateInterval(value: unknown, field = 'interval'): string {
  const ms = parseGoDuration(str(field, value).trim());
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
  const v = checked(
    field,
    value,
    s => !CONTROL.test(s) && !/\s/.test(s),
    'must not contain whitespace or control characters',
  );
  const url = URL.canParse(v) ? new URL(v) : undefined;
  if (!url || !['ssh:', 'https:', 'http:'].includes(url.protocol)) {
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
