#!/usr/bin/env node
// First render of every page of the `aifactory serve` web UI in headless Chromium.
//
// usage (from the repository root, after `cd tests/browser && npm ci`):
//   AIFACTORY_BIN=target/release/aifactory node bench/ui_render.mjs [--json]
//
// It starts `$AIFACTORY_BIN serve` on 127.0.0.1:0 with a fresh store and a random admin
// password (as tests/browser/run.mjs does), waits through the API until the plant, a plan, a
// forecast, decisions and SPC data exist, logs in once through the login page and keeps the
// session cookie (storageState). Then, RUNS times (round-robin over the pages), each page is
// loaded cold: a NEW browser context (empty HTTP cache) that already carries the session, and
// `page.goto(url)`. In the page it records, all in ms from navigation start (timeOrigin):
//   fcp    first-contentful-paint (performance paint entries)
//   ready  when the page's data has rendered: `main[data-ready="1"] [data-testid="page-ready"]`
//          appears (the marker the browser tests wait on), seen by a MutationObserver
//   dcl    DOMContentLoaded (navigation timing, domContentLoadedEventStart)
// The login page is loaded the same way, without the session. One warm-up load (not counted)
// absorbs the browser's own start-up. The transfer size of the shell (index.html and the
// scripts, styles and echarts it loads; no page modules) comes from resource timing.
//
// Prints a table (median and max per page) or, with --json, only JSON. A benchmark: slow
// numbers never fail it. It exits 1 on errors: the server did not start, a page was not ready
// within AIFACTORY_TIMEOUT_MS, or a page rendered its error state instead of its data.
// The server and the browser are always stopped.
//
// Environment:
//   AIFACTORY_BIN          the aifactory binary (required)
//   RUNS                   cold loads per page (default 10)
//   WARMUP                 uncounted warm-up loads before measuring (default 1)
//   AIFACTORY_SERVE_ARGS   extra arguments for `serve`, split on spaces
//   CHROMIUM_PATH          Chromium or Chrome (default: /usr/bin/chromium and the like)
//   AIFACTORY_TIMEOUT_MS   how long one page may take to become ready (default 30000)
//   AIFACTORY_READY_TIMEOUT_MS  how long to wait for the server's data (default 180000)
// playwright-core is resolved from tests/browser/node_modules.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(ROOT, 'tests/browser/package.json'));
let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  process.stderr.write(`cannot load playwright-core from tests/browser/node_modules (run: cd tests/browser && npm ci): ${e.message}\n`);
  process.exit(1);
}

