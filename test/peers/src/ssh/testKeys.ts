// Test helper (not exported from the package index).
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../common/process';

/** Generates the unencrypted ed25519 key pair `dir/name` (comment `comment`, default `name`). */
export async function newKey(
  dir: string,
  name: string,
  comment = name,
): Promise<{ file: string; pub: string }> {
  const file = path.join(dir, name);
  await run('ssh-keygen', [
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    comment,
    '-f',
    file,
  ]);
  return { file, pub: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
}
