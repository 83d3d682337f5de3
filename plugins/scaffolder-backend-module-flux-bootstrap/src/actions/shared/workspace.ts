import fs from 'node:fs/promises';
import path from 'node:path';
import { InputValidationError } from '@flux-bootstrap/plugin-flux-bootstrap-node';

/** Writes files into the task workspace at their repository paths (never outside it). */
export async function writeToWorkspace(
  workspacePath: string,
  files: Record<string, string>,
): Promise<string[]> {
  const root = path.resolve(workspacePath);
  const written: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const target = path.resolve(root, rel);
    if (!target.startsWith(`${root}${path.sep}`)) {
      throw new InputValidationError(
        'path',
        `${rel} would be written outside the workspace`,
      );
    }
    await fs.mkdir(path.dirname(target), { recursive: true });
    await fs.writeFile(target, content, 'utf8');
    written.push(rel);
  }
  return written;
}