const JSON_ONLY = process.argv.includes('--json');
const RUNS = Math.max(1, Number(process.env.RUNS || 10));
const WARMUP = Math.max(0, Number(process.env.WARMUP ?? 1));
const TIMEOUT = Number(process.env.AIFACTORY_TIMEOUT_MS || 30000);
const READY = 'main[data-ready="1"] [data-testid="page-ready"]';
const MACHINE = 'TURN-01';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];
const CONTEXT = { viewport: { width: 1440, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' };

let server = null;
let serverLog = '';
let tmp = null;
let browser = null;

// Progress goes to stderr, so that stdout is only the table or only the JSON.
function log(msg) { process.stderr.write(`${msg}\n`); }

// ---------------------------------------------------------------- the server

function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')}): install one or set CHROMIUM_PATH`);
  return found;
}

async function startServer() {
  const bin = process.env.AIFACTORY_BIN;
  if (!bin) throw new Error('set AIFACTORY_BIN to the aifactory binary');
  if (!fs.existsSync(bin)) throw new Error(`AIFACTORY_BIN=${bin}: no such file`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aifactory-ui-bench-'));
  const password = randomBytes(12).toString('base64url').slice(0, 16);
  const args = ['serve', '--listen', '127.0.0.1:0', '--admin-password', password, '--db', path.join(tmp, 'serve.sqlite'),
    ...(process.env.AIFACTORY_SERVE_ARGS || '').split(' ').filter(Boolean)];
  log(`starting ${bin} ${args.map((a) => (a === password ? '<password>' : a)).join(' ')}`);
  server = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  server.stdout.on('data', (b) => { stdout += b; serverLog = (serverLog + b).slice(-20000); });
  server.stderr.on('data', (b) => { serverLog = (serverLog + b).slice(-20000); });
  const url = await new Promise((resolve, reject) => {
    const limit = Number(process.env.AIFACTORY_START_TIMEOUT_MS || 180000);
    const timer = setTimeout(() => reject(new Error(`the server printed no http://127.0.0.1:PORT within ${limit / 1000} s; its output:\n${serverLog.slice(-4000)}`)), limit);
    server.stdout.on('data', () => {
      const m = stdout.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    });
    server.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${signal || `status ${code}`}) before listening; its output:\n${serverLog.slice(-4000)}`));
    });
    server.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  log(`server at ${url}`);
  return { url, password, bin };
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const done = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => { try { server.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
  await done;
  clearTimeout(timer);
}

function cleanup() {
  try { if (server && server.exitCode === null && server.signalCode === null) server.kill('SIGKILL'); } catch { /* gone */ }
  try { if (tmp) fs.rmSync(tmp, { recursive: true, force: true }); } catch { /* best effort */ }
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    const b = browser;
    browser = null;
    Promise.resolve(b && b.close()).catch(() => {}).finally(() => { cleanup(); process.exit(130); });
  });
}

// As in tests/browser/run.mjs: wait until the pages have data to render. Returns the machine
// ids of the plant.
async function waitForData(base, user, password) {
  const limit = Number(process.env.AIFACTORY_READY_TIMEOUT_MS || 180000);
  const res = await fetch(`${base}/api/v1/session`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user, password }),
  });
  if (!res.ok) throw new Error(`POST /api/v1/session as ${user} answered ${res.status}: ${await res.text()}`);
  const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
  let machines = [];
  const wanted = {
    '/api/v1/plant': (j) => { machines = (j.machines || []).map((m) => m.id); return machines.length > 0; },
    '/api/v1/schedule': (j) => (j.bars || []).length > 0,
    '/api/v1/forecast': (j) => (j.forecast || []).length > 0,
    '/api/v1/decisions?limit=1': (j) => (j.decisions || []).length > 0,
    '/api/v1/quality/spc': (j) => (j.charts || [j]).some((c) => (c.points || []).length > 0),
  };
  const t0 = Date.now();
  let missing = Object.keys(wanted);
  let last = [];
  while (missing.length && Date.now() - t0 < limit) {
    const still = [];
    for (const p of missing) {
      const r = await fetch(`${base}${p}`, { headers: { Cookie: cookie } }).catch(() => null);
      const j = r && r.ok ? await r.json().catch(() => null) : null;
      if (!j || !wanted[p](j)) still.push(`${p} (${r ? r.status : 'no answer'})`);
    }
    missing = missing.filter((p) => still.some((x) => x.startsWith(`${p} `)));
    if (missing.length) await new Promise((r) => setTimeout(r, 2000));
    last = still;
  }
  if (missing.length) log(`warning: still no data after ${Math.round((Date.now() - t0) / 1000)} s from ${last.join(', ')}`);
  else log(`the server has data (waited ${Math.round((Date.now() - t0) / 1000)} s)`);
  return machines;
}

// ---------------------------------------------------------------- in the page

// Runs before the page's own scripts in every document: notes performance.now() (ms since
// timeOrigin, i.e. navigation start) when the readiness marker first appears.
function instrument(selector) {
  const look = () => {
    if (window.__benchReady != null) return;
    const m = document.querySelector(selector);
    if (!m) return;
    window.__benchReady = performance.now();
    window.__benchError = document.querySelector('main')?.dataset.error === '1';
    obs.disconnect();
  };
  const obs = new MutationObserver(look);
  obs.observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-ready'] });
}

// Reads the timings once the page is ready; waits (up to 5 s) for the FCP entry if the paint
// has not been reported yet.
async function collect() {
  const fcp = await new Promise((resolve) => {
    const find = (list) => list.find((e) => e.name === 'first-contentful-paint');
    const have = find(performance.getEntriesByType('paint'));
    if (have) { resolve(have.startTime); return; }
    const timer = setTimeout(() => { po.disconnect(); resolve(null); }, 5000);
    const po = new PerformanceObserver((l) => {
      const e = find(l.getEntries());
      if (e) { clearTimeout(timer); po.disconnect(); resolve(e.startTime); }
    });
    po.observe({ type: 'paint', buffered: true });
  });
  const nav = performance.getEntriesByType('navigation')[0];
  const entry = (e) => ({
    path: new URL(e.name).pathname, type: e.initiatorType, transfer: e.transferSize, encoded: e.encodedBodySize, decoded: e.decodedBodySize,
  });
  return {
    fcp,
    ready: window.__benchReady,
    error: window.__benchError,
    dcl: nav ? nav.domContentLoadedEventStart : null,
    ttfb: nav ? nav.responseStart : null,
    resources: [
      ...(nav ? [entry(nav)] : []),
      ...performance.getEntriesByType('resource').filter((e) => e.name.startsWith(location.origin)).map(entry),
    ],
  };
}

// ---------------------------------------------------------------- loads

async function bannerText(page) {
  const text = await page.getByTestId('error-banner').innerText({ timeout: 1000 }).catch(() => '');
  return text.replace(/\s+/g, ' ').trim();
}

async function load(target, storageState) {
  const context = await browser.newContext({ ...CONTEXT, ...(storageState ? { storageState } : {}) });
  try {
    await context.addInitScript(instrument, READY);
    const page = await context.newPage();
    const errors5xx = [];
    page.on('response', (r) => { if (r.status() >= 500) errors5xx.push(`${r.request().method()} ${new URL(r.url()).pathname} ${r.status()}`); });
    await page.goto(target.url, { waitUntil: 'commit', timeout: TIMEOUT });
    try {
      await page.waitForSelector(READY, { state: 'attached', timeout: TIMEOUT });
    } catch {
      const banner = await bannerText(page);
      throw new Error(`${target.name} (${target.url}): not ready within ${TIMEOUT / 1000} s (at ${page.url()})${banner ? `; error banner: ${banner}` : ''}`);
    }
    if (target.name !== 'login' && page.url().includes('#/login')) {
      throw new Error(`${target.name}: the stored session was not accepted (the page went to ${page.url()})`);
    }
    const m = await page.evaluate(collect);
    m.banner = m.error ? await bannerText(page) : '';
    m.errors5xx = errors5xx;
    return m;
  } finally {
    await context.close().catch(() => {});
  }
}

async function login(base, user, password) {
  const context = await browser.newContext(CONTEXT);
  try {
    const page = await context.newPage();
    await page.goto(`${base}/#/login`, { timeout: TIMEOUT });
    await page.getByTestId('login-user').fill(user, { timeout: TIMEOUT });
    await page.getByTestId('login-password').fill(password);
    await page.getByTestId('login-submit').click();
    try {
      await page.waitForURL(/#\/plant$/, { timeout: TIMEOUT });
      await page.waitForSelector(READY, { state: 'attached', timeout: TIMEOUT });
    } catch (e) {
      const msg = await page.getByTestId('login-error').innerText({ timeout: 1000 }).catch(() => '');
      throw new Error(`login as ${user} failed: ${msg || e.message.split('\n')[0]}`);
    }
    return await context.storageState();
  } finally {
    await context.close().catch(() => {});
  }
}

// ---------------------------------------------------------------- numbers

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}
function summary(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return { median: null, max: null, min: null, samples: xs.map((x) => (x == null ? null : round(x))) };
  return { median: round(median(v)), max: round(Math.max(...v)), min: round(Math.min(...v)), samples: xs.map((x) => (x == null ? null : round(x))) };
}
function round(x) { return Math.round(x * 10) / 10; }
function ms(x) { return x == null ? '—' : x.toFixed(0); }
function kib(b) { return `${(b / 1024).toFixed(1)} KiB`; }

// The shell: the document and what it loads for every page (scripts, styles, echarts), not the
// page modules loaded on demand, the favicon or the API.
function isShell(r) {
  if (r.type === 'navigation') return true;
  return r.path.startsWith('/ui/') && !r.path.startsWith('/ui/pages/') && /\.(js|css)$/.test(r.path);
}

// ---------------------------------------------------------------- the run

async function main() {
  const { url: base, password, bin } = await startServer();
  const user = 'admin';
  const machines = await waitForData(base, user, password);
  let machine = MACHINE;
  if (machines.length && !machines.includes(MACHINE)) {
    machine = machines[0];
    log(`warning: the plant has no ${MACHINE}; measuring #/machine/${machine} instead`);
  }

  browser = await chromium.launch({ executablePath: chromiumPath(), args: CHROMIUM_ARGS });
  const storageState = await login(base, user, password);
  log(`logged in as ${user}; ${browser.version()}`);

  const targets = [
    { name: 'login', url: `${base}/#/login`, session: false },
    ...['plant', `machine/${encodeURIComponent(machine)}`, 'schedule', 'quality', 'forecast', 'decisions', 'assessment']
      .map((p) => ({ name: p.split('/')[0], hash: `#/${p}`, url: `${base}/#/${p}`, session: true })),
  ];
  for (const t of targets) t.hash = t.hash || '#/login';

  for (let i = 0; i < WARMUP; i++) await load(targets[1], storageState);

  const results = Object.fromEntries(targets.map((t) => [t.name, []]));
  const errors = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const t of targets) {
      const m = await load(t, t.session ? storageState : null);
      results[t.name].push(m);
      if (m.error) errors.push(`${t.name} run ${run}: the page rendered its error state${m.banner ? ` (${m.banner})` : ''}`);
      for (const e of m.errors5xx) errors.push(`${t.name} run ${run}: ${e}`);
    }
    log(`run ${run}/${RUNS}: ${targets.map((t) => `${t.name} ${ms(results[t.name][run - 1].ready)}`).join(', ')} ms ready`);
  }

  // Transfer sizes: the first counted cold load of each page.
  const sizes = (rs, keep) => rs.filter(keep).reduce((a, r) => ({ transfer: a.transfer + r.transfer, decoded: a.decoded + r.decoded }), { transfer: 0, decoded: 0 });
  const shellFiles = results.plant[0].resources.filter(isShell)
    .map((r) => ({ path: r.type === 'navigation' ? '/ (index.html)' : r.path, transfer: r.transfer, decoded: r.decoded }));
  const shell = { ...sizes(shellFiles, () => true), files: shellFiles };

  const report = {
    benchmark: 'ui_render',
    when: new Date().toISOString(),
    binary: bin,
    browser: `${browser.version()} (${chromiumPath()})`,
    host: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? null },
    runs: RUNS,
    warmup: WARMUP,
    unit: 'ms since navigation start; bytes',
    pages: Object.fromEntries(targets.map((t) => {
      const rs = results[t.name];
      const first = rs[0].resources;
      return [t.name, {
        hash: t.hash,
        session: t.session,
        fcp: summary(rs.map((r) => r.fcp)),
        ready: summary(rs.map((r) => r.ready)),
        dcl: summary(rs.map((r) => r.dcl)),
        ttfb: summary(rs.map((r) => r.ttfb)),
        ui_bytes: sizes(first, (r) => r.type === 'navigation' || r.path.startsWith('/ui/')),
        api_requests: first.filter((r) => r.path.startsWith('/api/')).length,
      }];
    })),
    shell,
    errors,
  };

  if (JSON_ONLY) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    const head = ['page', 'FCP med', 'FCP max', 'ready med', 'ready max', 'DCL med', 'DCL max', 'UI transfer'];
    const rows = targets.map((t) => {
      const p = report.pages[t.name];
      return [t.hash, ms(p.fcp.median), ms(p.fcp.max), ms(p.ready.median), ms(p.ready.max), ms(p.dcl.median), ms(p.dcl.max), kib(p.ui_bytes.transfer)];
    });
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
    const out = [
      `first render of each page, ${RUNS} cold loads each (new browser context, empty cache; ${WARMUP} warm-up load not counted)`,
      `ms from navigation start; ready = main[data-ready="1"] with the page's data rendered; ${report.browser}`,
      '',
      line(head),
      line(w.map((n) => '-'.repeat(n))),
      ...rows.map(line),
      '',
      `shell (index.html + scripts + styles + echarts, no page modules): ${kib(shell.transfer)} transferred, ${kib(shell.decoded)} decoded, ${shellFiles.length} files`,
      ...shellFiles.map((f) => `  ${f.path.padEnd(28)} ${kib(f.transfer).padStart(12)}`),
    ];
    if (errors.length) out.push('', `${errors.length} error(s):`, ...errors.map((e) => `  - ${e}`));
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return errors.length ? 1 : 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  log(`error: ${e.message}`);
  if (server && serverLog && !/before listening|printed no/.test(e.message)) log(`server output (tail):\n${serverLog.slice(-2000)}`);
  code = 1;
}
try { if (browser) await browser.close(); } catch { /* already gone */ }
browser = null;
await stopServer().catch(() => {});
cleanup();
process.exit(code);
