import fs from 'node:fs';
import git, { TreeEntry } from 'isomorphic-git';
import type { DirectoryReader } from '../manifests/kustomization';

type Node = { files: Map<string, string>; dirs: Map<string, Node> };
const split = (path: string) => {
  const slash = path.lastIndexOf('/');
  return [path.slice(0, Math.max(slash, 0)), path.slice(slash + 1)];
};

/**
 * A git tree (the branch head's, or empty) with pending file writes on top. Reads see the
 * writes; {@link TreeEditor.build} writes blobs and only the trees along changed paths. As a
 * DirectoryReader it lets kustomization.yaml be generated from it.
 * @public
 */
export class TreeEditor implements DirectoryReader {
  private readonly cache: Record<string, unknown> = {};
  private readonly trees = new Map<string, TreeEntry[] | undefined>();
  private readonly writes = new Map<string, string>();
  private readonly blobs = new Map<string, string>();

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
      let entries: TreeEntry[] | undefined;
      if (this.rootTree && dir === '')
        entries = await this.readTree(this.rootTree);
      else if (this.rootTree) {
        const entry = await this.entryAt(dir);
        if (entry?.type === 'tree') entries = await this.readTree(entry.oid);
      }
      this.trees.set(dir, entries);
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
    for (const e of (await this.treeAt(dir)) ?? []) {
      if (e.type === 'tree') out.set(e.path, 'dir');
      else if (e.type === 'blob') out.set(e.path, 'file');
    }
    const prefix = dir ? `${dir}/` : '';
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
    const entry = await this.entryAt(path);
    if (entry?.type !== 'blob')
      throw new Error(`${path} is not a file in the repository`);
    const { gitdir, cache } = this;
    const { blob } = await git.readBlob({ fs, gitdir, oid: entry.oid, cache });
    return Buffer.from(blob).toString('utf8');
  }

  /** True when a file exists at `path` (pending writes included). */
  async exists(path: string): Promise<boolean> {
    return this.writes.has(path) || (await this.entryAt(path))?.type === 'blob';
  }

  write(path: string, content: string): void {
    this.writes.set(path, content);
  }

  /** Blob ids of the written files, once {@link TreeEditor.build} stored them: path → oid. */
  writtenBlobs(): ReadonlyMap<string, string> {
    return this.blobs;
  }

  /** The blob id of the file at `path` (of a pending write, once built). */
  async blobOid(path: string): Promise<string | undefined> {
    if (this.writes.has(path)) return this.blobs.get(path);
    const entry = await this.entryAt(path);
    return entry?.type === 'blob' ? entry.oid : undefined;
  }

  /** Writes the edited tree; returns its oid (equal to the original when nothing changed). */
  async build(): Promise<string> {
    const root: Node = { files: new Map(), dirs: new Map() };
    for (const [path, content] of this.writes) {
      const parts = path.split('/');
      let node = root;
      for (const part of parts.slice(0, -1)) {
        if (!node.dirs.has(part))
          node.dirs.set(part, { files: new Map(), dirs: new Map() });
        node = node.dirs.get(part)!;
      }
      node.files.set(parts[parts.length - 1], content);
    }
    const { gitdir } = this;
    const buildDir = async (dir: string, node: Node): Promise<string> => {
      const entries = [...((await this.treeAt(dir)) ?? [])];
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
        const put = (entry: TreeEntry) => {
          if (i >= 0) entries[i] = entry;
          else entries.push(entry);
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
        const { full, put } = slot(name, 'tree');
        const oid = await buildDir(full, child);
        put({ mode: '040000', path: name, oid, type: 'tree' });
      }
      return git.writeTree({ fs, gitdir, tree: entries });
    };
    return buildDir('', root);
  }
}
