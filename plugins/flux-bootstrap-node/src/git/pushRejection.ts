import { FluxBootstrapError } from '../util/errors';

/** What a {@link BranchProtectedError} tells the user to do. @public */
export const PULL_REQUEST_ADVICE =
  "The branch is protected: set the input pullRequest (true, or 'auto' to decide from the branch's restrictions) so the changes reach it through a pull request.";

/**
 * The server refused to update the branch (Bitbucket's branch permissions, a pre-receive hook):
 * a `NotAllowedError` naming the branch, quoting the server's reason, then {@link PULL_REQUEST_ADVICE}.
 * @public
 */
export class BranchProtectedError extends FluxBootstrapError {
  constructor(branch: string, said: string, url: string, status: string) {
    super(
      'NotAllowedError',
      `the push to branch "${branch}" of ${url} was refused by the server (${status})${
        said ? `: ${said}` : '.'
      } ${PULL_REQUEST_ADVICE}`,
    );
  }
}

/** The `remote:` text of a push as one line: no prefixes, banners or colour codes. */
export function remoteText(text: string): string {
  return text
    .split(/[\r\n]+/)
    .map(line =>
      line
        // eslint-disable-next-line no-control-regex
        .replace(/\u001b\[[0-9;]*m/g, '')
        .replace(/^remote:\s*/, '')
        .trim(),
    )
    .filter(line => line && !/^[-=*_#\s]+$/.test(line))
    .map(line => (/[.!?]$/.test(line) ? line : `${line}.`))
    .join(' ');
}

/**
 * A {@link BranchProtectedError} when a ref's rejection (`pre-receive hook declined`,
 * `protected branch hook declined`, …) or the server's text says the branch is protected;
 * undefined for any other failure.
 * @public
 */
export function branchProtectionError(
  branch: string,
  url: string,
  refStatus: string,
  remote: string,
): BranchProtectedError | undefined {
  const said = remoteText(remote);
  const protectedBranch =
    /hook declined|protected|permission|restrict/i.test(refStatus) ||
    /only be modified through pull requests|is read-only|branch permissions/i.test(
      said,
    );
  return protectedBranch
    ? new BranchProtectedError(
        branch,
        said,
        url,
        /\(([^)]+)\)\s*$/.exec(refStatus)?.[1] ?? (refStatus || 'rejected'),
      )
    : undefined;
}
