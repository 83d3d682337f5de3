import type { EngineLogger } from './logger';

const MASK = '***';

/** Masks secrets (also base64 and URL-encoded) and credential shapes in logs and errors. @public */
export class Redactor {
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const s of secrets) this.add(s);
  }

  /** Registers a secret; values shorter than 4 characters are ignored (too many false hits). */
  add(secret: string | undefined): this {
    if (!secret || secret.length < 4) return this;
    // Multi-line secrets (PEM keys) are also redacted line by line.
    const lines = secret.split(/\r?\n/).map(line => line.trim());
    const variants = [secret, secret.trim()].concat(
      lines.filter(l => l.length >= 16 && !/^-----(BEGIN|END) /.test(l)),
    );
    for (const v of variants.filter(x => x.length >= 4)) {
      this.secrets.add(v);
      this.secrets.add(Buffer.from(v, 'utf8').toString('base64'));
      this.secrets.add(encodeURIComponent(v));
    }
    return this;
  }

  /** Every registered secret variant (for tests and for passing to child redactors). */
  values(): string[] {
    return [...this.secrets];
  }

  redact(text: string): string {
    let out = text;
    // Longest first so that a secret containing another is masked whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) {
      if (out.includes(s)) out = out.split(s).join(MASK);
    }
    return redactCredentialPatterns(out);
  }

  /**
   * A copy of `error` whose message and stack carry no secret: same class (so `instanceof`
   * holds), name, and the fields callers act on (code, status, field, kind); nothing else.
   */
  redactError(error: unknown): Error {
    const err = error instanceof Error ? error : new Error(String(error));
    const safe = new Error(this.redact(err.message));
    Object.setPrototypeOf(safe, Object.getPrototypeOf(err));
    safe.name = err.name;
    safe.stack = err.stack && this.redact(err.stack);
    for (const key of ['code', 'status', 'statusCode', 'field', 'kind']) {
      const value = (err as unknown as Record<string, unknown>)[key];
      if (value !== undefined) Object.assign(safe, { [key]: value });
    }
    return safe;
  }

  /** Wraps a logger so that every message and string metadata value is redacted. */
  wrapLogger(logger: EngineLogger): EngineLogger {
    const levels = ['error', 'warn', 'info', 'debug'] as const;
    return Object.fromEntries(
      levels.map(level => [
        level,
        (message: string, meta?: Error | Record<string, unknown>) => {
          if (!meta) return logger[level](this.redact(message));
          const safeMeta =
            meta instanceof Error
              ? this.redactError(meta)
              : JSON.parse(this.redact(JSON.stringify(meta)));
          return logger[level](this.redact(message), safeMeta);
        },
      ]),
    ) as unknown as EngineLogger;
  }
}

/** Masks credential shapes never registered: Authorization values, URL passwords, PEM keys. @public */
export function redactCredentialPatterns(text: string): string {
  return text
    .replace(
      /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(-----END \1PRIVATE KEY-----|$)/g,
      '-----BEGIN $1PRIVATE KEY-----***-----END $1PRIVATE KEY-----',
    )
    .replace(
      /\b(authorization["']?\s*[:=]\s*["']?)(bearer|basic)\s+[^\s"',}]+/gi,
      '$1$2 ***',
    )
    .replace(/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 ***')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]+):([^/\s@]+)@/gi, '$1$2:***@')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)([^/\s:@]{20,})@/gi, '$1***@');
}
