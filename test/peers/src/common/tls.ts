import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir } from './fs';
import { run } from './process';

/** A self-signed CA and a server certificate it signed, all PEM. */
export interface TestPki {
  caPem: string;
  certPem: string;
  keyPem: string;
}

/**
 * Creates a throw-away CA and a server certificate for `127.0.0.1`/`localhost` (plus `hosts`)
 * with the openssl CLI (EC P-256, valid 2 days). The CA is not trusted anywhere; clients
 * must be given `caPem` explicitly, which is the point of testing custom-CA handling.
 */
export async function createTestPki(
  opts: { hosts?: string[]; commonName?: string } = {},
): Promise<TestPki> {
  const dir = makeTempDir('peer-pki');
  try {
    const f = (n: string) => path.join(dir, n);
    const cn = opts.commonName ?? 'Flux bootstrap test CA';
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.crt'),
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await run('openssl', [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      f('server.key'),
      '-out',
      f('server.csr'),
      '-subj',
      '/CN=127.0.0.1',
    ]);
    const hosts = ['127.0.0.1', 'localhost', '::1', ...(opts.hosts ?? [])];
    const san = hosts
      .map(h =>
        /^[\d.]+$/.test(h) || h.includes(':') ? `IP:${h}` : `DNS:${h}`,
      )
      .join(',');
    fs.writeFileSync(
      f('ext.cnf'),
      `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      f('server.csr'),
      '-CA',
      f('ca.crt'),
      '-CAkey',
      f('ca.key'),
      '-CAcreateserial',
      '-out',
      f('server.crt'),
      '-days',
      '2',
      '-extfile',
      f('ext.cnf'),
    ]);
    return {
      caPem: fs.readFileSync(f('ca.crt'), 'utf8'),
      certPem: fs.readFileSync(f('server.crt'), 'utf8'),
      keyPem: fs.readFileSync(f('server.key'), 'utf8'),
    };
  } finally {
    removeDir(dir);
  }
}
