/*
 * Generators of the reference pages in docs/reference/ and the checks that keep the
 * documentation honest. Used by `node docs/scripts/generate.js` (writes the pages) and by the
 * docs tests (fail when a committed page differs from what this produces):
 *
 * - plugins/scaffolder-backend-module-flux-bootstrap/src/docs.test.ts: the action reference
 *   against the JSON schemas the scaffolder serves for our actions, and every action snippet in
 *   docs/ against those schemas;
 * - plugins/flux-bootstrap-node/src/config/docs.test.ts: the configuration reference against
 *   config.d.ts, and the keys the code reads against config.d.ts and the page.
 *
 * A generated part of a page sits between two markers:
 *
 *   <!-- BEGIN GENERATED <id> … -->
 *   …
 *   <!-- END GENERATED <id> -->
 *
 * Everything outside the markers is written by hand and kept as it is.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import YAML from 'yaml';

/** The part of prettier 2's API used here (prettier 2 ships no type declarations). */
interface Prettier {
  format(text: string, options: Record<string, unknown>): string;
  resolveConfig: { sync(file: string): Record<string, unknown> | null };
}
// eslint-disable-next-line @typescript-eslint/no-var-requires
const prettier: Prettier = require('prettier');

/** The repository root. */
export const REPO_ROOT = path.resolve(__dirname, '../..');
/** The action reference page. */
export const ACTIONS_PAGE = path.join(REPO_ROOT, 'docs/reference/actions.md');
/** The configuration reference page. */
export const CONFIG_PAGE = path.join(
  REPO_ROOT,
  'docs/reference/configuration.md',
);
/** The engine's config schema, the single source of the `fluxBootstrap.*` keys. */
export const CONFIG_SCHEMA = path.join(
  REPO_ROOT,
  'plugins/flux-bootstrap-node/config.d.ts',
);
/** The command that regenerates the pages. */
export const GENERATE_COMMAND = 'node docs/scripts/generate.js';

// ------------------------------------------------------------------ generated blocks

const BEGIN = /<!-- BEGIN GENERATED (\S+)[^\n]*?-->\n/g;

function endMarker(id: string): string {
  return `<!-- END GENERATED ${id} -->`;
}

/** The generated blocks of a page, by id, in page order. */
export function readGeneratedBlocks(page: string): Map<string, string> {
  const blocks = new Map<string, string>();
  for (const m of page.matchAll(BEGIN)) {
    const id = m[1];
    const start = m.index! + m[0].length;
    const end = page.indexOf(endMarker(id), start);
    if (end < 0) {
      throw new Error(`generated block ${id} has no "${endMarker(id)}"`);
    }
    if (blocks.has(id)) throw new Error(`generated block ${id} appears twice`);
    blocks.set(id, page.slice(start, end));
  }
  return blocks;
}

/**
 * Replaces the content of every generated block with `render(id)`. Throws when the page has a
 * block `render` does not know (it returns undefined).
 */
export function replaceGeneratedBlocks(
  page: string,
  render: (id: string) => string | undefined,
): string {
  let out = '';
  let pos = 0;
  for (const m of page.matchAll(BEGIN)) {
    const id = m[1];
    const start = m.index! + m[0].length;
    const end = page.indexOf(endMarker(id), start);
    if (end < 0)
      throw new Error(`generated block ${id} has no "${endMarker(id)}"`);
    const content = render(id);
    if (content === undefined) {
      throw new Error(`the page has a generated block "${id}" nobody renders`);
    }
    out += `${page.slice(pos, start)}\n${content.trim()}\n\n`;
    pos = end;
  }
  return out + page.slice(pos);
}

/** Formats markdown the way `prettier --check .` expects it in this repository. */
export function formatMarkdown(text: string, file: string): string {
  const options = prettier.resolveConfig.sync(file) ?? {};
  return prettier.format(text, { ...options, parser: 'markdown' });
}

// ------------------------------------------------------------------ markdown helpers

