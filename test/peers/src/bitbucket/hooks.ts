import fs from 'node:fs';
import path from 'node:path';

/**
 * Environment variable naming the push a git receive-pack serves. The double sets it for git
 * over HTTP (through `git http-backend`) and over SSH (through the access key's forced command);
 * the repository's hooks send it back so the double knows who pushes.
 */
export const PUSH_ENV = 'BB_DOUBLE_PUSH';

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The `pre-receive` and `post-receive` hooks of the double's bare repositories. `pre-receive`
 * computes for each ref update whether it is a fast-forward (inside the hook, where the pushed
 * objects are visible) and asks the double; on a refusal it prints the double's text (git shows
 * it as `remote:` lines) and exits 1, so git reports `! [remote rejected] … (pre-receive hook
 * declined)`. `post-receive` tells the double what changed (audit log, pull-request rescoping).
 * Pushes the double did not start (a local `git push` into the bare repository on disk) carry
 * no push id and are not checked.
 */
export function hookScripts(opts: { internalUrl: string; caFile?: string }): {
  'pre-receive': string;
  'post-receive': string;
} {
  const curl = `/usr/bin/curl -sS --fail --max-time 30 ${
    opts.caFile ? `--cacert ${shQuote(opts.caFile)}` : ''
  } -H 'Content-Type: text/plain' --data-binary @-`;
  const url = (hook: string) =>
    shQuote(`${opts.internalUrl}/hooks/${hook}?push=`);
  return {
    'pre-receive': `#!/bin/sh
# pre-receive hook of the Bitbucket double: asks the double whether this push may make these
# ref updates (branch permissions), as Bitbucket's own hook does; prints its refusal and fails.
[ -n "\${${PUSH_ENV}:-}" ] || exit 0
zero=0000000000000000000000000000000000000000
updates=""
while read -r old new ref; do
  ff=0
  if [ "$old" != "$zero" ] && [ "$new" != "$zero" ] && git merge-base --is-ancestor "$old" "$new" 2>/dev/null; then
    ff=1
  fi
  updates="$updates$old $new $ref $ff
"
done
resp=$(printf '%s' "$updates" | ${curl} ${url(
      'pre-receive',
    )}"\${${PUSH_ENV}}") || {
  echo "The Bitbucket double did not answer its pre-receive check." >&2
  exit 1
}
case "$resp" in
  OK*) exit 0 ;;
esac
nl='
'
printf '%s\\n' "\${resp#*$nl}" >&2
exit 1
`,
    'post-receive': `#!/bin/sh
# post-receive hook of the Bitbucket double: reports the pushed ref updates (who pushed what,
# pull requests whose source branch moved).
[ -n "\${${PUSH_ENV}:-}" ] || exit 0
cat | ${curl} ${url('post-receive')}"\${${PUSH_ENV}}" >/dev/null || true
`,
  };
}

/** Writes the hooks into a bare repository (executable by the sshd's git user too). */
export function installHooks(
  repoPath: string,
  scripts: Record<string, string>,
): void {
  const dir = path.join(repoPath, 'hooks');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [name, content] of Object.entries(scripts)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, content, { mode: 0o755 });
    fs.chmodSync(file, 0o755);
  }
}

/** Parses the hook's body: `old new ref [ff]` lines. */
export function parseUpdates(body: string) {
  return body
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)
    .map(l => {
      const [oldSha, newSha, ref, ff] = l.split(/\s+/);
      return { oldSha, newSha, ref, fastForward: ff === '1' };
    })
    .filter(u => u.oldSha && u.newSha && u.ref);
}
