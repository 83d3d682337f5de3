/** One entry of Bitbucket's error body (some exceptions add keys, e.g. `existingPullRequest`). */
export interface BitbucketErrorEntry {
  context: string | null;
  message: string;
  exceptionName: string | null;
  [extra: string]: unknown;
}

/** An error the double answers with Bitbucket's body `{"errors":[{context,message,exceptionName}]}`. */
export class RestError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly exceptionName: string | null,
    readonly context: string | null = null,
    readonly headers: Record<string, string> = {},
    /** Exception-specific keys of the error entry (e.g. `existingPullRequest`, `currentVersion`). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }

  body(): { errors: BitbucketErrorEntry[] } {
    return {
      errors: [
        {
          context: this.context,
          message: this.message,
          exceptionName: this.exceptionName,
          ...this.extra,
        },
      ],
    };
  }
}

/** A RestError with exception-specific keys in its error entry. */
export const restError = (
  status: number,
  message: string,
  exceptionName: string | null,
  extra: Record<string, unknown> = {},
  context: string | null = null,
) => new RestError(status, message, exceptionName, context, {}, extra);

// Exception class names as Bitbucket Server / Data Center reports them in `exceptionName`.
export const EX = {
  authorisation: 'com.atlassian.bitbucket.AuthorisationException',
  incorrectPassword:
    'com.atlassian.bitbucket.auth.IncorrectPasswordAuthenticationException',
  noSuchProject: 'com.atlassian.bitbucket.project.NoSuchProjectException',
  noSuchRepository:
    'com.atlassian.bitbucket.repository.NoSuchRepositoryException',
  noSuchUser: 'com.atlassian.bitbucket.user.NoSuchUserException',
  noSuchGroup: 'com.atlassian.bitbucket.user.NoSuchGroupException',
  noSuchCommit: 'com.atlassian.bitbucket.commit.NoSuchCommitException',
  noDefaultBranch:
    'com.atlassian.bitbucket.repository.NoDefaultBranchException',
  duplicateRef: 'com.atlassian.bitbucket.repository.DuplicateRefException',
  noSuchSshKey: 'com.atlassian.bitbucket.ssh.NoSuchSshKeyException',
  duplicateSshKey: 'com.atlassian.bitbucket.ssh.DuplicateSshKeyException',
  invalidSshKey: 'com.atlassian.bitbucket.ssh.InvalidSshKeyException',
  badRequest: 'com.atlassian.bitbucket.rest.exception.BadRequestException',
  argumentValidation: null,
  notFound: 'com.sun.jersey.api.NotFoundException',
  methodNotAllowed: 'com.sun.jersey.api.client.UniformInterfaceException',
  rateLimited: 'com.atlassian.bitbucket.throttle.ResourceBusyException',
  serviceUnavailable: 'com.atlassian.bitbucket.ServiceException',
  noSuchBranch: 'com.atlassian.bitbucket.repository.NoSuchBranchException',
  // pull requests (documented names; see the reference file, section 2.4)
  duplicatePullRequest:
    'com.atlassian.bitbucket.pull.DuplicatePullRequestException',
  emptyPullRequest: 'com.atlassian.bitbucket.pull.EmptyPullRequestException',
  pullRequestOutOfDate:
    'com.atlassian.bitbucket.pull.PullRequestOutOfDateException',
  pullRequestMergeVetoed:
    'com.atlassian.bitbucket.pull.PullRequestMergeVetoedException',
  noSuchPullRequest: 'com.atlassian.bitbucket.pull.NoSuchPullRequestException',
  invalidReviewers:
    'com.atlassian.bitbucket.pull.InvalidPullRequestReviewersException',
  // chosen by the double where Atlassian documents only the status (README marks them *)
  invalidPullRequestTarget:
    'com.atlassian.bitbucket.pull.InvalidPullRequestTargetException',
  illegalPullRequestState:
    'com.atlassian.bitbucket.pull.IllegalPullRequestStateException',
  pullRequestAuthor:
    'com.atlassian.bitbucket.pull.InvalidPullRequestParticipantException',
  noSuchRestriction:
    'com.atlassian.bitbucket.ref.restriction.NoSuchRefRestrictionException',
  noSuchCondition:
    'com.atlassian.bitbucket.pull.condition.NoSuchPullRequestConditionException',
} as const;

export const notPermitted = (
  message = 'You are not permitted to access this resource',
) => new RestError(401, message, EX.authorisation);

export const badCredentials = () =>
  new RestError(
    401,
    'Authentication failed. Please check your credentials and try again.',
    EX.incorrectPassword,
  );

export const validation = (context: string | null, message: string) =>
  new RestError(400, message, null, context);

/** The body Bitbucket sends with a status the double was told to fake (fault injection). */
export function faultError(status: number, retryAfter?: number): RestError {
  const headers: Record<string, string> =
    retryAfter !== undefined ? { 'Retry-After': String(retryAfter) } : {};
  if (status === 401)
    return new RestError(
      401,
      'You are not permitted to access this resource',
      EX.authorisation,
      null,
      headers,
    );
  if (status === 403)
    return new RestError(
      403,
      'You are not permitted to access this resource',
      EX.authorisation,
      null,
      headers,
    );
  if (status === 404)
    return new RestError(
      404,
      'The requested resource does not exist',
      EX.notFound,
      null,
      headers,
    );
  if (status === 409)
    return new RestError(
      409,
      'The resource was modified concurrently',
      null,
      null,
      headers,
    );
  if (status === 429) {
    return new RestError(
      429,
      'You have been rate limited. Please wait before retrying.',
      EX.rateLimited,
      null,
      headers,
    );
  }
  if (status === 503)
    return new RestError(
      503,
      'Bitbucket is temporarily unavailable',
      EX.serviceUnavailable,
      null,
      headers,
    );
  return new RestError(
    status,
    `An unexpected error occurred (injected status ${status})`,
    null,
    null,
    headers,
  );
}
