#!/usr/bin/env node
/* eslint-disable no-console */
/**
 * Screenshots of the Flux bootstrap card in headless Chromium, driven over the DevTools protocol
 * (Node's built-in WebSocket; no extra packages).
 *
 *   node plugins/flux-bootstrap/scripts/screenshot.js --out docs/screenshots \
 *     ready=http://localhost:7007/catalog/default/resource/prod-eu \
 *     failing=http://localhost:7007/catalog/default/component/fleet-infra
 *
 * Each `name=url` pair produces `<out>/<name>.png`: the page is opened, a guest sign-in is
 * accepted when one is offered (button "Enter", and the "fall back to a legacy guest token?"
 * confirm dialog), and the shot is taken of the card (`--selector`, default the InfoCard titled
 * "Flux bootstrap") once it has finished loading and shows `--wait-text` (default "Flux
 * bootstrap"; e.g. "Failing" to wait for that state — meanwhile the card's refresh button is
 * pressed every few seconds).
 *
 * Options: --chromium <path> (default: chromium on PATH), --width 1400, --height 1600,
 * --timeout 60000 (ms per page), --full (whole page instead of the card).
 *
 * Works against the running app (`npm start`) and against the card's dev harness
 * (`npm start -w @flux-bootstrap/plugin-flux-bootstrap`, pages under
 * http://localhost:3100/flux-bootstrap/state/<state>).
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const net = require('node:net');

// Node 20 has WebSocket behind a flag: re-run this script with it.
if (
  typeof WebSocket === 'undefined' &&
  !process.execArgv.includes('--experimental-websocket')
) {
  const child = spawn(
    process.execPath,
    [
      '--experimental-websocket',
      '--no-warnings',
      __filename,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit' },
  );
  child.on('exit', code => process.exit(code ?? 1));
  return;
}

function parseArgs(argv) {
  const opts = {
    out: 'docs/screenshots',
    // with --selector: wait for this text anywhere in the element
    chromium: 'chromium',
    width: 1400,
    height: 1600,
    timeout: 60000,
    waitText: 'Flux bootstrap',
    selector: '',
    full: false,
    shots: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--out') opts.out = next();
    else if (a === '--chromium') opts.chromium = next();
    else if (a === '--width') opts.width = Number(next());
    else if (a === '--height') opts.height = Number(next());
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--wait-text') opts.waitText = next();
    else if (a === '--selector') opts.selector = next();
    else if (a === '--full') opts.full = true;
    else if (/^[\w.-]+=https?:\/\//.test(a)) {
      const eq = a.indexOf('=');
      opts.shots.push({ name: a.slice(0, eq), url: a.slice(eq + 1) });
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  if (opts.shots.length === 0) throw new Error('give at least one name=url');
  return opts;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

async function waitForDebugger(port, deadline) {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/json/list`);
      const targets = await res.json();
      const page = targets.find(t => t.type === 'page');
      if (page) return page.webSocketDebuggerUrl;
    } catch {
      // not up yet
    }
    await sleep(200);
  }
  throw new Error('Chromium did not open its DevTools endpoint');
}

class Cdp {
  constructor(ws) {
    this.ws = ws;
    this.id = 0;
    this.pending = new Map();
    this.listeners = [];
    ws.addEventListener('message', ev => {
      const msg = JSON.parse(ev.data);
      if (msg.id && this.pending.has(msg.id)) {
        const { resolve, reject } = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) reject(new Error(msg.error.message));
        else resolve(msg.result);
      } else if (msg.method) {
        for (const l of this.listeners) l(msg);
      }
    });
  }
  static async connect(url) {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve, { once: true });
      ws.addEventListener('error', reject, { once: true });
    });
    return new Cdp(ws);
  }
  send(method, params = {}) {
    const id = ++this.id;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise((resolve, reject) =>
      this.pending.set(id, { resolve, reject }),
    );
  }
  on(fn) {
    this.listeners.push(fn);
  }
  close() {
    this.ws.close();
  }
}

async function evaluate(cdp, expression) {
  const r = await cdp.send('Runtime.evaluate', {
    expression,
    returnByValue: true,
    awaitPromise: true,
  });
  return r.result?.value;
}

// The Backstage UI card: an <article> named by its "Flux bootstrap" heading.
const CARD_SELECTOR = `(() => {
  const byId = document.querySelector('[data-testid="flux-bootstrap-card"]');
  if (byId) return byId;
  const titles = [...document.querySelectorAll('h2, h3, h4, h5')]
    .filter(e => e.textContent.trim() === 'Flux bootstrap');
  for (const t of titles) {
    const card = t.closest('article');
    if (card) return card;
  }
  return null;
})()`;

async function shoot(cdp, shot, opts) {
  await cdp.send('Page.navigate', { url: shot.url });
  const deadline = Date.now() + opts.timeout;
  let box;
  while (Date.now() < deadline) {
    // Guest sign-in page of the app / dev app.
    await evaluate(
      cdp,
      `(() => { const b = [...document.querySelectorAll('button')].find(x => /^enter$/i.test(x.textContent.trim())); if (b) b.click(); return !!b; })()`,
    );
    const ready = await evaluate(
      cdp,
      `(() => {
        const card = ${
          opts.selector
            ? `document.querySelector(${JSON.stringify(opts.selector)})`
            : CARD_SELECTOR
        };
        if (!card) return null;
        if (card.querySelector('[role=progressbar]')) return null;
        if (!card.innerText.includes(${JSON.stringify(opts.waitText)})) {
          // Not the expected content yet: ask the card to read the clusters again, now and then.
          const now = Date.now();
          if (!window.__fluxShotRefreshAt || now - window.__fluxShotRefreshAt > 3000) {
            window.__fluxShotRefreshAt = now;
            const refresh = card.querySelector('button[aria-label="Refresh"]');
            if (refresh) refresh.click();
          }
          return null;
        }
        const r = card.getBoundingClientRect();
        return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height };
      })()`,
    );
    if (ready && ready.width > 0) {
      box = ready;
      break;
    }
    await sleep(500);
  }
  if (!box)
    throw new Error(
      `${shot.name}: the card did not finish loading at ${shot.url}`,
    );
  await sleep(800); // let fonts, transitions and expanding panels settle, then measure again
  box = await evaluate(
    cdp,
    `(() => {
      const card = ${
        opts.selector
          ? `document.querySelector(${JSON.stringify(opts.selector)})`
          : CARD_SELECTOR
      };
      window.scrollTo(0, 0);
      const r = card.getBoundingClientRect();
      return { x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height };
    })()`,
  );
  const params = { format: 'png' };
  if (!opts.full) {
    const pad = 8;
    params.clip = {
      x: Math.max(0, box.x - pad),
      y: Math.max(0, box.y - pad),
      width: box.width + 2 * pad,
      height: box.height + 2 * pad,
      scale: 1,
    };
  }
  const { data } = await cdp.send('Page.captureScreenshot', params);
  const file = path.join(opts.out, `${shot.name}.png`);
  fs.writeFileSync(file, Buffer.from(data, 'base64'));
  console.log(`wrote ${file}`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.out, { recursive: true });
  const port = await freePort();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'flux-card-shots-'));
  const browser = spawn(
    opts.chromium,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--hide-scrollbars',
      `--window-size=${opts.width},${opts.height}`,
      `--user-data-dir=${profile}`,
      `--remote-debugging-port=${port}`,
      'about:blank',
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, DBUS_SESSION_BUS_ADDRESS: '' },
      // its own process group, so that its helper processes are stopped with it
      detached: true,
    },
  );
  let stderr = '';
  browser.stderr.on('data', d => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  try {
    const wsUrl = await waitForDebugger(port, Date.now() + 20000);
    const cdp = await Cdp.connect(wsUrl);
    cdp.on(msg => {
      if (msg.method === 'Page.javascriptDialogOpening') {
        cdp
          .send('Page.handleJavaScriptDialog', { accept: true })
          .catch(() => {});
      }
    });
    await cdp.send('Page.enable');
    await cdp.send('Runtime.enable');
    await cdp.send('Emulation.setDeviceMetricsOverride', {
      width: opts.width,
      height: opts.height,
      deviceScaleFactor: 1,
      mobile: false,
    });
    for (const shot of opts.shots) await shoot(cdp, shot, opts);
    cdp.close();
  } catch (error) {
    console.error(error.message);
    if (stderr) console.error(stderr);
    process.exitCode = 1;
  } finally {
    const exited = new Promise(resolve => {
      if (browser.exitCode !== null || browser.signalCode !== null) resolve();
      else browser.once('exit', resolve);
    });
    try {
      process.kill(-browser.pid, 'SIGTERM'); // the browser's own process group
    } catch {
      // already gone
    }
    await Promise.race([exited, sleep(5000)]);
    try {
      process.kill(-browser.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    await sleep(200);
    try {
      fs.rmSync(profile, {
        recursive: true,
        force: true,
        maxRetries: 10,
        retryDelay: 200,
      });
    } catch (e) {
      console.warn(
        `could not remove the temporary browser profile ${profile}: ${e.message}`,
      );
    }
  }
}

main();
