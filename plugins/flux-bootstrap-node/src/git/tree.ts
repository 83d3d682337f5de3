import fs from 'node:fs';
import git, { TreeEntry } from 'isomorphic-git';
import type { DirectoryReader } from '../manifests/kustomization';

const TREE_MODE = '040000';

/**
 * A git tree (the branch head's, or empty) with pending file writes on top. Reads see the
 * writes; {@link TreeEditor.build} writes blobs and only the trees along changed paths.
 * Implements the engine's DirectoryReader so kustomization.yaml can be listed from it.
 * @public
 */
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

  private async treeAt(dir: string): Promise<TreeEntry[] | undefined> {
    if (this.trees.has(dir)) return this.trees.get(dir);
    let entries: TreeEntry[] | undefined;
    if (this.rootTree) {
      if (dir === '') {
        entries = (
          await git.readTree({
            fs,
            gitdir: this.gitdir,
            oid: this.rootTree,
            cache: this.cache,
          })
        ).tree;
      } else {
        const slash = dir.lastIndexOf('/');
        const parent = await this.treeAt(slash >= 0 ? dir.slice(0, slash) : '');
        const name = slash >= 0 ? dir.slice(slash + 1) : dir;
        const entry = parent?.find(e => e.path === name);
        entries =
          entry && entry.type === 'tree'
            ? (
                await git.readTree({
                  fs,
                  gitdir: this.gitdir,
                  oid: entry.oid,
                  cache: this.cache,
                })
              ).tree
            : undefined;
      }
    }
    this.trees.set(dir, entries);
    return entries;
  }

  private async entryAt(path: string): Promise<TreeEntry | undefined> {
    const slash = path.lastIndexOf('/');
    const parent = await this.treeAt(slash >= 0 ? path.slice(0, slash) : '');
    return parent?.find(
      e => e.path === (slash >= 0 ? path.slice(slash + 1) : path),
    );
  }

  async list(
    dir: string,
  ): Promise<Array<{ name: string; type: 'file' | 'dir' }>> {
    const out = new Map<string, 'file' | 'dir'>();
    const prefix = dir ? `${dir}/` : '';
    if (!this.isRemoved(dir)) {
      for (const e of (await this.treeAt(dir)) ?? []) {
        if (this.removals.has(`${prefix}${e.path}`)) continue;
        if (e.type === 'tree') out.set(e.path, 'dir');
        else if (e.type === 'blob') out.set(e.path, 'file');
      }
    }
    for (const path of this.writes.keys()) {
      if (!path.startsWith(prefix)) continue;
      const rest = path.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash < 0) out.set(rest, 'file');
      else out.set(rest.slice(0, slash), 'dir');
    }
    return [...out.entries()].map(([name, type]) => ({ name, type }));
  }

  async read(path: string): Promise<string> {
    const pending = this.writes.get(path);
    if (pending !== undefined) return pending;
    const entry = this.isRemoved(path) ? undefined : await this.entryAt(path);
    if (!entry || entry.type !== 'blob')
      throw new Error(`${path} is not a file in the repository`);
    const { blob } = await git.readBlob({
      fs,
      gitdir: this.gitdir,
      oid: entry.oid,
      cache: this.cache,
    });
    return Buffer.from(blob).toString('utf8');
  }

  /** True when a file exists at `path` (pending writes included). */
  async exists(path: string): Promise<boolean> {
    if (this.writes.has(path)) return true;
    if (this.isRemoved(path)) return false;
    const entry = await this.entryAt(path);
    return !!entry && entry.type === 'blob';
  }

  write(path: string, content: string): void {
    this.writes.set(path, content);
  }

  /**
   * Leaves a file or a whole folder of the base tree out of the new tree, with the writes made
   * to it so far. A folder left empty by that disappears too (git has no empty folders).
   */
  remove(path: string): void {
    const prefix = `${path}/`;
    for (const written of [...this.writes.keys()]) {
      if (written === path || written.startsWith(prefix))
        this.writes.delete(written);
    }
    this.removals.add(path);
  }

  /** Paths removed so far. */
  removed(): string[] {
    return [...this.removals];
  }

  /** True when `path` or a folder above it was removed from the base tree. */
  private isRemoved(path: string): boolean {
    if (path === '') return false;
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) {
      if (this.removals.has(parts.slice(0, i).join('/'))) return true;
    }
    return false;
  }

  /** Paths written so far. */
  written(): string[] {
    return [...this.writes.keys()];
  }

  /** Blob ids of the written files, once {@link TreeEditor.build} stored them: path → oid. */
  writtenBlobs(): ReadonlyMap<string, string> {
    return this.blobs;
  }

  /** The blob id of the file at `path` in the base tree (not a pending write). */
  async blobOid(path: string): Promise<string | undefined> {
    if (this.writes.has(path)) return this.blobs.get(path);
    if (this.isRemoved(path)) return undefined;
    const entry = await this.entryAt(path);
    return entry?.type === 'blob' ? entry.oid : undefined;
  }

  /** Writes the edited tree; returns its oid (equal to the original when nothing changed). */
  async build(): Promise<string> {
    type Node = {
      files: Map<string, string>;
      dirs: Map<string, Node>;
      removed: Set<string>;
    };
    const newNode = (): Node => ({
      files: new Map(),
      dirs: new Map(),
      removed: new Set(),
    });
    const root: Node = newNode();
    const nodeAt = (parts: string[]): Node => {
      let node = root;
      for (const part of parts) {
        let next = node.dirs.get(part);
        if (!next) {
          next = newNode();
          node.dirs.set(part, next);
        }
        node = next;
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
    /** The tree of `dir`, or undefined when it ends up empty (then it is left out). */
    const buildDir = async (
      dir: string,
      node: Node,
      baseGone: boolean,
    ): Promise<string | undefined> => {
      const entries = baseGone
        ? []
        : ((await this.treeAt(dir)) ?? []).filter(
            e => !node.removed.has(e.path),
          );
      const put = (entry: TreeEntry) => {
        const i = entries.findIndex(e => e.path === entry.path);
        if (i >= 0) entries[i] = entry;
        else entries.push(entry);
      };
      for (const [name, content] of node.files) {
        const existing = entries.find(e => e.path === name);
        const full = dir ? `${dir}/${name}` : name;
        if (existing && existing.type !== 'blob') {
          throw new Error(
            `cannot write ${full}: the repository has a folder or submodule there`,
          );
        }
        const oid = await git.writeBlob({
          fs,
          gitdir: this.gitdir,
          blob: Buffer.from(content, 'utf8'),
        });
        this.blobs.set(full, oid);
        const mode =
          existing && existing.mode === '100755' ? '100755' : '100644';
        put({ mode, path: name, oid, type: 'blob' });
      }
      for (const [name, child] of node.dirs) {
        const existing = entries.find(e => e.path === name);
        const full = dir ? `${dir}/${name}` : name;
        if (existing && existing.type !== 'tree') {
          if (child.files.size === 0 && child.dirs.size === 0) continue;
          throw new Error(
            `cannot create the folder ${full}: the repository has a file there`,
          );
        }
        const oid = await buildDir(
          full,
          child,
          baseGone || node.removed.has(name) || !existing,
        );
        if (oid) put({ mode: TREE_MODE, path: name, oid, type: 'tree' });
        else if (existing) entries.splice(entries.indexOf(existing), 1);
      }
      if (entries.length === 0 && dir !== '') return undefined;
      return git.writeTree({ fs, gitdir: this.gitdir, tree: entries });
    };
    return (await buildDir('', root, false))!;
  }
}
