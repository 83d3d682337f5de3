import type { z as zod } from 'zod/v3';
import { parseFluxRevision } from '@flux-bootstrap/plugin-flux-bootstrap-common';

/*
 * The domain rules of the actions' inputs, in one place: branch names, cluster paths, Kubernetes
 * names, Go durations, URLs, Flux versions. Each is a zod schema built with the injected `z`; a
 * broken rule is an issue on its field, which the action reports as `Invalid input "<field>": …`
 * before anything is sent. Values never reach YAML through templating, but they end up in ref
 * names, URLs, file paths and command lines: the strictest rule that applies holds.
 */

type Z = typeof zod;

/** What is wrong with a value, or undefined when nothing is. */
export type Rule = (value: string) => string | undefined;

/** A string schema that checks `rule`. */
export function ruled(z: Z, rule: Rule) {
  return z.string().superRefine((value, ctx) => {
    const problem = rule(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });
}

/** The first message of a table of [broken?, message] whose check holds. */
const firstBroken =
  <T>(rules: [(v: T) => boolean, string][]) =>
  (value: T) =>
    rules.find(([broken]) => broken(value))?.[1];

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** What `git check-ref-format --branch` refuses (and what is unsafe on a command line). */
const branchProblem = firstBroken<string>([
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
]);

/** A git branch name, safe in a ref spec and on a command line. */
export const branchName = (z: Z) =>
  ruled(z, b => {
    const why = branchProblem(b);
    return why && `is not a valid git branch name: ${why}`;
  });

const pathProblem = firstBroken<string>([
  [p => p.length > 512, 'is longer than 512 characters'],
  [
    p => /^(\/|[A-Za-z]:|~)/.test(p),
    'must be a relative path inside the repository, e.g. clusters/my-cluster',
  ],
  [p => p.includes('\\'), 'must use "/" as separator (no backslash)'],
  [p => p.includes('%'), 'must not contain "%" (no URL-encoded characters)'],
  [p => p === '', 'must not be empty (use "." for the repository root)'],
]);

const segmentProblem = firstBroken<string>([
  [s => s === '', 'must not contain empty segments ("//")'],
  [s => s === '..', 'must not contain ".." segments'],
  [s => s === '.', 'must not contain "." segments'],
  [s => s.toLowerCase() === '.git', 'must not point into a ".git" folder'],
  [
    s => !/^[A-Za-z0-9._@+=,-]+$/.test(s),
    'has an invalid segment: use letters, digits and . _ - @ + = ,',
  ],
]);

/** `clusters/prod`, `./clusters/prod/` → `clusters/prod`; `.` and `./` → `''` (the root). */
export function normalizeClusterPath(value: string): string {
  const p = value.trim();
  return p === '.' || p === './'
    ? ''
    : p.replace(/^\.\//, '').replace(/\/$/, '');
}

/** What is wrong with a cluster path (`--path`), if anything. */
export const clusterPathProblem: Rule = value => {
  if (CONTROL.test(value))
    return 'must not contain control characters or line breaks';
  const p = value.trim();
  if (p === '.' || p === './') return undefined;
  const clean = normalizeClusterPath(p);
  return (
    pathProblem(p) ??
    pathProblem(clean) ??
    clean.split('/').map(segmentProblem).find(Boolean)
  );
};

/** The cluster folder in the repository, normalised (`''` for the root). */
export const clusterPath = (z: Z) =>
  ruled(z, clusterPathProblem).transform(normalizeClusterPath);

/** A DNS-1123 label (Kubernetes namespace names). */
export const dnsLabel = (z: Z) =>
  ruled(z, v =>
    DNS_LABEL.test(v)
      ? undefined
      : 'must be a DNS-1123 label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit',
  );

/** What is wrong with a DNS-1123 subdomain (Kubernetes object names such as Secrets). */
export const dnsSubdomainProblem: Rule = v =>
  v.length <= 253 && DNS_SUBDOMAIN.test(v)
    ? undefined
    : 'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit';

/** A DNS-1123 subdomain (Kubernetes object names such as Secrets). */
export const dnsSubdomain = (z: Z) => ruled(z, dnsSubdomainProblem);

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
  if (ms === 0) return '0s';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms - h * 3_600_000) / 60_000);
  const s = +((ms - h * 3_600_000 - m * 60_000) / 1000).toFixed(3);
  if (h > 0) return `${h}h${m}m${s}s`;
  return m > 0 ? `${m}m${s}s` : `${s}s`;
}

