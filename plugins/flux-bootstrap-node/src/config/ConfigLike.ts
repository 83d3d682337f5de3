/**
 * The subset of Backstage's `Config` the engine reads. Backstage's `Config` satisfies it
 * structurally, so the engine needs no Backstage runtime import; tests can use `ConfigReader`
 * or {@link configFromObject}.
 * @public
 */
export interface ConfigLike {
  has(key: string): boolean;
  getOptional<T = unknown>(key?: string): T | undefined;
  getOptionalString(key: string): string | undefined;
  getOptionalBoolean(key: string): boolean | undefined;
  getOptionalNumber(key: string): number | undefined;
  getOptionalConfig(key: string): ConfigLike | undefined;
  getOptionalConfigArray(key: string): ConfigLike[] | undefined;
  getOptionalStringArray(key: string): string[] | undefined;
}

/** A minimal ConfigLike over a plain object (tests, CLI use). @public */
export function configFromObject(data: Record<string, unknown>): ConfigLike {
  const at = (key?: string): unknown => {
    if (!key) return data;
    let cur: unknown = data;
    for (const part of key.split('.')) {
      if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) {
        return undefined;
      }
      cur = (cur as Record<string, unknown>)[part];
    }
    return cur;
  };
  const typed = <T>(key: string, type: string): T | undefined => {
    const v = at(key);
    if (v === undefined || v === null) return undefined;
    // eslint-disable-next-line valid-typeof
    if (typeof v !== type) {
      throw new Error(
        `Invalid type in config for key '${key}', expected ${type}`,
      );
    }
    return v as T;
  };
  return {
    has: key => at(key) !== undefined,
    getOptional: <T>(key?: string) => at(key) as T | undefined,
    getOptionalString: key => typed<string>(key, 'string'),
    getOptionalBoolean: key => typed<boolean>(key, 'boolean'),
    getOptionalNumber: key => typed<number>(key, 'number'),
    getOptionalConfig: key => {
      const v = at(key);
      return v && typeof v === 'object' && !Array.isArray(v)
        ? configFromObject(v as Record<string, unknown>)
        : undefined;
    },
    getOptionalConfigArray: key => {
      const v = at(key);
      if (v === undefined) return undefined;
      if (!Array.isArray(v)) {
        throw new Error(
          `Invalid type in config for key '${key}', expected array`,
        );
      }
      return v.map(item => configFromObject(item as Record<string, unknown>));
    },
    getOptionalStringArray: key => {
      const v = at(key);
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || v.some(x => typeof x !== 'string')) {
        throw new Error(
          `Invalid type in config for key '${key}', expected string array`,
        );
      }
      return v as string[];
    },
  };
}
