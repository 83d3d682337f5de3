// The parts of Atlassian's `Rest*` models (`/rest/api/1.0`, `/rest/keys/1.0`) the engine reads.

/** A page of a paged Bitbucket list. @public */
export interface BitbucketPage<T> {
  values: T[];
  isLastPage: boolean;
  nextPageStart?: number | null;
}

/** A user. @public */
export interface BitbucketUser {
  name: string;
  slug?: string;
  displayName?: string;
  emailAddress?: string;
}

/** A project (`~USER` for personal projects). @public */
export interface BitbucketProject {
  key: string;
  name: string;
  type?: string;
}

/** A repository. @public */
export interface BitbucketRepository {
  slug: string;
  id?: number;
  name: string;
  public?: boolean;
  project: BitbucketProject;
  links?: {
    clone?: { href: string; name?: string }[];
    self?: { href: string }[];
  };
}

/** A branch (`RestBranch`): `id` is `refs/heads/main`, `displayId` `main`. @public */
export interface BitbucketBranch {
  id: string;
  displayId: string;
  latestCommit?: string;
  latestChangeset?: string;
  isDefault?: boolean;
}

/** Repository permissions a group or user can hold. @public */
export type BitbucketRepoPermission = 'REPO_READ' | 'REPO_WRITE' | 'REPO_ADMIN';

/** An SSH access key of a repository (`/rest/keys/1.0/…/ssh`). @public */
export interface BitbucketAccessKey {
  key: { id: number; text: string; label?: string; fingerprint?: string };
  permission: BitbucketRepoPermission | string;
}
