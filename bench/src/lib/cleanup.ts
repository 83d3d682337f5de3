import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Everything a benchmark starts (servers, child processes, temp folders) registers its release
 * here, so a finished, failed or interrupted run leaves nothing behind. Releases run in reverse
 * order of registration.
 */
type Release = { what: string; fn: () => unknown | Promise<unknown> };
const stack: Release[] = [];

export function defer(
  what: string,
  fn: () => unknown | Promise<unknown>,
): () => Promise<void> {
  const entry: Release = { what, fn };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    await entry.fn();
  };
}

/** A fresh temp folder, removed by {@link releaseAll} (or earlier through the returned release). */
export function tempDir(prefix: string): {
  dir: string;
  remove: () => Promise<void>;
} {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `flux-bench-${prefix}-`));
  const remove = defer(`temp dir ${dir}`, () =>
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 }),
  );
  return { dir, remove };
}

/** Runs every pending release, newest first; errors are reported, never thrown. */
export async function releaseAll(
  log: (line: string) => void = () => {},
): Promise<void> {
  while (stack.length) {
    const entry = stack.pop()!;
    try {
      await entry.fn();
    } catch (e) {
      log(`cleanup of ${entry.what} failed: ${(e as Error).message}`);
    }
  }
}

/** Scope helper: releases registered while `fn` runs are released when it ends. */
export async function scoped<T>(fn: () => Promise<T>): Promise<T> {
  const mark = stack.length;
  try {
    return await fn();
  } finally {
    while (stack.length > mark) {
      const entry = stack.pop()!;
      try {
        await entry.fn();
      } catch (e) {
        // eslint-disable-next-line no-console
        console.error(
          `cleanup of ${entry.what} failed: ${(e as Error).message}`,
        );
      }
    }
  }
}
