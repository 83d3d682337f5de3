import fs from 'node:fs';
import path from 'node:path';
import type { FluxBundleFiles } from '../components';

/** The project's stand-in for Flux v2.9.4's release bundle (see bundle/README.md). */
export function readFixtureBundle(): FluxBundleFiles {
  // eslint-disable-next-line no-restricted-syntax
  const dir = path.join(__dirname, 'bundle');
  const files: FluxBundleFiles = {};
  for (const name of fs.readdirSync(dir).filter(n => n.endsWith('.yaml')).sort()) {
    files[name] = fs.readFileSync(path.join(dir, name), 'utf8');
  }
  return files;
}

/** Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it (review the diff by hand). */
export function expectGolden(name: string, actual: string): void {
  // eslint-disable-next-line no-restricted-syntax
  const file = path.join(__dirname, 'golden', name);
  if (process.env.UPDATE_GOLDEN === '1') {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, actual);
  }
  const expected = fs.readFileSync(file, 'utf8');
  expect(actual).toBe(expected);
}