/** A Go duration between 10 s and 24 h, parsed into milliseconds. */
export const goDuration = (z: Z, example: string) =>
  ruled(z, v => {
    const ms = parseGoDuration(v.trim());
    if (ms === undefined) return `must be a duration such as ${example}`;
    return ms < 10_000 || ms > 24 * 3_600_000
      ? 'must be between 10s and 24h'
      : undefined;
  }).transform(v => parseGoDuration(v.trim())!);

/** A Flux 2 release, `v2.<minor>.<patch>`: it ends up in a download URL and a cache path. */
export const fluxVersion = (z: Z) =>
  ruled(z, v => {
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
  const component = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
  const label = '[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?';
  const host = `${label}(?:\\.${label})*(?::[0-9]{1,5})?`;
  return new RegExp(`^(?:${host}/)?${component}(?:/${component})*$`);
})();

/** An image registry prefix such as `ghcr.io/fluxcd`; `''` keeps the bundle's images. */
export const registry = (z: Z) =>
  ruled(z, v =>
    v.trim() === '' || (v.trim().length <= 255 && REGISTRY.test(v.trim()))
      ? undefined
      : 'must be an image registry prefix such as ghcr.io/fluxcd or registry.example.com:5000/fluxcd (no tag, no scheme)',
  ).transform(v => v.trim());

/** A DNS name such as `cluster.local`. */
export const dnsName = (z: Z) =>
  ruled(z, v => {
    const label = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
    return v.length <= 253 && new RegExp(`^${label}(\\.${label})*$`).test(v)
      ? undefined
      : 'must be a DNS name such as cluster.local';
  });

/** A Kubernetes taint key: a qualified name with an optional DNS prefix. */
export const taintKey = (z: Z) =>
  ruled(z, key => {
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
  });

/**
 * The URL Flux clones from (`GitRepository.spec.url`): `ssh://` or `https://` (`http://` for
 * plain-HTTP servers), without credentials, whitespace or control characters.
 */
export const syncUrl = (z: Z) =>
  ruled(
    z,
    firstBroken<string>([
      [
        v => CONTROL.test(v) || /\s/.test(v),
        'must not contain whitespace or control characters',
      ],
      [
        v =>
          !URL.canParse(v) ||
          !['ssh:', 'https:', 'http:'].includes(new URL(v).protocol),
        'must be an ssh:// or https:// URL',
      ],
      [
        v =>
          !!new URL(v).password ||
          (new URL(v).protocol !== 'ssh:' && !!new URL(v).username),
        'must not contain credentials',
      ],
      [
        v => !new URL(v).hostname || new URL(v).hostname.startsWith('-'),
        'must name a host',
      ],
    ]),
  );

/**
 * An `ssh://[user@]host[:port]/path` remote. scp-like `host:path` is not accepted: the explicit
 * form keeps the port and leaves no room for option injection.
 */
export const sshUrl = (z: Z) =>
  ruled(
    z,
    firstBroken<string>([
      [
        v => v.trim() === '',
        'is required, e.g. ssh://git@bitbucket.example.com:7999/PROJ/fleet.git',
      ],
      [
        // eslint-disable-next-line no-control-regex
        v => /[\u0000-\u001f\u007f\s]/.test(v),
        'must not contain whitespace or control characters',
      ],
      [
        v => !URL.canParse(v) || new URL(v).protocol !== 'ssh:',
        'must be an ssh:// URL such as ssh://git@host:7999/PROJ/repo.git',
      ],
      [v => !!new URL(v).password, 'must not contain a password'],
      [
        v =>
          !new URL(v).hostname ||
          /^-/.test(new URL(v).hostname) ||
          /^-/.test(new URL(v).username),
        'has an invalid host or user',
      ],
      [
        v =>
          !/^[A-Za-z0-9._~-]*$/.test(decodeURIComponent(new URL(v).username)),
        'has an invalid user name',
      ],
      [
        v => {
          const u = new URL(v);
          return (
            u.pathname === '' || u.pathname === '/' || !!u.search || !!u.hash
          );
        },
        'must name a repository path and have no query or fragment',
      ],
      [
        v => new URL(v).pathname.split('/').includes('..'),
        'must not contain ".." segments',
      ],
    ]),
  );

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
