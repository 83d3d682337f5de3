import type { BitbucketState, Project, Repo, SshKey, User } from './model';
import type { GitCommit } from '../git/cli';

/** Where links of the double point. */
export interface LinkContext {
  /** `http(s)://127.0.0.1:PORT[/ctx]` */
  baseUrl: string;
  /** `127.0.0.1:PORT` of the sshd, when SSH is enabled. */
  sshHost?: string;
  sshUser: string;
}

export function renderUser(u: User, l: LinkContext) {
  if (u.type === 'SERVICE') {
    // the user behind a project/repository access token: no e-mail address, no profile page
    return {
      name: u.name,
      active: u.active,
      displayName: u.displayName,
      id: u.id,
      slug: u.slug,
      type: 'SERVICE',
    };
  }
  return {
    name: u.name,
    emailAddress: u.emailAddress,
    active: u.active,
    displayName: u.displayName,
    id: u.id,
    slug: u.slug,
    type: 'NORMAL',
    links: { self: [{ href: `${l.baseUrl}/users/${u.slug}` }] },
  };
}

export function renderProject(
  p: Project,
  state: BitbucketState,
  l: LinkContext,
) {
  if (p.type === 'PERSONAL') {
    const owner = state.user(p.owner!)!;
    return {
      key: p.key,
      id: p.id,
      name: p.name,
      type: 'PERSONAL',
      owner: renderUser(owner, l),
      links: { self: [{ href: `${l.baseUrl}/users/${owner.slug}` }] },
    };
  }
  return {
    key: p.key,
    id: p.id,
    name: p.name,
    ...(p.description !== undefined ? { description: p.description } : {}),
    public: p.public,
    type: 'NORMAL',
    links: { self: [{ href: `${l.baseUrl}/projects/${p.key}` }] },
  };
}

/** Clone URLs of a repository: the real git HTTP peer and (when enabled) the real sshd. */
export function cloneLinks(
  r: Repo,
  l: LinkContext,
): { href: string; name: string }[] {
  const key = r.projectKey.toLowerCase();
  const links = [
    { href: `${l.baseUrl}/scm/${key}/${r.slug}.git`, name: 'http' },
  ];
  if (l.sshHost)
    links.unshift({
      href: `ssh://${l.sshUser}@${l.sshHost}/${key}/${r.slug}.git`,
      name: 'ssh',
    });
  return links;
}

export function renderRepo(r: Repo, state: BitbucketState, l: LinkContext) {
  const p = state.projects.get(r.projectKey)!;
  const self =
    p.type === 'PERSONAL'
      ? `${l.baseUrl}/users/${p.owner}/repos/${r.slug}/browse`
      : `${l.baseUrl}/projects/${p.key}/repos/${r.slug}/browse`;
  return {
    slug: r.slug,
    id: r.id,
    name: r.name,
    ...(r.description !== undefined ? { description: r.description } : {}),
    hierarchyId: r.hierarchyId,
    scmId: 'git',
    state: 'AVAILABLE',
    statusMessage: 'Available',
    forkable: r.forkable,
    project: renderProject(p, state, l),
    public: r.public,
    archived: false,
    links: { clone: cloneLinks(r, l), self: [{ href: self }] },
  };
}

export function renderBranch(name: string, sha: string, isDefault: boolean) {
  return {
    id: `refs/heads/${name}`,
    displayId: name,
    type: 'BRANCH',
    latestCommit: sha,
    latestChangeset: sha,
    isDefault,
  };
}

export function renderCommit(c: GitCommit) {
  return {
    id: c.id,
    displayId: c.id.slice(0, 11),
    author: { name: c.authorName, emailAddress: c.authorEmail },
    authorTimestamp: c.authorTimestamp,
    committer: { name: c.committerName, emailAddress: c.committerEmail },
    committerTimestamp: c.committerTimestamp,
    message: c.message,
    parents: c.parents.map(p => ({ id: p, displayId: p.slice(0, 11) })),
  };
}

const ALGORITHMS: Record<string, string> = {
  'ssh-rsa': 'RSA',
  'ssh-ed25519': 'ED25519',
  'ecdsa-sha2-nistp256': 'ECDSA',
  'ecdsa-sha2-nistp384': 'ECDSA',
  'ecdsa-sha2-nistp521': 'ECDSA',
  'ssh-dss': 'DSA',
};

/** Bit length of an OpenSSH public key blob. */
export function keyBits(type: string, blob: string): number {
  if (type === 'ssh-ed25519') return 256;
  const m = /^ecdsa-sha2-nistp(\d+)$/.exec(type);
  if (m) return Number(m[1]);
  if (type === 'ssh-rsa') {
    const buf = Buffer.from(blob, 'base64');
    let off = 0;
    const next = () => {
      const len = buf.readUInt32BE(off);
      const v = buf.subarray(off + 4, off + 4 + len);
      off += 4 + len;
      return v;
    };
    next(); // type
    next(); // e
    const n = next();
    let i = 0;
    while (i < n.length && n[i] === 0) i++;
    if (i >= n.length) return 0;
    return (n.length - i - 1) * 8 + (32 - Math.clz32(n[i]));
  }
  return 0;
}

export function renderKey(k: SshKey) {
  return {
    id: k.id,
    text: k.text,
    label: k.label,
    algorithmType: ALGORITHMS[k.type] ?? k.type,
    bitLength: keyBits(k.type, k.blob),
    createdDate: k.createdDate,
  };
}
