import YAML from 'yaml';

/**
 * The kustomize patch subset the Flux simulator understands, for `patches:` in a
 * kustomization.yaml and a FluxInstance's `spec.kustomize.patches`:
 *
 * - JSON6902 patches (a YAML list of `op`/`path`/`value|from` operations: add, remove, replace,
 *   move, copy, test), which need a `target`;
 * - strategic-merge patches (a partial object): maps merge key by key, `null` deletes a key; for the
 *   built-in kinds (core, apps, batch, rbac) the lists Kubernetes merges by key are merged by that
 *   key (containers/initContainers/env/volumes/imagePullSecrets by `name`, volumeMounts by
 *   `mountPath`, container ports by `containerPort`, Service ports by `port`); every other list is
 *   replaced, as kustomize does for custom resources. `$patch`, `$setElementOrder`, `$retainKeys` and
 *   `$deleteFromPrimitiveList` directives are refused with PatchError rather than ignored.
 *
 * Targets select by `group`, `version`, `kind`, `name`, `namespace` (anchored regular
 * expressions, as kustomize matches them), `labelSelector` and `annotationSelector`
 * (`k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated; set-based selectors are refused).
 */

export type K8sObject = Record<string, any> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: any };
};

export interface PatchTarget {
  group?: string;
  version?: string;
  kind?: string;
  name?: string;
  namespace?: string;
  labelSelector?: string;
  annotationSelector?: string;
}

export interface KustomizePatch {
  patch: string;
  target?: PatchTarget;
}

export class PatchError extends Error {}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v));

function groupVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

