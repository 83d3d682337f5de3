import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { Browser, chromium, Page } from 'playwright-core';
import { repoRoot } from './sandbox';

/** Debian's Chromium, with the flags the test machine needs (no sandbox as root, no network). */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
];

export function chromiumPath(): string {
  const candidates = [
    process.env.CHROMIUM_PATH,
    '/usr/bin/chromium',
    '/usr/bin/chromium-browser',
  ];
  const found = candidates.find(p => p && fs.existsSync(p));
  if (!found) {
    throw new Error(
      'Chromium is not installed (Debian package "chromium"; test/peers/scripts/install-system-deps.sh installs it)',
    );
  }
  return found;
}

export async function launchChromium(
  opts: { extraArgs?: string[] } = {},
): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [...CHROMIUM_ARGS, ...(opts.extraArgs ?? [])],
  });
}

/**
 * The base64 SHA-256 of the public key (SPKI) of the certificate an HTTPS server on loopback
 * presents, after checking it against `caPem`: what Chromium's
 * `--ignore-certificate-errors-spki-list` takes, so the browser accepts that one server's
 * certificate (a test peer with its own CA) and still refuses every other bad certificate.
 */
export async function serverSpkiHash(
  url: string,
  caPem: string,
): Promise<string> {
  const { hostname, port } = new URL(url);
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const socket = tls.connect(
      { host: hostname, port: Number(port), ca: caPem, servername: undefined },
      () => {
        const cert = socket.getPeerCertificate();
        socket.end();
        resolve(cert.raw);
      },
    );
    socket.once('error', reject);
  });
  const spki = new X509Certificate(raw).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  return createHash('sha256').update(spki).digest('base64');
}

/** Where screenshots go (test artifacts): `test-results/e2e/` at the repository root. */
export const ARTIFACTS_DIR = path.join(repoRoot, 'test-results', 'e2e');

export async function screenshot(page: Page, name: string): Promise<string> {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Records browser console errors and failed API responses, for failure diagnostics. */
export function recordProblems(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', m => {
    if (m.type() === 'error')
      problems.push(`console: ${m.text().slice(0, 500)}`);
  });
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  page.on('response', r => {
    if (r.url().includes('/api/') && r.status() >= 500) {
      problems.push(`HTTP ${r.status()} ${r.request().method()} ${r.url()}`);
    }
  });
  return problems;
}
