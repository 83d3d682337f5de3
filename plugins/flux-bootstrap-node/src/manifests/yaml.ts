import YAML, { isScalar, type Pair } from 'yaml';
import type { KubeObject } from '../kube/types';

/** UTF-8 byte order (= code point order, as Go sorts); plain string order where that is the same. */
export function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  // Only surrogates and U+E000–U+FFFF order differently in UTF-16.
  if (/[\ud800-\uffff]/.test(a + b))
    return Buffer.compare(Buffer.from(a), Buffer.from(b));
  return a < b ? -1 : 1;
}

/** A YAML 1.2 stream (as kustomize's kyaml reads it) as values, without empty documents. */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  const docs = YAML.parseAllDocuments(text, {
    uniqueKeys: true,
    prettyErrors: false,
  });
  return docs.flatMap(doc => {
    if (doc.errors.length > 0) {
      throw new Error(`${source} is not valid YAML: ${doc.errors[0].message}`);
    }
    const value = doc.toJS({ maxAliasCount: 100 });
    return value === null || value === undefined ? [] : [value];
  });
}

/** True when the value looks like a Kubernetes object (apiVersion, kind and metadata.name). */
export function isK8sObject(value: unknown): value is KubeObject {
  const v = (value ?? {}) as Partial<KubeObject>;
  return (
    typeof value === 'object' &&
    !Array.isArray(value) &&
    [v.apiVersion, v.kind, v.metadata?.name].every(
      field => typeof field === 'string' && field !== '',
    )
  );
}

const keyText = (pair: Pair) =>
  String(isScalar(pair.key) ? pair.key.value : pair.key);

/**
 * Serialises one object the way Go tooling does (sigs.k8s.io/yaml: keys sorted by code point,
 * sequences not indented under their key, no line folding). Strings that YAML 1.1 readers
 * (Kubernetes' decoder) would take for booleans or numbers are quoted.
 */
export function stringifyObject(value: unknown): string {
  return YAML.stringify(value, {
    version: '1.1',
    sortMapEntries: (a, b) => compareUtf8(keyText(a), keyText(b)),
    indent: 2,
    indentSeq: false,
    lineWidth: 0,
    minContentWidth: 0,
    blockQuote: 'literal',
    aliasDuplicateObjects: false,
    nullStr: 'null',
  });
}

/** Roots frozen by {@link deepFreeze} → their YAML once made (immutable, so it can be kept). */
const serialised = new WeakMap<object, string | undefined>();

/** Freezes a value and everything in it (a frozen child is taken as deeply frozen). */
export function deepFreeze<T>(value: T): T {
  const walk = (v: unknown) => {
    if (!v || typeof v !== 'object' || Object.isFrozen(v)) return;
    for (const child of Object.values(v as object)) walk(child);
    Object.freeze(v);
  };
  walk(value);
  if (value && typeof value === 'object' && !serialised.has(value))
    serialised.set(value, undefined);
  return value;
}

/** Objects as one `doc\n---\ndoc\n` stream; the text of a {@link deepFreeze}d object is kept. */
export function stringifyDocuments(values: readonly unknown[]): string {
  return values
    .map(v => {
      if (!v || typeof v !== 'object' || !serialised.has(v))
        return stringifyObject(v);
      const text = serialised.get(v) ?? stringifyObject(v);
      serialised.set(v, text);
      return text;
    })
    .join('---\n');
}