/** Text for a table cell: one line, pipes escaped, `<…>` kept visible. */
export function cell(text: string): string {
  // Outside code spans `<x>` would be read as an HTML tag and vanish; inside them it must stay.
  return text
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\|/g, '\\|')
    .split(/(`[^`]*`)/)
    .map(part =>
      part.startsWith('`')
        ? part
        : part.replace(/</g, '&lt;').replace(/>/g, '&gt;'),
    )
    .join('');
}

function code(text: string): string {
  return `\`${text}\``;
}

// ------------------------------------------------------------------ actions

/** The part of JSON schema zod-to-json-schema produces for our actions. */
export interface JsonSchema {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  default?: unknown;
  anyOf?: JsonSchema[];
}

/**
 * A scaffolder action as `createTemplateAction` returns it: `schema.input` / `schema.output`
 * are the JSON schemas converted from the zod callbacks — the same the scaffolder serves at
 * `GET /api/scaffolder/v2/actions` and shows on its "Installed actions" page.
 */
export interface ActionLike {
  id: string;
  /** One sentence: what the action does (the scaffolder's action list shows it). */
  description?: string;
  /**
   * The detail kept next to the action (its `*.examples.ts`): markdown rendered under the
   * description, links relative to docs/reference/actions.md.
   */
  docs?: string;
  supportsDryRun?: boolean;
  examples?: { description: string; example: string }[];
  schema?: { input?: unknown; output?: unknown };
}

/** A short type name for a schema: `string`, `integer`, `"a" | "b"`, `string[]`, `object[]`. */
export function schemaType(schema: JsonSchema): string {
  if (schema.enum) return schema.enum.map(v => code(String(v))).join(' | ');
  if (schema.anyOf) return schema.anyOf.map(schemaType).join(' | ');
  const type = Array.isArray(schema.type)
    ? schema.type.join(' | ')
    : schema.type;
  if (type === 'array') {
    const items = schema.items ? schemaType(schema.items) : 'any';
    return items.includes(' ') ? `(${items})[]` : `${items}[]`;
  }
  return type ?? 'any';
}

interface SchemaRow {
  name: string;
  type: string;
  required: boolean;
  description: string;
  /** The schema's `default` (what the action applies when the input is omitted). */
  default?: unknown;
}

/** A default for a table cell: `main`, `true`, `[]`, `""`. */
export function formatDefault(value: unknown): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) {
    return value.length
      ? value.map(v => code(String(v))).join(', ')
      : code('[]');
  }
  return code(value === '' ? '""' : String(value));
}

/** One row per property; properties of objects in arrays follow as `parent[].child`. */
function schemaRows(schema: JsonSchema | undefined, prefix = ''): SchemaRow[] {
  const rows: SchemaRow[] = [];
  const required = new Set(schema?.required ?? []);
  for (const [name, prop] of Object.entries(schema?.properties ?? {})) {
    const full = `${prefix}${name}`;
    rows.push({
      name: full,
      type: schemaType(prop),
      required: required.has(name),
      description: prop.description ?? '',
      default: prop.default,
    });
    if (prop.type === 'object' && prop.properties) {
      rows.push(...schemaRows(prop, `${full}.`));
    }
    if (prop.type === 'array' && prop.items?.properties) {
      rows.push(...schemaRows(prop.items, `${full}[].`));
    }
  }
  return rows;
}

/** Actions whose dry run reads (the cluster, Bitbucket, the catalog) to list what it would remove. */
const DRY_RUN_READS = new Set([
  'flux:uninstall',
  'bitbucket:delete-access-keys',
  'flux:remove-cluster-path',
  'fleet:unregister-cluster',
]);

/**
 * The generated part of one action's reference: the one-sentence description, the detail kept
 * next to the action, inputs (with their defaults), outputs, examples.
 */
