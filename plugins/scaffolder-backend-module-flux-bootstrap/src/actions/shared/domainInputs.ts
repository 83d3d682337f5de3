import {
  normalizeRepoPath,
  parseSshHost,
  validateBranch,
  validateDnsLabel,
  validateDnsSubdomain,
  validateSshUrl,
} from '@flux-bootstrap/plugin-flux-bootstrap-node';
import type { z as zod } from 'zod/v3';
import { ruled } from './io';

/*
 * The domain values several actions take, as zod schemas of the injected zod: one place for
 * each rule, so that every action checks a branch, a path or a Kubernetes name the same way.
 */

/** A git branch name (`git check-ref-format --branch`, and safe on a command line). */
export const gitBranch = (z: typeof zod) =>
  ruled(z, v => validateBranch(v.trim()));

/** A path inside the repository, normalised: `clusters/x` (`''` for the root). */
export const repoPath = (z: typeof zod) => ruled(z, v => normalizeRepoPath(v));

/** A Kubernetes namespace name (DNS-1123 label). */
export const kubeNamespace = (z: typeof zod) =>
  ruled(z, v => validateDnsLabel(v, 'namespace'));

/** A Kubernetes object name such as a Secret's (DNS-1123 subdomain). */
export const kubeObjectName = (z: typeof zod) =>
  ruled(z, v => validateDnsSubdomain(v, 'name'));

/** An `ssh://[user@]host[:port]/path` repository URL. */
export const sshUrl = (z: typeof zod) => ruled(z, v => validateSshUrl(v));

/** `host:port` of an SSH server (port 22 when left out), parsed. */
export const sshEndpoint = (z: typeof zod) => ruled(z, v => parseSshHost(v));

/** A pinned host key fingerprint as `ssh-keygen -lf` prints it (a trailing `=` is dropped). */
export const hostKeyFingerprint = (z: typeof zod) =>
  z
    .string()
    .trim()
    .regex(
      /^SHA256:[A-Za-z0-9+/]{43}=?$/,
      'must be an OpenSSH SHA256 fingerprint, e.g. SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (ssh-keyscan -p PORT HOST | ssh-keygen -lf -)',
    )
    .transform(v => v.replace(/=$/, ''));
