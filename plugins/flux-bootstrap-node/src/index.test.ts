import fs from 'node:fs';
import path from 'node:path';
import * as engine from './index';

// The engine's public API is the explicit list in index.ts (issue 15): no `export *`, fewer than
// 100 symbols (values and types), and every value it names really exists at run time.

const source = fs.readFileSync(path.join(__dirname, 'index.ts'), 'utf8');

/** The names index.ts exports: `export { a, b } from …` and `export type { C } from …`. */
function exportedNames(text: string): { values: string[]; types: string[] } {
  const values: string[] = [];
  const types: string[] = [];
  for (const m of text.matchAll(/export\s+(type\s+)?\{([^}]*)\}/g)) {
    const names = m[2]
      .split(',')
      .map(n => n.trim())
      .filter(Boolean);
    for (const name of names) {
      if (m[1] || name.startsWith('type '))
        types.push(name.replace(/^type /, ''));
      else values.push(name);
    }
  }
  return { values, types };
}

describe('the engine public API', () => {
  const { values, types } = exportedNames(source);

  it('is an explicit list of fewer than 100 symbols', () => {
    expect(source).not.toMatch(/export\s*\*/);
    const all = [...values, ...types];
    expect(new Set(all).size).toBe(all.length);
    expect(all.length).toBeGreaterThan(0);
    expect(all.length).toBeLessThan(100);
  });

  it('exports at run time exactly the values it lists', () => {
    expect(Object.keys(engine).sort()).toEqual([...values].sort());
  });

  it('counts what it is given', () => {
    expect(
      exportedNames(
        "export { a, b } from './x';\nexport type { C } from './y';\nexport { type D, e } from './z';",
      ),
    ).toEqual({ values: ['a', 'b', 'e'], types: ['C', 'D'] });
  });
});
