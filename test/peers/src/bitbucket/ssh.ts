import { PEER_GIT_CONFIG } from '../git/cli';
import { startSshd, SshdInstance } from '../ssh/sshd';
import type { BitbucketRequestLogEntry, BitbucketSshInfo } from './double';
import { PUSH_ENV } from './hooks';
import type { BitbucketState } from './model';

const shQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Parses `SSH_ORIGINAL_COMMAND` of a git client: `git-upload-pack '/KEY/slug.git'` and variants. */
export function parseGitSshCommand(cmd: string):
  | {
      service: 'git-upload-pack' | 'git-receive-pack' | 'git-upload-archive';
      projectKey: string;
      slug: string;
    }
  | undefined {
  if (/[\n\r\0]/.test(cmd)) return undefined;
  const m = /^git[ -](upload-pack|receive-pack|upload-archive)\s+(.+)$/.exec(
    cmd.trim(),
  );
  if (!m) return undefined;
  let arg = m[2].trim();
  if (arg.startsWith("'") && arg.endsWith("'") && arg.length >= 2) {
    arg = arg.slice(1, -1).replace(/'\\''/g, "'");
  } else if (arg.startsWith('"') && arg.endsWith('"') && arg.length >= 2) {
    arg = arg.slice(1, -1);
  }
  if (/['"\\\s]/.test(arg)) return undefined;
  const parts = arg
    .replace(/^\/+/, '')
    .replace(/\/+$/, '')
    .replace(/\.git$/, '')
    .split('/');
  if (parts.length !== 2 || parts.some(p => !p || p === '.' || p === '..'))
    return undefined;
  return {
    service: `git-${m[1]}` as 'git-upload-pack',
    projectKey: parts[0],
    slug: parts[1],
  };
}

/**
 * Starts the sshd of the Bitbucket double. sshd asks the double (AuthorizedKeysCommand) which
 * access key matches the offered key and gets back one authorized_keys line with a forced
 * command; that command asks the double whether the key may run the git command the client
 * sent (SSH_ORIGINAL_COMMAND) on that repository, then execs `git upload-pack`/`receive-pack`.
 * Without root (no AuthorizedKeysCommand possible) the double rewrites a static authorized_keys
 * file instead, with the same forced command.
 */
export async function startBitbucketSsh(ctx: {
  keySource?: 'command' | 'file';
  state: BitbucketState;
  internalUrl: string;
  insecureCa?: string;
  log: (e: BitbucketRequestLogEntry) => void;
  takeFault: (path: string) => { status?: number; drop?: boolean } | undefined;
  /** Registers a push by an access key; the id goes to the repository's hooks (`BB_DOUBLE_PUSH`). */
  newPush: (repoId: number, accessKeyId: number) => string;
}): Promise<{
  sshd: SshdInstance;
  info: BitbucketSshInfo & { keySource: 'command' | 'file' };
  authorizedKeys: (user: string, keyBlob: string) => string;
  authorize: (keyId: string, cmd: string) => string;
  refreshAuthorizedKeysFile: () => void;
}> {
  const { state } = ctx;
  const curl = `/usr/bin/curl -sS --fail --max-time 20 ${
    ctx.insecureCa ? `--cacert ${shQuote(ctx.insecureCa)}` : ''
  }`;
  const gitEnv = [
    'GIT_CONFIG_NOSYSTEM=1',
    `GIT_CONFIG_COUNT=1`,
    `GIT_CONFIG_KEY_0=safe.directory`,
    `GIT_CONFIG_VALUE_0='*'`,
  ].join(' ');
  void PEER_GIT_CONFIG;
  const authorizedKeysCommand = `#!/bin/sh
# AuthorizedKeysCommand of the Bitbucket double: prints the authorized_keys line of the access key
# matching the offered key (args: %u %t %k).
exec ${curl} -G --data-urlencode "user=$1" --data-urlencode "key=$3" ${shQuote(
    `${ctx.internalUrl}/ssh/authorized-keys`,
  )}
`;
  const gitServe = `#!/bin/sh
# Forced command of Bitbucket access keys: asks the double whether access key $1 may run
# $SSH_ORIGINAL_COMMAND, then runs git upload-pack / receive-pack on the repository.
resp=$(${curl} -G --data-urlencode "key=$1" --data-urlencode "cmd=\${SSH_ORIGINAL_COMMAND:-}" ${shQuote(
    `${ctx.internalUrl}/ssh/authorize`,
  )}) || {
  echo "fatal: the Bitbucket double did not answer the authorisation request" >&2
  exit 1
}
case "$resp" in
  "ALLOW git-upload-pack "*) exec env ${gitEnv} git upload-pack "\${resp#ALLOW git-upload-pack }" ;;
  "ALLOW git-receive-pack "*)
    rest="\${resp#ALLOW git-receive-pack }"
    exec env ${PUSH_ENV}="\${rest%% *}" ${gitEnv} git receive-pack "\${rest#* }" ;;
  "ALLOW git-upload-archive "*) exec env ${gitEnv} git upload-archive "\${resp#ALLOW git-upload-archive }" ;;
  *) printf '%s\\n' "\${resp#DENY }" >&2; exit 1 ;;
esac
`;
  const holder: { sshd?: SshdInstance } = {};
  const line = (keyId: number, type: string, blob: string) =>
    `command="${holder.sshd!.scriptPath(
      'git-serve',
    )} ${keyId}",restrict ${type} ${blob}`;

  const authorizedKeys = (user: string, keyBlob: string): string => {
    if (!holder.sshd || user !== holder.sshd.user) return '';
    const key = state.keyByBlob(keyBlob);
    if (!key || !state.keyGrants.some(g => g.keyId === key.id)) return '';
    return `${line(key.id, key.type, key.blob)}\n`;
  };

  const authorize = (keyIdText: string, cmd: string): string => {
    const parsed = parseGitSshCommand(cmd);
    const entry: BitbucketRequestLogEntry = {
      method: 'SSH',
      path: parsed ? `/${parsed.projectKey}/${parsed.slug}.git` : cmd,
      query: parsed ? { service: parsed.service } : {},
      headers: {},
      status: 0,
      user: `access-key:${keyIdText}`,
    };
    ctx.log(entry);
    const deny = (status: number, msg: string) => {
      entry.status = status;
      return `DENY ${msg}`;
    };
    if (!parsed)
      return deny(
        400,
        `fatal: unsupported command; only git fetch/push are allowed over SSH`,
      );
    const fault = ctx.takeFault(entry.path);
    if (fault?.status || fault?.drop)
      return deny(
        fault.status ?? 0,
        `fatal: injected failure ${fault.status ?? 'drop'}`,
      );
    const key = state.keys.get(Number(keyIdText));
    const repo = state.repo(parsed.projectKey, parsed.slug);
    const notFound =
      'Repository not found\nThe requested repository does not exist, or you do not have permission to access it.';
    if (!key || !repo) return deny(404, notFound);
    const level = state.keyRepoLevel(key.id, repo);
    if (level < 1) return deny(404, notFound);
    if (parsed.service === 'git-receive-pack' && level < 2) {
      return deny(
        403,
        `You are not permitted to push to ${repo.projectKey}/${repo.slug}: the access key "${key.label}" is read-only`,
      );
    }
    entry.status = 200;
    if (parsed.service === 'git-receive-pack')
      return `ALLOW ${parsed.service} ${ctx.newPush(repo.id, key.id)} ${
        repo.path
      }`;
    return `ALLOW ${parsed.service} ${repo.path}`;
  };

  const sshd = await startSshd({
    authorizedKeysCommand:
      ctx.keySource === 'file' ? undefined : authorizedKeysCommand,
    scripts: { 'git-serve': gitServe },
  });

  holder.sshd = sshd;
  const refreshAuthorizedKeysFile = () => {
    if (sshd.usesAuthorizedKeysCommand) return;
    const lines = [...state.keys.values()]
      .filter(k => state.keyGrants.some(g => g.keyId === k.id))
      .map(k => line(k.id, k.type, k.blob));
    sshd.setAuthorizedKeys(lines.map(l => `${l}\n`).join(''));
  };
  refreshAuthorizedKeysFile();

  return {
    sshd,
    info: {
      host: sshd.host,
      port: sshd.port,
      user: sshd.user,
      hostKeys: sshd.hostKeys,
      knownHosts: sshd.knownHosts,
      keySource: sshd.usesAuthorizedKeysCommand ? 'command' : 'file',
    },
    authorizedKeys,
    authorize,
    refreshAuthorizedKeysFile,
  };
}