function anchored(pattern: string, value: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})$`).test(value);
  } catch {
    return pattern === value;
  }
}

function matchesSelector(
  selector: string,
  values: Record<string, string>,
  field: string,
): boolean {
  for (const raw of selector.split(',')) {
    const term = raw.trim();
    if (!term) continue;
    if (/\s(in|notin)\s*\(/.test(term) || term.includes('(')) {
      throw new PatchError(
        `the Flux simulator does not support set-based ${field} "${selector}"`,
      );
    }
    const ne = /^([^!=]+)!=(.*)$/.exec(term);
    const eq = ne ? null : /^([^!=]+)==?(.*)$/.exec(term);
    if (ne) {
      if (values[ne[1].trim()] === ne[2].trim()) return false;
    } else if (eq) {
      if (values[eq[1].trim()] !== eq[2].trim()) return false;
    } else if (term.startsWith('!')) {
      if (term.slice(1).trim() in values) return false;
    } else if (!(term in values)) {
      return false;
    }
  }
  return true;
}

/** Whether an object is selected by a kustomize patch target. */
export function matchesTarget(obj: K8sObject, t: PatchTarget): boolean {
  const { group, version } = groupVersion(obj.apiVersion);
  if (t.group !== undefined && !anchored(t.group, group)) return false;
  if (t.version !== undefined && !anchored(t.version, version)) return false;
  if (t.kind !== undefined && !anchored(t.kind, obj.kind)) return false;
  if (t.name !== undefined && !anchored(t.name, obj.metadata.name))
    return false;
  if (
    t.namespace !== undefined &&
    !anchored(t.namespace, obj.metadata.namespace ?? '')
  )
    return false;
  if (
    t.labelSelector &&
    !matchesSelector(
      t.labelSelector,
      obj.metadata.labels ?? {},
      'labelSelector',
    )
  )
    return false;
  if (
    t.annotationSelector &&
    !matchesSelector(
      t.annotationSelector,
      obj.metadata.annotations ?? {},
      'annotationSelector',
    )
  )
    return false;
  return true;
}

// ---------------------------------------------------------------- JSON6902

function unescapePointer(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw new PatchError(`invalid JSON pointer "${pointer}"`);
  return pointer.slice(1).split('/').map(unescapePointer);
}

function resolveParent(doc: any, tokens: string[], path: string) {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) {
      const i = Number(t);
      if (!Number.isInteger(i) || i < 0 || i >= cur.length)
        throw new PatchError(`path "${path}" does not exist`);
      cur = cur[i];
    } else if (cur && typeof cur === 'object' && t in cur) {
      cur = cur[t];
    } else {
      throw new PatchError(`path "${path}" does not exist`);
    }
  }
  return { parent: cur, key: tokens[tokens.length - 1] };
}

function getAt(doc: any, path: string): any {
  let cur = doc;
  for (const t of parsePointer(path)) {
    if (cur === null || typeof cur !== 'object' || !(t in cur))
      throw new PatchError(`path "${path}" does not exist`);
    cur = Array.isArray(cur) ? cur[Number(t)] : cur[t];
  }
  return cur;
}

function removeAt(doc: any, path: string): any {
  const tokens = parsePointer(path);
  if (!tokens.length) throw new PatchError('cannot remove the document root');
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) {
    const i = Number(key);
    if (!Number.isInteger(i) || i < 0 || i >= parent.length)
      throw new PatchError(`path "${path}" does not exist`);
    return parent.splice(i, 1)[0];
  }
  if (!parent || typeof parent !== 'object' || !(key in parent))
    throw new PatchError(`path "${path}" does not exist`);
  const old = parent[key];
  delete parent[key];
  return old;
}

function addAt(doc: any, path: string, value: any, replace: boolean): any {
  const tokens = parsePointer(path);
  if (!tokens.length) return value;
  const { parent, key } = resolveParent(doc, tokens, path);
  if (Array.isArray(parent)) {
    if (key === '-' && !replace) {
      parent.push(value);
      return doc;
    }
    const i = Number(key);
    const max = replace ? parent.length - 1 : parent.length;
    if (!Number.isInteger(i) || i < 0 || i > max)
      throw new PatchError(`path "${path}" does not exist`);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
    return doc;
  }
  if (!parent || typeof parent !== 'object')
    throw new PatchError(`path "${path}" does not exist`);
  if (replace && !(key in parent))
    throw new PatchError(`path "${path}" does not exist`);
  parent[key] = value;
  return doc;
}

/** Applies RFC 6902 operations to a copy of `obj`. */
export function applyJson6902(obj: any, ops: any[]): any {
  let doc = clone(obj);
  for (const op of ops) {
    if (!op || typeof op !== 'object' || typeof op.path !== 'string')
      throw new PatchError(`invalid JSON6902 operation ${JSON.stringify(op)}`);
    switch (op.op) {
      case 'add':
        doc = addAt(doc, op.path, clone(op.value), false);
        break;
      case 'replace':
        doc = addAt(doc, op.path, clone(op.value), true);
        break;
      case 'remove':
        removeAt(doc, op.path);
        break;
      case 'move': {
        const v = removeAt(doc, op.from);
        doc = addAt(doc, op.path, v, false);
        break;
      }
      case 'copy':
        doc = addAt(doc, op.path, clone(getAt(doc, op.from)), false);
        break;
      case 'test':
        if (JSON.stringify(getAt(doc, op.path)) !== JSON.stringify(op.value))
          throw new PatchError(`test operation failed at "${op.path}"`);
        break;
      default:
        throw new PatchError(`unknown JSON6902 operation "${op.op}"`);
    }
  }
  return doc;
}

// ---------------------------------------------------------------- strategic merge

const BUILTIN_GROUPS = new Set([
  '',
  'apps',
  'batch',
  'rbac.authorization.k8s.io',
  'networking.k8s.io',
  'policy',
]);

function mergeKeyFor(field: string, items: any[]): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'ports':
      return items.some(i => i && typeof i === 'object' && 'containerPort' in i)
        ? 'containerPort'
        : 'port';
    default:
      return undefined;
  }
}

function mergeValue(
  base: any,
  patch: any,
  field: string,
  withKeys: boolean,
): any {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    const key = withKeys ? mergeKeyFor(field, patch) : undefined;
    if (!key || !Array.isArray(base)) return clone(patch);
    const out = clone(base);
    for (const item of patch) {
      if (!item || typeof item !== 'object' || !(key in item))
        return clone(patch);
      const i = out.findIndex(
        (o: any) => o && typeof o === 'object' && o[key] === item[key],
      );
      if (i < 0) out.push(clone(item));
      else out[i] = mergeValue(out[i], item, '', withKeys);
    }
    return out;
  }
  if (patch && typeof patch === 'object') {
    const out =
      base && typeof base === 'object' && !Array.isArray(base)
        ? clone(base)
        : {};
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith('$'))
        throw new PatchError(
          `the Flux simulator does not support the strategic-merge directive "${k}"`,
        );
      const merged = mergeValue(out[k], v, k, withKeys);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
    return out;
  }
  return patch;
}

/** Applies a strategic-merge patch (the subset described above) to a copy of `obj`. */
export function applyStrategicMerge(obj: K8sObject, patch: any): K8sObject {
  const { group } = groupVersion(obj.apiVersion);
  const withKeys = BUILTIN_GROUPS.has(group);
  const p = clone(patch);
  // The patch's identity selects the object; it does not rename it.
  delete p.apiVersion;
  delete p.kind;
  if (p.metadata) {
    delete p.metadata.name;
    delete p.metadata.namespace;
  }
  return mergeValue(obj, p, '', withKeys);
}

/**
 * Applies kustomize `patches` entries to the objects they select and returns new objects.
 * `where` names the file the patches come from, for error messages.
 */
export function applyPatches(
  objects: K8sObject[],
  patches: KustomizePatch[],
  where: string,
): K8sObject[] {
  let out = objects;
  for (const [i, p] of patches.entries()) {
    let parsed: any;
    try {
      const docs = YAML.parseAllDocuments(p.patch).map(d => {
        if (d.errors.length) throw d.errors[0];
        return d.toJS();
      });
      parsed = docs.length === 1 ? docs[0] : docs;
    } catch (e) {
      throw new PatchError(
        `${where}: patch ${i} is not valid YAML: ${(e as Error).message}`,
      );
    }
    if (Array.isArray(parsed) && parsed.every(o => o && 'op' in o)) {
      if (!p.target)
        throw new PatchError(
          `${where}: patch ${i} is a JSON6902 patch and needs a target`,
        );
      out = out.map(o => {
        if (!matchesTarget(o, p.target!)) return o;
        try {
          return applyJson6902(o, parsed);
        } catch (e) {
          throw new PatchError(
            `${where}: patch ${i} on ${o.kind}/${o.metadata.name}: ${
              (e as Error).message
            }`,
          );
        }
      });
    } else if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
      const target: PatchTarget = p.target ?? {
        kind: parsed.kind,
        name: parsed.metadata?.name,
        ...(parsed.metadata?.namespace
          ? { namespace: parsed.metadata.namespace }
          : {}),
      };
      let hit = false;
      out = out.map(o => {
        if (!matchesTarget(o, target)) return o;
        hit = true;
        return applyStrategicMerge(o, parsed);
      });
      if (!hit && !p.target)
        throw new PatchError(
          `${where}: no resource matches strategic merge patch "${parsed.kind}/${parsed.metadata?.name}"`,
        );
    } else {
      throw new PatchError(
        `${where}: patch ${i} is neither a JSON6902 list nor a strategic-merge object`,
      );
    }
  }
  return out;
}
