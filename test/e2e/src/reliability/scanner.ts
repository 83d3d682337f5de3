/** One occurrence of a secret where it must never be. */
export interface SecretFinding {
  secret: string;
  /** How it was written: raw, JSON-escaped, URL-encoded, base64, Basic auth, a fragment… */
  form: string;
  /** e.g. `task events: 3f2a…` */
  where: string;
  /** The surrounding text with the secret itself replaced by `«name»`. */
  context: string;
}

interface Needle {
  secret: string;
  form: string;
  value: string;
  /** Compare against the haystack with all whitespace and `\n` escapes removed (key material). */
  compact?: boolean;
}

/** Shortest fragment of a secret that counts as a leak (a truncated echo is still a leak). */
const FRAGMENT = 16;

function fragments(value: string, size = FRAGMENT): string[] {
  if (value.length <= size) return [value];
  const out: string[] = [];
  for (let i = 0; i + size <= value.length; i++)
    out.push(value.slice(i, i + size));
  return out;
}

/**
 * Looks for secrets in everything the product writes: every form a secret could take in a log
 * line, an error, a JSON body, a URL or a header (raw, JSON-escaped, URL-encoded, base64, HTTP
 * Basic `user:secret` base64) and any fragment of 16 characters or more; private keys by their
 * base64 body with line breaks and `\n` escapes ignored.
 */
export class SecretScanner {
  private readonly needles: Needle[] = [];
  private readonly found: SecretFinding[] = [];
  private readonly scanned = new Map<
    string,
    { items: number; bytes: number }
  >();

  add(
    name: string,
    value: string | undefined,
    opts: { usernames?: string[] } = {},
  ): void {
    if (!value) return;
    const push = (form: string, v: string) => {
      if (v && !this.needles.some(n => n.secret === name && n.value === v)) {
        this.needles.push({ secret: name, form, value: v });
      }
    };
    push('raw', value);
    push('JSON-escaped', JSON.stringify(value).slice(1, -1));
    push('URL-encoded', encodeURIComponent(value));
    push(
      'base64',
      Buffer.from(value, 'utf8').toString('base64').replace(/=+$/, ''),
    );
    for (const user of ['git', 'x-token-auth', ...(opts.usernames ?? [])]) {
      push(
        `Basic auth as ${user}`,
        Buffer.from(`${user}:${value}`, 'utf8')
          .toString('base64')
          .replace(/=+$/, ''),
      );
    }
    // Last, so that a whole value is reported as such: any fragment (a truncated echo).
    for (const f of fragments(value)) push('fragment', f);
  }

  /**
   * A PEM/OpenSSH private key: any 32-character run of its base64 body is a leak — except runs
   * that encode its public half (OpenSSH and PKCS#8 keys embed the public key, which is public:
   * it is in the access key and identity.pub). `publicKey` is `type base64` as in authorized_keys.
   */
  addPrivateKey(
    name: string,
    pem: string | undefined,
    publicKey?: string,
  ): void {
    if (!pem) return;
    const body = pem
      .split('\n')
      .filter(l => l && !l.startsWith('-----'))
      .join('');
    const publicForms: string[] = [];
    const blob = publicKey
      ? Buffer.from(publicKey.trim().split(/\s+/)[1] ?? '', 'base64')
      : undefined;
    if (blob?.length) {
      // The public key blob (and anything inside it, e.g. an EC point or RSA modulus) in every
      // base64 alignment it can have inside another structure.
      for (let shift = 0; shift < 3; shift++) {
        publicForms.push(
          Buffer.concat([Buffer.alloc(shift), blob]).toString('base64'),
        );
      }
    }
    for (let i = 0; i + 32 <= body.length; i += 16) {
      const value = body.slice(i, i + 32);
      if (publicForms.some(f => f.includes(value))) continue;
      this.needles.push({
        secret: name,
        form: 'key material',
        value,
        compact: true,
      });
    }
    this.needles.push({
      secret: name,
      form: 'base64 of the key',
      value: Buffer.from(pem, 'utf8').toString('base64').slice(8, 60),
    });
  }

  /** Scans one artifact; `where` is `category: detail`. Returns what it found (also kept). */
  scan(where: string, text: string | undefined): SecretFinding[] {
    const category = where.split(':')[0];
    const stat = this.scanned.get(category) ?? { items: 0, bytes: 0 };
    stat.items++;
    stat.bytes += text?.length ?? 0;
    this.scanned.set(category, stat);
    if (!text) return [];
    const compact = text.replace(/\\n|\\r|\s/g, '');
    const out: SecretFinding[] = [];
    const seen = new Set<string>();
    for (const n of this.needles) {
      const hay = n.compact ? compact : text;
      const i = hay.indexOf(n.value);
      if (i < 0 || seen.has(n.secret)) continue;
      seen.add(n.secret);
      let context = hay.slice(Math.max(0, i - 80), i + n.value.length + 80);
      // Never show the secret itself, not even the parts next to the match.
      for (const other of this.needles
        .filter(x => x.secret === n.secret)
        .map(x => x.value)
        .sort((a, b) => b.length - a.length)) {
        context = context.split(other).join(`«${n.secret}»`);
      }
      out.push({ secret: n.secret, form: n.form, where, context });
    }
    this.found.push(...out);
    return out;
  }

  findings(): SecretFinding[] {
    return [...this.found];
  }

  /** What was scanned, per category: number of artifacts and characters. */
  stats(): Record<string, { items: number; bytes: number }> {
    return Object.fromEntries(this.scanned);
  }

  /** Names of the secrets looked for. */
  secrets(): string[] {
    return [...new Set(this.needles.map(n => n.secret))];
  }
}
