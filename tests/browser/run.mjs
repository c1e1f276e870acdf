#!/usr/bin/env node
// End-to-end browser test of the `aifactory serve` web UI in headless Chromium.
//
// It starts `$AIFACTORY_BIN serve` on a free port with a fresh store and a random admin
// password (or uses a running server at $AIFACTORY_URL), logs in through the login page,
// opens every page and checks that its data renders, runs a what-if and approves it,
// switches to Simplified Chinese, takes full-page screenshots of every page in both
// languages, and fails (exit 1, one line per failed check) on any failed check, console
// error, uncaught page error or 5xx answer. The server is always stopped.
//
//   cd tests/browser && npm ci
//   AIFACTORY_BIN=/path/to/aifactory node run.mjs
//
// Environment:
//   AIFACTORY_BIN          the aifactory binary (required unless AIFACTORY_URL is set)
//   AIFACTORY_URL          test a server that is already running instead (no binary started)
//   AIFACTORY_USER         user to log in as (default admin)
//   AIFACTORY_PASSWORD     its password (with AIFACTORY_URL; otherwise a random one is set)
//   AIFACTORY_SERVE_ARGS   extra arguments for `serve`, split on spaces
//   AIFACTORY_SCREENSHOTS  where screenshots and the server log go (default artifacts/browser/)
//   CHROMIUM_PATH          the Chromium or Chrome executable (default: the first found of
//                          /usr/bin/chromium, /usr/bin/chromium-browser, /usr/bin/google-chrome)
//   AIFACTORY_TIMEOUT_MS   how long one wait may take (default 30000)

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT = Number(process.env.AIFACTORY_TIMEOUT_MS || 30000);
const OUT = path.resolve(process.env.AIFACTORY_SCREENSHOTS || 'artifacts/browser');
const PAGES = ['plant', 'machine', 'schedule', 'quality', 'forecast', 'decisions', 'assessment', 'agent'];

const failures = [];
let server = null;
let tmp = null;
let browser = null;

function log(msg) { process.stdout.write(`${msg}\n`); }
function fail(msg) { failures.push(msg); log(`FAIL ${msg}`); }

// ---------------------------------------------------------------- the server

