import fs from 'node:fs';
import git, { TreeEntry } from 'isomorphic-git';
import type { DirectoryReader } from '../manifests/kustomization';

type Node = {
  files: Map<string, string>;
  dirs: Map<string, Node>;
  /** Names of the base tree left out at this level. */
  removed: Set<string>;
};
const newNode = (): Node => ({
  files: new Map(),
  dirs: new Map(),
  removed: new Set(),
});
const split = (path: string) => {
  const slash = path.lastIndexOf('/');
  return [path.slice(0, Math.max(slash, 0)), path.slice(slash + 1)];
};

/** A git tree with pending writes and removals; {@link TreeEditor.build} writes changed trees only. @public */
export class TreeEditor implements DirectoryReader {
  private readonly cache: Record<string, unknown> = {};
  private readonly trees = new Map<string, TreeEntry[] | undefined>();
  private readonly writes = new Map<string, string>();
  private readonly blobs = new Map<string, string>();
  /** Paths (files or folders) of the base tree to leave out; writes made after a removal win. */
  private readonly removals = new Set<string>();

  constructor(
    private readonly gitdir: string,
    private readonly rootTree: string | undefined,
  ) {}

  private async readTree(oid: string): Promise<TreeEntry[]> {
    const { gitdir, cache } = this;
    return (await git.readTree({ fs, gitdir, oid, cache })).tree;
  }

  private async treeAt(dir: string): Promise<TreeEntry[] | undefined> {
    if (!this.trees.has(dir)) {
      const entry = dir ? await this.entryAt(dir) : undefined;
      const tree = dir ? entry?.type === 'tree' && entry.oid : this.rootTree;
      this.trees.set(dir, tree ? await this.readTree(tree) : undefined);
    }
    return this.trees.get(dir);
  }

  private async entryAt(path: string): Promise<TreeEntry | undefined> {
    const [dir, name] = split(path);
    return (await this.treeAt(dir))?.find(e => e.path === name);
  }

  async list(
    dir: string,
  ): Promise<Array<{ name: string; type: 'file' | 'dir' }>> {
    const out = new Map<string, 'file' | 'dir'>();
    const prefix = dir ? `${dir}/` : '';
    const base = this.isRemoved(dir) ? [] : (await this.treeAt(dir)) ?? [];
    for (const e of base) {
      if (this.removals.has(`${prefix}${e.path}`)) continue;
      if (e.type === 'tree') out.set(e.path, 'dir');
      else if (e.type === 'blob') out.set(e.path, 'file');
    }
    for (const path of this.writes.keys()) {
      if (!path.startsWith(prefix)) continue;
      const [first, ...rest] = path.slice(prefix.length).split('/');
      out.set(first, rest.length ? 'dir' : 'file');
    }
    return [...out].map(([name, type]) => ({ name, type }));
  }

  async read(path: string): Promise<string> {
    const pending = this.writes.get(path);
    if (pending !== undefined) return pending;
    const entry = this.isRemoved(path) ? undefined : await this.entryAt(path);
    if (entry?.type !== 'blob')
      throw new Error(`${path} is not a file in the repository`);
    const { gitdir, cache } = this;
    const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
    return Buffer.from(blob).toString('utf8');
  }

  /** True when a file exists at `path` (pending writes included). */
  async exists(path: string): Promise<boolean> {
    if (this.writes.has(path)) return true;
    if (this.isRemoved(path)) return false;
    return (await this.entryAt(path))?.type === 'blob';
  }

  write(path: string, content: string): void {
    this.writes.set(path, content);
  }

  /** Leaves a file or folder (and the writes to it) out; a folder left empty disappears. */
  remove(path: string): void {
    for (const written of [...this.writes.keys()]) {
      if (written === path || written.startsWith(`${path}/`))
        this.writes.delete(written);
    }
    this.removals.add(path);
  }

  /** True when `path` or a folder above it was removed from the base tree. */
  private isRemoved(path: string): boolean {
    const parts = path ? path.split('/') : [];
    return parts.some((_, i) =>
      this.removals.has(parts.slice(0, i + 1).join('/')),
    );
  }

  /** Blob ids of the written files, once {@link TreeEditor.build} stored them: path → oid. */
  writtenBlobs(): ReadonlyMap<string, string> {
    return this.blobs;
  }

  /** The blob id of the file at `path` (of a pending write, once built). */
  async blobOid(path: string): Promise<string | undefined> {
    if (this.writes.has(path)) return this.blobs.get(path);
    if (this.isRemoved(path)) return undefined;
    const entry = await this.entryAt(path);
    return entry?.type === 'blob' ? entry.oid : undefined;
  }

  /** Writes the edited tree; returns its oid (equal to the original when nothing changed). */
  async build(): Promise<string> {
    const root = newNode();
    const nodeAt = (parts: string[]) => {
      let node = root;
      for (const part of parts) {
        if (!node.dirs.has(part)) node.dirs.set(part, newNode());
        node = node.dirs.get(part)!;
      }
      return node;
    };
    for (const path of this.removals) {
      const parts = path.split('/');
      nodeAt(parts.slice(0, -1)).removed.add(parts[parts.length - 1]);
    }
    for (const [path, content] of this.writes) {
      const parts = path.split('/');
      nodeAt(parts.slice(0, -1)).files.set(parts[parts.length - 1], content);
    }
    const { gitdir } = this;
    /** The tree of `dir`; undefined when it ends up empty (then it is left out). */
    const buildDir = async (
      dir: string,
      node: Node,
      baseGone: boolean,
    ): Promise<string | undefined> => {
      const base = baseGone ? [] : (await this.treeAt(dir)) ?? [];
      const entries = base.filter(e => !node.removed.has(e.path));
      /** The entry at `name`; a file where a folder goes (or the reverse) is an error. */
      const slot = (name: string, type: 'blob' | 'tree') => {
        const i = entries.findIndex(e => e.path === name);
        const full = dir ? `${dir}/${name}` : name;
        if (i >= 0 && entries[i].type !== type) {
          throw new Error(
            type === 'blob'
              ? `cannot write ${full}: the repository has a folder or submodule there`
              : `cannot create the folder ${full}: the repository has a file there`,
          );
        }
        const put = (entry: TreeEntry | undefined) => {
          if (entry && i >= 0) entries[i] = entry;
          else if (entry) entries.push(entry);
          else if (i >= 0) entries.splice(i, 1);
        };
        return { full, existing: entries[i], put };
      };
      for (const [name, content] of node.files) {
        const { full, existing, put } = slot(name, 'blob');
        const blob = Buffer.from(content, 'utf8');
        const oid = await git.writeBlob({ fs, gitdir, blob });
        const mode = existing?.mode === '100755' ? '100755' : '100644';
        put({ mode, path: name, oid, type: 'blob' });
        this.blobs.set(full, oid);
      }
      for (const [name, child] of node.dirs) {
        const onlyRemovals = child.files.size === 0 && child.dirs.size === 0;
        const existing = entries.find(e => e.path === name);
        // removals under a file (or under nothing) leave the tree as it is
        if (onlyRemovals && existing?.type !== 'tree') continue;
        const { full, put } = slot(name, 'tree');
        const oid = await buildDir(full, child, baseGone || !existing);
        put(
          oid ? { mode: '040000', path: name, oid, type: 'tree' } : undefined,
        );
      }
      if (entries.length === 0 && dir !== '') return undefined;
      return git.writeTree({ fs, gitdir, tree: entries });
    };
    return (await buildDir('', root, false))!;
  }
}
