import { FluxBootstrapError } from '../util/errors';

/** What a {@link BranchProtectedError} tells the user to do. @public */
export const PULL_REQUEST_ADVICE =
  "The branch is protected: set the input pullRequest (true, or 'auto' to decide from the branch's restrictions) so the changes reach it through a pull request.";

/** The server refused to update a protected branch (a `NotAllowedError` quoting its reason). @public */
export class BranchProtectedError extends FluxBootstrapError {}

/** A {@link BranchProtectedError} when the push was refused by a branch protection, else undefined. @public */
export function branchProtectionError(
  branch: string,
  url: string,
  refStatus: string,
  remote: string,
): BranchProtectedError | undefined {
  const said = remote
    .split(/[\r\n]+/)
    .map(line => line.replace(/^remote:\s*/, '').trim())
    .filter(line => line && !/^[-=*_#]+$/.test(line))
    .join(' ');
  const status = /\(([^)]+)\)\s*$/.exec(refStatus)?.[1] ?? refStatus;
  if (
    !/hook declined|protected|permission|restrict/i.test(status) &&
    !/through pull requests|is read-only|branch permissions/i.test(said)
  )
    return undefined;
  const why = `(${status || 'rejected'})${said ? `: ${said}` : '.'}`;
  return new BranchProtectedError(
    'NotAllowedError',
    `the push to branch "${branch}" of ${url} was refused by the server ${why} ${PULL_REQUEST_ADVICE}`,
  );
}