export function renderActionBlock(action: ActionLike): string {
  const input = action.schema?.input as JsonSchema | undefined;
  const output = action.schema?.output as JsonSchema | undefined;
  const lines: string[] = [];
  lines.push(action.description ?? '', '');
  if (action.docs?.trim()) lines.push(action.docs.trim(), '');
  lines.push(
    !action.supportsDryRun
      ? 'Dry run: not supported (the scaffolder skips the step and invents its outputs).'
      : DRY_RUN_READS.has(action.id)
      ? 'Dry run: supported (the action reads what it needs to list exactly what it would remove, and writes nothing).'
      : 'Dry run: supported (the action runs in a template dry run and sends nothing).',
    '',
  );

  // Inputs say which are required and what an omitted one defaults to; outputs which may be
  // missing.
  const inputRows = schemaRows(input);
  const withDefaults = inputRows.some(r => r.default !== undefined);
  lines.push('#### Inputs', '');
  if (inputRows.length === 0) lines.push('None.', '');
  else {
    lines.push(
      `| Input | Type | Required |${
        withDefaults ? ' Default |' : ''
      } Description |`,
      `| --- | --- | --- |${withDefaults ? ' --- |' : ''} --- |`,
    );
    for (const r of inputRows) {
      lines.push(
        `| ${code(r.name)} | ${cell(r.type)} | ${r.required ? 'yes' : ''} |${
          withDefaults ? ` ${formatDefault(r.default)} |` : ''
        } ${cell(r.description)} |`,
      );
    }
    lines.push('');
  }
  const outputRows = schemaRows(output);
  lines.push('#### Outputs', '');
  if (outputRows.length === 0) lines.push('None.', '');
  else {
    lines.push('| Output | Type | Optional | Description |');
    lines.push('| --- | --- | --- | --- |');
    for (const r of outputRows) {
      lines.push(
        `| ${code(r.name)} | ${cell(r.type)} | ${
          r.required ? '' : 'yes'
        } | ${cell(r.description)} |`,
      );
    }
    lines.push('');
  }

  const examples = action.examples ?? [];
  if (examples.length) {
    lines.push('#### Examples', '');
    for (const e of examples) {
      lines.push(cell(e.description), '');
      lines.push('```yaml', e.example.trimEnd(), '```', '');
    }
  }
  return lines.join('\n');
}

/** Block id of an action in docs/reference/actions.md. */
export function actionBlockId(actionId: string): string {
  return `action:${actionId}`;
}

/** Renders docs/reference/actions.md from its current text and the actions. */
export function renderActionsPage(page: string, actions: ActionLike[]): string {
  const byBlock = new Map(actions.map(a => [actionBlockId(a.id), a]));
  const replaced = replaceGeneratedBlocks(page, id => {
    const action = byBlock.get(id);
    return action ? renderActionBlock(action) : undefined;
  });
  return formatMarkdown(replaced, ACTIONS_PAGE);
}

// ------------------------------------------------------------------ action snippets in docs

/** A fenced code block of a markdown page. */
export interface CodeBlock {
  file: string;
  line: number;
  lang: string;
  text: string;
}

