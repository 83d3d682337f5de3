import { InputValidationError } from '../util/errors';

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

const FLUX_VERSION =
  /^v2\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})(-[0-9A-Za-z-]{1,40}(\.[0-9A-Za-z-]{1,40}){0,5})?$/;

/** `v<semver>` of a Flux 2 release, e.g. `v2.9.4`: it ends up in a download URL and a cache path. */
export function validateFluxVersion(
  value: unknown,
  field = 'fluxVersion',
): string {
  if (typeof value === 'string' && FLUX_VERSION.test(value)) return value;
  throw new InputValidationError(
    field,
    'must be a Flux 2 release version of the form v2.<minor>.<patch>, e.g. v2.9.4',
  );
}

// The domain rules the actions' schemas reuse (scaffolder module, actions/shared/domainInputs.ts).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function checked(field: string, ok: boolean, value: unknown, message: string) {
  if (!ok) throw new InputValidationError(field, message);
  return value as string;
}

/** `clusters/prod`, `./clusters/prod/` → `clusters/prod`; `.` → `''`. @public */
export function normalizeRepoPath(value: unknown, field = 'path'): string {
  const p = typeof value === 'string' ? value.trim() : '';
  if (p === '.' || p === './') return '';
  const clean = p.replace(/^\.\//, '').replace(/\/$/, '');
  const segments = clean.split('/');
  return checked(
    field,
    !CONTROL.test(String(value)) &&
      segments.every(
        s =>
          /^[A-Za-z0-9._@+=,-]+$/.test(s) &&
          !/^\.{1,2}$/.test(s) &&
          s.toLowerCase() !== '.git',
      ),
    clean,
    'must be a relative path inside the repository, e.g. clusters/my-cluster',
  );
}

/** A branch name `git check-ref-format --branch` accepts, safe on a command line. @public */
export function validateBranch(value: unknown, field = 'branch'): string {
  const b = typeof value === 'string' ? value : '';
  return checked(
    field,
    /^[^\s~^:?*[\\]{1,200}$/.test(b) &&
      !CONTROL.test(b) &&
      !/^[-/]|\/$|\/\/|\.\.|@\{|\.$|^(@|HEAD)$|^refs\/|(^|\/)\.|\.lock(\/|$)/.test(
        b,
      ),
    b,
    'is not a valid git branch name',
  );
}

/** A DNS-1123 label (Kubernetes namespace names). @public */
export function validateDnsLabel(value: unknown, field: string): string {
  return checked(
    field,
    typeof value === 'string' &&
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(value),
    value,
    'must be a DNS-1123 label: at most 63 lower-case letters, digits and "-", starting and ending with a letter or digit',
  );
}

/** A DNS-1123 subdomain (Kubernetes object names such as Secrets). @public */
export function validateDnsSubdomain(value: unknown, field: string): string {
  return checked(
    field,
    typeof value === 'string' &&
      value.length <= 253 &&
      /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(
        value,
      ),
    value,
    'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
  );
}

/** An `ssh://[user@]host[:port]/path` remote (no scp-like form, nothing option-like). @public */
export function validateSshUrl(value: unknown, field = 'url'): string {
  const v = typeof value === 'string' ? value : '';
  const u = URL.canParse(v) ? new URL(v) : undefined;
  return checked(
    field,
    !!u &&
      u.protocol === 'ssh:' &&
      !/\s/.test(v) &&
      !CONTROL.test(v) &&
      !u.password &&
      !!u.hostname &&
      !/^-/.test(u.hostname) &&
      /^[A-Za-z0-9._~-]*$/.test(decodeURIComponent(u.username)) &&
      !['', '/'].includes(u.pathname) &&
      !u.search &&
      !u.hash &&
      !u.pathname.split('/').includes('..'),
    v,
    'must be an ssh:// URL such as ssh://git@host:7999/PROJ/repo.git (no password, query or "..")',
  );
}
