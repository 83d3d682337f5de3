import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { run } from './process';

/**
 * Writes the apiserver's PKI into `dir` (mode 0700) with the openssl CLI:
 *  - ca.crt/ca.key: a self-signed CA (EC P-256, 10 years)
 *  - server.crt/server.key: serving certificate signed by it, SAN IP:127.0.0.1 + localhost + kubernetes.default.svc
 *  - sa.key/sa.pub: RSA key pair that signs/verifies service-account tokens (TokenRequest)
 */
export async function writeApiserverPki(dir: string): Promise<{
  caCrt: string;
  caKey: string;
  serverCrt: string;
  serverKey: string;
  saKey: string;
  saPub: string;
}> {
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => path.join(dir, f);
  const ec = [
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
  ];
  await run('openssl', [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '3650',
    '-subj',
    '/CN=flux-bootstrap-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await run('openssl', [
    'req',
    ...ec,
    '-keyout',
    p('server.key'),
    '-out',
    p('server.csr'),
    '-subj',
    '/CN=kube-apiserver',
  ]);
  await fs.writeFile(
    p('server.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc',
      '',
    ].join('\n'),
  );
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.crt'),
    '-days',
    '3650',
    '-sha256',
    '-extfile',
    p('server.ext'),
  ]);
  await run('openssl', [
    'genpkey',
    '-algorithm',
    'RSA',
    '-pkeyopt',
    'rsa_keygen_bits:2048',
    '-out',
    p('sa.key'),
  ]);
  await run('openssl', [
    'pkey',
    '-in',
    p('sa.key'),
    '-pubout',
    '-out',
    p('sa.pub'),
  ]);
  for (const f of ['ca.key', 'server.key', 'sa.key'])
    await fs.chmod(p(f), 0o600);
  return {
    caCrt: p('ca.crt'),
    caKey: p('ca.key'),
    serverCrt: p('server.crt'),
    serverKey: p('server.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
  };
}

/**
 * A client certificate for `user` in `groups` (the certificate's CN and O, as the apiserver reads
 * them), signed by the apiserver's CA, with its private key (PEM). EC P-256, valid for a day.
 */
export async function mintClientCertificate(
  kube: { caPem: string; caKeyFile?: string },
  subject: { user: string; groups?: string[] },
): Promise<{ certPem: string; keyPem: string }> {
  if (!kube.caKeyFile) {
    throw new Error(
      'mintClientCertificate needs the CA key of the apiserver (caKeyFile): only peers started by startKubeApiserver have it',
    );
  }
  const dir = await fs.mkdtemp(
    path.join(os.tmpdir(), 'flux-test-client-cert-'),
  );
  const p = (f: string) => path.join(dir, f);
  try {
    await fs.writeFile(p('ca.crt'), kube.caPem);
    await fs.writeFile(
      p('client.ext'),
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n',
    );
    const subj = [
      ...(subject.groups ?? []).map(g => `/O=${g}`),
      `/CN=${subject.user}`,
    ].join('');
    await run('openssl', [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      p('client.key'),
      '-out',
      p('client.csr'),
      '-subj',
      subj,
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      p('client.csr'),
      '-CA',
      p('ca.crt'),
      '-CAkey',
      kube.caKeyFile,
      '-set_serial',
      `0x${crypto.randomBytes(8).toString('hex')}`,
      '-out',
      p('client.crt'),
      '-days',
      '1',
      '-sha256',
      '-extfile',
      p('client.ext'),
    ]);
    return {
      certPem: await fs.readFile(p('client.crt'), 'utf8'),
      keyPem: await fs.readFile(p('client.key'), 'utf8'),
    };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