function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(`no Chromium found (tried ${candidates.join(', ')}): install one (Debian: apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return found;
}

async function startServer() {
  if (process.env.AIFACTORY_URL) {
    return { url: process.env.AIFACTORY_URL.replace(/\/$/, ''), password: process.env.AIFACTORY_PASSWORD || '' };
  }
  const bin = process.env.AIFACTORY_BIN;
  if (!bin) throw new Error('set AIFACTORY_BIN to the aifactory binary (or AIFACTORY_URL to a running server)');
  if (!fs.existsSync(bin)) throw new Error(`AIFACTORY_BIN=${bin}: no such file`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'aifactory-browser-'));
  // 16 characters from a URL-safe alphabet.
  const password = randomBytes(12).toString('base64url').slice(0, 16);
  const args = ['serve', '--listen', '127.0.0.1:0', '--admin-password', password, '--db', path.join(tmp, 'serve.sqlite'),
    ...(process.env.AIFACTORY_SERVE_ARGS || '').split(' ').filter(Boolean)];
  log(`starting ${bin} ${args.map((a) => (a === password ? '<password>' : a)).join(' ')}`);
  const logFile = fs.createWriteStream(path.join(OUT, 'serve.log'));
  server = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  server.stdout.on('data', (b) => { stdout += b; logFile.write(b); });
  server.stderr.on('data', (b) => { stderr += b; logFile.write(b); });
  const url = await new Promise((resolve, reject) => {
    const limit = Number(process.env.AIFACTORY_START_TIMEOUT_MS || 180000);
    const timer = setTimeout(() => reject(new Error(`the server printed no http://127.0.0.1:PORT within ${limit / 1000} s; stdout:\n${stdout}\nstderr:\n${stderr}`)), limit);
    const look = () => {
      const m = stdout.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    };
    server.stdout.on('data', look);
    server.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${signal || `status ${code}`}) before listening; stderr:\n${stderr.slice(-4000)}`));
    });
    server.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
  log(`server at ${url}`);
  return { url, password };
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
  process.on(sig, () => { cleanup(); process.exit(130); });
}

// A fresh server may still be warming its twin up: wait (through the API, as the UI's user)
// until the plant, a plan, a forecast and some decisions are there, so the page checks test
// the UI rather than the start-up. What is still missing after the wait fails in the checks.
async function waitForData(base, user, password) {
  const limit = Number(process.env.AIFACTORY_READY_TIMEOUT_MS || 180000);
  const res = await fetch(`${base}/api/v1/session`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user, password }),
  });
  if (!res.ok) throw new Error(`POST /api/v1/session as ${user} answered ${res.status}: ${await res.text()}`);
  const cookie = (res.headers.get('set-cookie') || '').split(';')[0];
  const wanted = {
    '/api/v1/plant': (j) => (j.machines || []).length > 0,
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
  if (missing.length) log(`     still no data after ${Math.round((Date.now() - t0) / 1000)} s from ${last.join(', ')}`);
  else log(`     the server has data (waited ${Math.round((Date.now() - t0) / 1000)} s)`);
}

// ---------------------------------------------------------------- helpers

async function waitReady(page, what) {
  try {
    await page.waitForSelector('main[data-ready="1"] [data-testid="page-ready"]', { state: 'attached', timeout: TIMEOUT });
  } catch {
    throw new Error(`${what}: the page did not finish rendering within ${TIMEOUT / 1000} s${await bannerText(page)}`);
  }
}

async function bannerText(page) {
  const banner = page.getByTestId('error-banner');
  if (await banner.isVisible().catch(() => false)) return ` (error banner: ${(await banner.innerText()).replace(/\s+/g, ' ').trim()})`;
  return '';
}

async function noBanner(page, what) {
  const text = await bannerText(page);
  if (text) fail(`${what}: the page shows an error${text}`);
}

let currentPage = null;

async function check(what, f) {
  try {
    const note = await f();
    log(`ok   ${what}${note ? ` — ${note}` : ''}`);
  } catch (e) {
    fail(`${what}: ${e.message.split('\n')[0]}`);
    if (currentPage) {
      const name = `FAILED-${what.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '')}`;
      await shoot(currentPage, name).then((f) => log(`     screenshot ${f}`)).catch(() => {});
    }
  }
}

function expect(cond, msg) { if (!cond) throw new Error(msg); }

async function canvasIn(page, testid) {
  const loc = page.locator(`[data-testid="${testid}"] canvas`);
  await loc.first().waitFor({ state: 'attached', timeout: TIMEOUT });
  return loc.count();
}

async function shoot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(600); // charts finish their first animation (300 ms)
  const file = path.join(OUT, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function open(page, name, how) {
  await how();
  await waitReady(page, `page ${name}`);
  await noBanner(page, `page ${name}`);
}

// ---------------------------------------------------------------- the checks of each page

const checks = {
  async plant(page) {
    const tiles = page.getByTestId('machine-tile');
    await tiles.first().waitFor({ timeout: TIMEOUT });
    const n = await tiles.count();
    expect(n > 0, 'no machine tiles');
    const states = await tiles.evaluateAll((els) => els.map((e) => e.dataset.state));
    const bad = states.filter((s) => !['idle', 'busy', 'down', 'maintenance'].includes(s));
    expect(!bad.length, `machine tiles with unknown states: ${bad.join(', ')}`);
    const oee = (await page.getByTestId('kpi-oee').innerText()).trim();
    expect(/\d/.test(oee), `kpi-oee shows no number: "${oee}"`);
    expect(await canvasIn(page, 'chart-states') > 0, 'the machine states chart has no canvas');
    // The header's tier is the computed one: the same digit the assessment API answers.
    const badge = page.getByTestId('plant-tier');
    const computed = await page.evaluate(() => fetch('/api/v1/assessment', { credentials: 'same-origin' }).then((r) => r.json()).then((a) => a.tier));
    await page.waitForFunction((want) => document.querySelector('[data-testid="plant-tier"]')?.textContent.includes(String(want)), computed, { timeout: TIMEOUT });
    const shown = (await badge.innerText()).trim();
    return `${n} machine tiles, OEE card "${oee.replace(/\s+/g, ' ')}", header "${shown}" (computed tier ${computed})`;
  },
  async machine(page) {
    expect(await canvasIn(page, 'chart-health') > 0, 'the health gauge has no canvas');
    const charts = page.locator('[data-testid^="chart-telemetry-"]');
    const n = await charts.count();
    expect(n > 0, 'no telemetry charts');
    expect(await page.locator('[data-testid^="chart-telemetry-"] canvas').count() >= n, 'a telemetry chart has no canvas');
    const points = await charts.evaluateAll((els) => els.map((e) => Number(e.dataset.count || 0)));
    expect(points.some((p) => p > 0), `no telemetry points in any of the ${n} charts`);
    return `${n} telemetry charts, points ${points.join('/')}`;
  },
  async schedule(page) {
    expect(await canvasIn(page, 'gantt') > 0, 'the Gantt chart has no canvas');
    const bars = Number(await page.getByTestId('gantt').getAttribute('data-bars'));
    expect(bars > 0, 'the Gantt chart has no bars');
    return `${bars} Gantt bars`;
  },
  async quality(page) {
    expect(await canvasIn(page, 'chart-spc-mean') > 0, 'the X-bar chart has no canvas');
    expect(await canvasIn(page, 'chart-spc-range') > 0, 'the R chart has no canvas');
    const n = Number(await page.getByTestId('chart-spc-mean').getAttribute('data-count'));
    expect(n > 0, 'the X-bar chart has no points');
    return `${n} subgroups`;
  },
  async forecast(page) {
    expect(await canvasIn(page, 'chart-forecast') > 0, 'the forecast chart has no canvas');
    const n = Number(await page.getByTestId('chart-forecast').getAttribute('data-count'));
    expect(n > 0, 'the forecast chart has no points');
    return `${n} days of history and forecast`;
  },
  async decisions(page) {
    const rows = page.getByTestId('decision-row');
    await rows.first().waitFor({ timeout: TIMEOUT });
    const n = await rows.count();
    expect(n > 0, 'no decision rows');
    await rows.first().click();
    const out = page.getByTestId('decision-output');
    await out.waitFor({ timeout: TIMEOUT });
    const text = await out.innerText();
    JSON.parse(text); // the output is shown as JSON
    return `${n} decision rows; the first row's output is JSON`;
  },
  async agent(page) {
    await page.getByTestId('actions-table').waitFor({ timeout: TIMEOUT });
    const ask = page.getByTestId('agent-question');
    expect(await ask.isVisible(), 'no question box');
    return 'question box and actions table';
  },
  async assessment(page) {
    const tier = (await page.getByTestId('tier-value').innerText()).trim();
    expect(/^[0-3]$/.test(tier), `tier-value is "${tier}", not a digit 0-3`);
    expect(await canvasIn(page, 'chart-depth') > 0, 'the depth chart has no canvas');
    return `tier ${tier}`;
  },
};

