import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Creates a fresh temporary directory (mode 0700) under the OS temp folder. */
export function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(
    path.join(os.tmpdir(), `${prefix.replace(/[^A-Za-z0-9_.-]/g, '-')}-`),
  );
}

/** Removes a directory tree; never throws. */
export function removeDir(dir: string | undefined): void {
  if (!dir) return;
  try {
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    // best effort
  }
}

/** True when this process runs as root (uid 0). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Writes a file with the given mode (the mode is applied even if the file existed). */
export function writeFileMode(
  file: string,
  content: string | Buffer,
  mode: number,
): void {
  fs.writeFileSync(file, content, { mode });
  fs.chmodSync(file, mode);
}
