import YAML from 'yaml';

/** A Kubernetes object as plain data. */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    [k: string]: unknown;
  };
  [key: string]: unknown;
};

/**
 * Parses a multi-document YAML stream into plain objects; empty documents are skipped.
 * Parsing follows YAML 1.2 (as kustomize's kyaml does); `source` names the file in errors.
 */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  const docs = YAML.parseAllDocuments(text, {
    uniqueKeys: true,
    prettyErrors: false,
  });
  const out: unknown[] = [];
  for (const doc of Array.isArray(docs) ? docs : [docs]) {
    if (doc.errors.length > 0) {
      throw new Error(`${source} is not valid YAML: ${doc.errors[0].message}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) continue;
    out.push(value);
  }
  return out;
}

/** True when the value looks like a Kubernetes object (apiVersion, kind and metadata.name). */
export function isK8sObject(value: unknown): value is K8sObject {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const meta = v.metadata as Record<string, unknown> | undefined;
  return (
    typeof v.apiVersion === 'string' &&
    v.apiVersion !== '' &&
    typeof v.kind === 'string' &&
    v.kind !== '' &&
    !!meta &&
    typeof meta === 'object' &&
    typeof meta.name === 'string' &&
    meta.name !== ''
  );
}

/** Deep copy with map keys sorted by code point, like Go's JSON → YAML path (sigs.k8s.io/yaml). */
export function sortKeysDeep<T>(value: T): T {
  if (Array.isArray(value))
    return value.map(v => sortKeysDeep(v)) as unknown as T;
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    const keys = Object.keys(value as Record<string, unknown>);
    keys.sort(
      keys.some(hasHighCodeUnit) ? compareCodePoints : compareCodeUnits,
    );
    for (const key of keys) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined) continue;
      out[key] = sortKeysDeep(v);
    }
    return out as T;
  }
  return value;
}

/** Surrogates and U+E000–U+FFFF: the only code units where UTF-16 order differs from code point order. */
const HIGH_CODE_UNIT = /[\ud800-\uffff]/;

function hasHighCodeUnit(key: string): boolean {
  return HIGH_CODE_UNIT.test(key);
}

/** Plain string order: equals code point order when no key has a code unit ≥ U+D800. */
function compareCodeUnits(a: string, b: string): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Serialises one object the way Go tooling does (keys sorted, sequences not indented under their
 * key, no line folding). Strings that YAML 1.1 readers (Kubernetes' decoder) would take for
 * booleans or numbers are quoted.
 */
export function stringifyObject(value: unknown): string {
  return YAML.stringify(sortKeysDeep(value), {
    version: '1.1',
    indent: 2,
    indentSeq: false,
    lineWidth: 0,
    minContentWidth: 0,
    blockQuote: 'literal',
    aliasDuplicateObjects: false,
    nullStr: 'null',
  });
}

/** Roots frozen by {@link deepFreeze}: immutable, so their serialisation can be kept. */
const deepFrozenRoots = new WeakSet<object>();
const serialised = new WeakMap<object, string>();

/**
 * Freezes a value and everything in it (children first, so a frozen child is known to be deeply
 * frozen and is not walked again). Returns the value.
 */
export function deepFreeze<T>(value: T): T {
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object' || Object.isFrozen(v)) return;
    for (const child of Object.values(v as object)) walk(child);
    Object.freeze(v);
  };
  walk(value);
  if (value && typeof value === 'object') deepFrozenRoots.add(value);
  return value;
}

/**
 * {@link stringifyObject}, remembered for values frozen with {@link deepFreeze}: an object the
 * bundle cache keeps (a CRD with its labels) is serialised once and its text reused.
 */
export function stringifyObjectCached(value: unknown): string {
  if (!value || typeof value !== 'object' || !deepFrozenRoots.has(value))
    return stringifyObject(value);
  let text = serialised.get(value);
  if (text === undefined) {
    text = stringifyObject(value);
    serialised.set(value, text);
  }
  return text;
}

/** Serialises objects as one multi-document stream: `doc\n---\ndoc\n`. */
export function stringifyDocuments(values: readonly unknown[]): string {
  return values.map(v => stringifyObjectCached(v)).join('---\n');
}