async function visitAll(page, base, lang, shots) {
  for (const name of PAGES) {
    await check(`[${lang}] ${name}`, async () => {
      let note;
      if (name === 'machine') {
        await open(page, 'plant', () => page.getByTestId('nav-plant').click());
        const tile = page.getByTestId('machine-tile').first();
        await tile.waitFor({ timeout: TIMEOUT });
        const id = await tile.getAttribute('data-machine');
        await open(page, name, () => tile.click());
        expect(page.url().includes(`#/machine/${encodeURIComponent(id)}`), `clicking a tile did not open #/machine/${id} (at ${page.url()})`);
      } else {
        await open(page, name, () => page.getByTestId(`nav-${name}`).click());
        expect(page.url().endsWith(`#/${name}`), `nav-${name} did not open #/${name} (at ${page.url()})`);
      }
      const title = (await page.getByTestId('page-title').innerText()).trim();
      expect(title.length > 0, 'no page title');
      note = await checks[name](page);
      shots.push(await shoot(page, `${lang}-${name}`));
      return note;
    });
  }
}

// ---------------------------------------------------------------- the run

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  // Screenshots of failures from an earlier run would mislead; the others are overwritten.
  for (const f of fs.readdirSync(OUT)) if (/^FAILED-.*\.png$/.test(f)) fs.rmSync(path.join(OUT, f));
  const { url: base, password } = await startServer();
  const user = process.env.AIFACTORY_USER || 'admin';
  await waitForData(base, user, password);

  browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  currentPage = page;
  page.setDefaultTimeout(TIMEOUT);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    // A 4xx the UI expects (401 before login, 404 "no plan yet") is logged by Chromium as a
    // failed resource; the UI shows it in its banner, which the checks read.
    if (/^Failed to load resource: the server responded with a status of 4\d\d/.test(text)) return;
    fail(`console error on ${page.url()}: ${text}`);
  });
  page.on('pageerror', (e) => fail(`uncaught error on ${page.url()}: ${e.message}`));
  page.on('response', (r) => {
    if (r.status() >= 500) fail(`${r.request().method()} ${r.url()} answered ${r.status()}`);
  });
  const shots = [];

  // Login.
  await check('login page', async () => {
    const t0 = Date.now();
    await page.goto(`${base}/`, { waitUntil: 'domcontentloaded' });
    await page.getByTestId('login-user').waitFor({ timeout: TIMEOUT });
    expect(page.url().includes('#/login'), `an anonymous visit to / did not go to #/login (at ${page.url()})`);
    const ms = Date.now() - t0;
    log(`     login page rendered in ${ms} ms`);
    shots.push(await shoot(page, 'en-login'));
  });
  await page.getByTestId('login-user').fill(user);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
  try {
    await page.waitForURL(/#\/plant$/, { timeout: TIMEOUT });
    await waitReady(page, 'after login');
  } catch (e) {
    const msg = await page.getByTestId('login-error').innerText().catch(() => '');
    throw new Error(`login as ${user} failed: ${msg || e.message}`);
  }
  log('ok   login');

  await check('top bar', async () => {
    const who = await page.getByTestId('user').innerText();
    expect(who.includes(user), `the top bar does not show the user (${who})`);
    // The live stream: the dot turns on and the twin clock shows a time.
    await page.waitForSelector('#live-dot.on', { timeout: TIMEOUT });
    const clock = await page.locator('#twin-time').innerText();
    expect(/\d{2}:\d{2}/.test(clock), `the twin clock shows "${clock}"`);
  });

  await visitAll(page, base, 'en', shots);

  // What-if, then approve it.
  await check('what-if and approve', async () => {
    await open(page, 'schedule', () => page.getByTestId('nav-schedule').click());
    const machine = page.getByTestId('whatif-machine');
    const first = await machine.locator('option').first().getAttribute('value');
    expect(first, 'the what-if machine list is empty');
    await machine.selectOption(first);
    await page.getByTestId('whatif-hours').fill('4');
    await page.getByTestId('whatif-run').click();
    const status = page.getByTestId('proposal-status');
    await status.waitFor({ timeout: TIMEOUT * 2 }).catch(async () => {
      throw new Error(`no proposal after running the what-if${await bannerText(page)}`);
    });
    expect(await status.getAttribute('data-status') === 'pending', `a new proposal is "${await status.getAttribute('data-status')}", not pending`);
    const bars = Number(await page.getByTestId('gantt-proposal').getAttribute('data-bars'));
    expect(bars > 0, 'the proposed Gantt chart has no bars');
    await page.getByTestId('proposal-approve').click();
    await page.waitForSelector('[data-testid="proposal-status"][data-status="approved"]', { timeout: TIMEOUT }).catch(async () => {
      throw new Error(`the proposal did not become approved (status "${await status.getAttribute('data-status')}")${await bannerText(page)}`);
    });
    await noBanner(page, 'after approving');
    shots.push(await shoot(page, 'en-schedule-approved'));
  });

  // Ask the agent for a change: it is held, and a person approves it on the page.
  await check('agent: a held work order approved', async () => {
    await open(page, 'agent', () => page.getByTestId('nav-agent').click());
    await page.getByTestId('agent-question').fill('Create a work order to service TURN-01, the spindle vibrates');
    await page.getByTestId('agent-ask').click();
    const step = page.locator('[data-testid="agent-step"][data-outcome="queued"]');
    await step.first().waitFor({ timeout: TIMEOUT * 2 }).catch(async () => {
      throw new Error(`the work order was not held for approval${await bannerText(page)}`);
    });
    const text = await page.getByTestId('agent-text').innerText();
    expect(text.includes('not a language model'), `the planner does not say what it is: ${text.slice(0, 120)}`);
    const row = page.locator('[data-testid="action-row"][data-status="pending"]').first();
    await row.waitFor({ timeout: TIMEOUT });
    const id = await row.getAttribute('data-id');
    await row.getByTestId('action-approve').click();
    await page.waitForSelector(`[data-testid="action-row"][data-id="${id}"][data-status="executed"]`, { timeout: TIMEOUT }).catch(async () => {
      throw new Error(`action ${id} did not become executed${await bannerText(page)}`);
    });
    await noBanner(page, 'after approving the action');
    shots.push(await shoot(page, 'en-agent-approved'));
    return `action ${id} executed`;
  });

  // Simplified Chinese.
  await check('language switch to 简体中文', async () => {
    await page.getByTestId('lang-switch').selectOption('zh');
    await waitReady(page, 'after switching language');
    expect(await page.locator('html').getAttribute('lang') === 'zh-CN', 'html lang is not zh-CN');
    const nav = (await page.getByTestId('nav-plant').innerText()).trim();
    expect(nav === '工厂总览', `nav-plant reads "${nav}", not 工厂总览`);
    const title = (await page.getByTestId('page-title').innerText()).trim();
    expect(/[\u4e00-\u9fff]/.test(title), `the page title "${title}" has no Chinese`);
  });
  await visitAll(page, base, 'zh', shots);

  await check('language persists across a reload', async () => {
    await page.reload();
    await waitReady(page, 'after reload');
    const nav = (await page.getByTestId('nav-schedule').innerText()).trim();
    expect(nav === '排产', `after a reload nav-schedule reads "${nav}"`);
  });

  await check('logout', async () => {
    await page.getByTestId('logout').click();
    await page.getByTestId('login-user').waitFor({ timeout: TIMEOUT });
    shots.push(await shoot(page, 'zh-login'));
    await page.goto(`${base}/#/decisions`);
    await page.getByTestId('login-user').waitFor({ timeout: TIMEOUT });
    expect(page.url().includes('#/login'), 'after logout a page opened without logging in');
  });

  log(`screenshots: ${shots.length} in ${OUT}`);
}

let code = 0;
try {
  await main();
} catch (e) {
  fail(e.message);
}
try { if (browser) await browser.close(); } catch { /* already gone */ }
await stopServer().catch(() => {});
cleanup();
if (failures.length) {
  log(`\n${failures.length} check(s) failed:`);
  for (const f of failures) log(`  - ${f}`);
  code = 1;
} else {
  log('\nall browser checks passed');
}
process.exit(code);