/** Every fenced code block of a markdown text. */
export function codeBlocks(file: string, markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(```+|~~~+)\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const fence = open[2];
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !lines[j].trim().startsWith(fence); j++) {
      body.push(lines[j].slice(open[1].length));
    }
    blocks.push({ file, line: i + 1, lang: open[3], text: body.join('\n') });
    i = j;
  }
  return blocks;
}

/** A scaffolder step found in a YAML snippet. */
export interface StepSnippet {
  where: string;
  id?: string;
  action: string;
  input: Record<string, unknown>;
}

/** Template steps (`steps: [...]`, or a bare list of steps) in a YAML text. */
export function stepsOf(where: string, yamlText: string): StepSnippet[] {
  const docs = YAML.parseAllDocuments(yamlText);
  const steps: StepSnippet[] = [];
  for (const doc of docs) {
    if (doc.errors.length) {
      throw new Error(`${where}: YAML error: ${doc.errors[0].message}`);
    }
    const value = doc.toJS() as unknown;
    const visit = (node: unknown) => {
      if (Array.isArray(node)) {
        node.forEach(visit);
        return;
      }
      if (!node || typeof node !== 'object') return;
      const obj = node as Record<string, unknown>;
      if (typeof obj.action === 'string') {
        steps.push({
          where,
          id: typeof obj.id === 'string' ? obj.id : undefined,
          action: obj.action,
          input: (obj.input ?? {}) as Record<string, unknown>,
        });
      }
      for (const v of Object.values(obj)) visit(v);
    };
    visit(value);
  }
  return steps;
}

/**
 * `${{ steps.<id>.output.<name> }}` references (also `steps['<id>']`) in a YAML text whose step
 * is defined in the same text and runs one of `actions`, and whose `<name>` is not an output of
 * that action.
 */
export function badOutputReferences(
  where: string,
  yamlText: string,
  actions: ActionLike[],
): string[] {
  const steps = stepsOf(where, yamlText);
  const problems: string[] = [];
  const re =
    /steps(?:\.([A-Za-z_$][\w$]*)|\[['"]([^'"]+)['"]\])\.output\.([A-Za-z_$][\w$]*)/g;
  for (const m of yamlText.matchAll(re)) {
    const id = m[1] ?? m[2];
    const step = steps.find(s => s.id === id);
    const action = step && actions.find(a => a.id === step.action);
    if (!action) continue;
    const outputs =
      (action.schema?.output as JsonSchema | undefined)?.properties ?? {};
    if (!(m[3] in outputs)) {
      problems.push(
        `${where}: steps.${id}.output.${m[3]} — ${action.id} has no output "${
          m[3]
        }" (outputs: ${Object.keys(outputs).join(', ')})`,
      );
    }
  }
  return problems;
}

/** True for a value rendered by the scaffolder at run time (`${{ … }}`). */
export function isTemplated(value: unknown): boolean {
  return typeof value === 'string' && value.includes('${{');
}

/**
 * Checks a value against the subset of JSON schema our actions use. Templated strings
 * (`${{ … }}`) stand for any type. Returns the problems, empty when it fits.
 */
export function checkValue(
  value: unknown,
  schema: JsonSchema,
  at: string,
): string[] {
  if (isTemplated(value)) return [];
  const problems: string[] = [];
  const type = Array.isArray(schema.type) ? schema.type : [schema.type];
  const actual = Array.isArray(value)
    ? 'array'
    : value === null
    ? 'null'
    : Number.isInteger(value)
    ? 'integer'
    : typeof value;
  const fits = type.some(
    t =>
      t === undefined ||
      t === actual ||
      (t === 'number' && actual === 'integer'),
  );
  if (!fits) {
    return [`${at}: expected ${type.join(' | ')}, got ${actual}`];
  }
  if (schema.enum && !schema.enum.includes(value)) {
    problems.push(
      `${at}: ${JSON.stringify(value)} is not one of ${schema.enum
        .map(v => JSON.stringify(v))
        .join(', ')}`,
    );
  }
  if (actual === 'array' && schema.items) {
    (value as unknown[]).forEach((v, i) =>
      problems.push(...checkValue(v, schema.items!, `${at}[${i}]`)),
    );
  }
  if (actual === 'object' && schema.properties) {
    problems.push(
      ...checkObject(value as Record<string, unknown>, schema, `${at}.`),
    );
  }
  return problems;
}

function checkObject(
  obj: Record<string, unknown>,
  schema: JsonSchema,
  prefix: string,
): string[] {
  const problems: string[] = [];
  const props = schema.properties ?? {};
  for (const [key, v] of Object.entries(obj)) {
    const prop = props[key];
    if (!prop) {
      problems.push(
        `${prefix}${key} is not an input of the schema (known: ${Object.keys(
          props,
        ).join(', ')})`,
      );
      continue;
    }
    problems.push(...checkValue(v, prop, `${prefix}${key}`));
  }
  for (const key of schema.required ?? []) {
    if (!(key in obj)) problems.push(`${prefix}${key} is required`);
  }
  return problems;
}

