import fs from 'node:fs';
import path from 'node:path';

// The rule every action follows (issue 15): its handler parses the input with the action's own
// schema, calls one engine use case and writes the outputs — at most 60 lines from
// `async handler(` to its closing brace — and the action imports at most 8 symbols of the
// engine. Measured on every action file, whoever wrote it.

const MAX_HANDLER_LINES = 60;
const MAX_ENGINE_SYMBOLS = 8;
const ENGINE = '@flux-bootstrap/plugin-flux-bootstrap-node';
/** Helpers that applied defaults and checks by hand, before the schemas did it. */
const GONE = [
  'withDefault',
  'isSet',
  'booleanInput',
  'parseTimeout',
  'normaliseSshKeyOptions',
];

const dir = __dirname;
const actionFiles = fs
  .readdirSync(dir)
  .filter(f => /^[a-zA-Z]+\.ts$/.test(f) && !f.endsWith('.examples.ts'))
  .sort();

/**
 * The handlers of a file and their length in lines, from `async handler(` to the brace that
 * closes it: the first later line at the handler's indentation that starts with `}` (the
 * sources are formatted by prettier, which CI checks).
 */
function handlerLengths(source: string): number[] {
  const lines = source.split('\n');
  const lengths: number[] = [];
  lines.forEach((line, start) => {
    const m = /^(\s*)async handler\(/.exec(line);
    if (!m) return;
    const end = lines.findIndex(
      (l, i) => i > start && l.startsWith(`${m[1]}}`),
    );
    lengths.push(end < 0 ? Infinity : end - start + 1);
  });
  return lengths;
}

/** The names a file imports from the engine (values and types). */
function engineImports(source: string): string[] {
  const imports = source.matchAll(
    /import\s+(?:type\s+)?\{([^}]*)\}\s*from\s*'([^']+)'/g,
  );
  return [...imports]
    .filter(m => m[2] === ENGINE)
    .flatMap(m => m[1].split(','))
    .map(name => name.replace(/\btype\b/, '').trim())
    .filter(Boolean);
}

describe('the measuring itself', () => {
  it('measures a handler to its closing brace and counts engine imports', () => {
    const source = [
      "import { a, type B } from '@flux-bootstrap/plugin-flux-bootstrap-node';",
      "import type { C } from '@flux-bootstrap/plugin-flux-bootstrap-node';",
      "import { d } from './shared/context';",
      'export const x = {',
      '    async handler(ctx) {',
      '      if (ctx) {',
      '      }',
      '    },',
      '};',
    ].join('\n');
    expect(handlerLengths(source)).toEqual([4]);
    expect(engineImports(source)).toEqual(['a', 'B', 'C']);
    expect(handlerLengths('    async handler(ctx) {\n')).toEqual([Infinity]);
  });
});

describe.each(actionFiles)('action file %s', file => {
  const source = fs.readFileSync(path.join(dir, file), 'utf8');

  it(`has handlers of at most ${MAX_HANDLER_LINES} lines`, () => {
    const lengths = handlerLengths(source);
    expect(lengths.length).toBeGreaterThan(0);
    for (const n of lengths) expect(n).toBeLessThanOrEqual(MAX_HANDLER_LINES);
  });

  it(`imports at most ${MAX_ENGINE_SYMBOLS} engine symbols`, () => {
    expect(engineImports(source).length).toBeLessThanOrEqual(
      MAX_ENGINE_SYMBOLS,
    );
  });

  it('applies no default or check by hand', () => {
    const used = GONE.filter(name => new RegExp(`\\b${name}\\b`).test(source));
    expect(used).toEqual([]);
  });
});