/** Problems of a step's `input` against the action's input schema. */
export function checkStepInput(
  step: StepSnippet,
  action: ActionLike,
): string[] {
  const schema = action.schema?.input as JsonSchema | undefined;
  if (!schema) return [`${step.where}: ${action.id} has no input schema`];
  return checkObject(step.input, schema, 'input.').map(
    p => `${step.where} (${step.action}): ${p}`,
  );
}

// ------------------------------------------------------------------ configuration

/** One key of config.d.ts. */
export interface ConfigKey {
  /** Dotted path, `[]` for array items and `<name>` for map keys, e.g. `fluxBootstrap.bitbucketServer[].host`. */
  key: string;
  type: string;
  /** Required inside its parent object. */
  required: boolean;
  description: string;
}

function jsDocText(node: ts.Node): string {
  const parts: string[] = [];
  for (const doc of ts.getJSDocCommentsAndTags(node)) {
    if (ts.isJSDoc(doc)) {
      const text = ts.getTextOfJSDocComment(doc.comment);
      if (text) parts.push(text);
    }
  }
  return parts.join(' ').replace(/\s+/g, ' ').trim();
}

function propertyName(name: ts.PropertyName): string {
  if (ts.isIdentifier(name) || ts.isStringLiteral(name)) return name.text;
  throw new Error(`config.d.ts: unsupported property name ${name.getText()}`);
}

function walkType(
  type: ts.TypeNode,
  key: string,
  out: ConfigKey[],
): string | undefined {
  // Array<{…}> and {…}[]
  let element: ts.TypeNode | undefined;
  if (ts.isArrayTypeNode(type)) element = type.elementType;
  if (
    ts.isTypeReferenceNode(type) &&
    type.typeName.getText() === 'Array' &&
    type.typeArguments?.length === 1
  ) {
    element = type.typeArguments[0];
  }
  if (element) {
    if (ts.isTypeLiteralNode(element)) {
      walkMembers(element.members, `${key}[]`, out);
      return 'object[]';
    }
    return `${element.getText()}[]`;
  }
  if (ts.isTypeLiteralNode(type)) {
    walkMembers(type.members, key, out);
    const entry = type.members.find(ts.isIndexSignatureDeclaration);
    return entry?.type && type.members.length === 1
      ? `map of ${out.find(r => r.key.startsWith(`${key}.<`))?.type}`
      : 'object';
  }
  return undefined;
}

function walkMembers(
  members: ts.NodeArray<ts.TypeElement>,
  prefix: string,
  out: ConfigKey[],
): void {
  for (const m of members) {
    if (ts.isPropertySignature(m) && m.type) {
      const key = `${prefix}.${propertyName(m.name)}`;
      const row: ConfigKey = {
        key,
        type: '',
        required: !m.questionToken,
        description: jsDocText(m),
      };
      out.push(row);
      row.type = walkType(m.type, key, out) ?? m.type.getText();
    } else if (ts.isIndexSignatureDeclaration(m) && m.type) {
      const param = m.parameters[0];
      const key = `${prefix}.<${param.name.getText()}>`;
      const row: ConfigKey = {
        key,
        type: '',
        required: false,
        description: jsDocText(m),
      };
      out.push(row);
      row.type = walkType(m.type, key, out) ?? m.type.getText();
    } else {
      throw new Error(
        `config.d.ts: unsupported member ${m.getText().slice(0, 80)}`,
      );
    }
  }
}

/** Every key declared in a config.d.ts (`export interface Config { … }`), in file order. */
export function configKeys(source: string): ConfigKey[] {
  const file = ts.createSourceFile(
    'config.d.ts',
    source,
    ts.ScriptTarget.Latest,
    true,
  );
  const config = file.statements.find(
    (s): s is ts.InterfaceDeclaration =>
      ts.isInterfaceDeclaration(s) && s.name.text === 'Config',
  );
  if (!config) throw new Error('config.d.ts declares no interface Config');
  const out: ConfigKey[] = [];
  for (const m of config.members) {
    if (!ts.isPropertySignature(m) || !m.type) continue;
    const key = propertyName(m.name);
    const row: ConfigKey = {
      key,
      type: '',
      required: !m.questionToken,
      description: jsDocText(m),
    };
    out.push(row);
    row.type = walkType(m.type, key, out) ?? m.type.getText();
  }
  return out;
}

/** The generated table of docs/reference/configuration.md. */
export function renderConfigBlock(source: string): string {
  const lines = [
    'Generated from `plugins/flux-bootstrap-node/config.d.ts`. "Required" means required when its parent is present.',
    '',
    '| Key | Type | Required | Description |',
    '| --- | --- | --- | --- |',
  ];
  for (const k of configKeys(source)) {
    lines.push(
      `| ${code(k.key)} | ${cell(k.type)} | ${k.required ? 'yes' : ''} | ${cell(
        k.description,
      )} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Block id of the config table. */
export const CONFIG_BLOCK_ID = 'config:fluxBootstrap';

/** Renders docs/reference/configuration.md from its current text and config.d.ts. */
export function renderConfigPage(page: string, configSource: string): string {
  const replaced = replaceGeneratedBlocks(page, id =>
    id === CONFIG_BLOCK_ID ? renderConfigBlock(configSource) : undefined,
  );
  return formatMarkdown(replaced, CONFIG_PAGE);
}

// ------------------------------------------------------------------ the docs site

/** Markdown pages under docs/ (relative paths), excluding docs/scripts. */
export function docsPages(): string[] {
  const root = path.join(REPO_ROOT, 'docs');
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (full !== path.join(root, 'scripts')) walk(full);
      } else if (e.name.endsWith('.md')) {
        out.push(path.relative(root, full).split(path.sep).join('/'));
      }
    }
  };
  walk(root);
  return out.sort();
}

/** The page paths listed in mkdocs.yml's `nav`. */
export function mkdocsNavPages(): string[] {
  const mkdocs = YAML.parse(
    fs.readFileSync(path.join(REPO_ROOT, 'mkdocs.yml'), 'utf8'),
  ) as { nav?: unknown };
  const pages: string[] = [];
  const visit = (node: unknown) => {
    if (typeof node === 'string') pages.push(node);
    else if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      Object.values(node as Record<string, unknown>).forEach(visit);
    }
  };
  visit(mkdocs.nav);
  return pages.filter(p => !/^[a-z]+:\/\//.test(p));
}

/** Relative links (`[text](target)`, `![alt](target)`) of a page that point nowhere. */
export function brokenLinks(page: string): string[] {
  const root = path.join(REPO_ROOT, 'docs');
  const file = path.join(root, page);
  const text = fs
    .readFileSync(file, 'utf8')
    // links inside code are examples, not links
    .replace(/```[\s\S]*?```/g, '')
    .replace(/`[^`\n]*`/g, '');
  const broken: string[] = [];
  for (const m of text.matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    const target = m[1];
    if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
    const [rel, anchor] = target.split('#');
    const resolved = path.resolve(path.dirname(file), decodeURI(rel));
    if (!fs.existsSync(resolved)) {
      broken.push(`${page}: ${target} (no such file)`);
      continue;
    }
    if (anchor && resolved.endsWith('.md')) {
      const anchors = headingAnchors(fs.readFileSync(resolved, 'utf8'));
      if (!anchors.has(anchor)) {
        broken.push(`${page}: ${target} (no heading #${anchor})`);
      }
    }
  }
  return broken;
}

/** Anchors of a page's headings, as mkdocs (Python-Markdown toc) makes them. */
export function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const text = markdown.replace(/```[\s\S]*?```/g, '');
  for (const m of text.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = m[1]
      .replace(/`/g, '')
      .replace(/<[^>]+>/g, '')
      .toLowerCase()
      .replace(/[^\w\s-]/g, '')
      .trim()
      .replace(/[\s-]+/g, '-');
    let anchor = base;
    for (let i = 1; anchors.has(anchor); i++) anchor = `${base}_${i}`;
    anchors.add(anchor);
  }
  return anchors;
}
