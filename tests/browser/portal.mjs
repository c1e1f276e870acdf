#!/usr/bin/env node
// End-to-end browser test of the programme portal's web UI in headless Chromium.
//
// It seeds a small synthetic city into the PostgreSQL database named by
// $AIFACTORY_PORTAL_DATABASE (`aifactory portal seed --json`, which prints the demo users'
// tokens), starts `aifactory portal serve` on a free port, and then, as the programme officer:
// the targets dashboard, the registry, a plant's evidence history, issuing a voucher through the
// form, the books; in Simplified Chinese too; as the contracted provider: redeeming that
// voucher; as a plant: its own page and posting a need with its matches. Every page leaves a
// screenshot; any failed check, console error, page error or 5xx answer fails the run (exit 1).
//
//   AIFACTORY_BIN=/path/to/aifactory AIFACTORY_PORTAL_DATABASE=postgres://… node portal.mjs

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TIMEOUT = Number(process.env.AIFACTORY_TIMEOUT_MS || 30000);
const OUT = path.resolve(process.env.AIFACTORY_SCREENSHOTS || 'artifacts/browser');
const BIN = process.env.AIFACTORY_BIN;
const DB = process.env.AIFACTORY_PORTAL_DATABASE;
const failures = [];
let server = null;

function log(msg) { process.stdout.write(`${msg}\n`); }
function fail(msg) { failures.push(msg); log(`FAIL ${msg}`); }
function expect(cond, msg) { if (!cond) throw new Error(msg); }

function chromiumPath() {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')})`);
  return found;
}

function seed() {
  const args = ['portal', 'seed', '--plants', '200', '--workers', '4', '--json', '--database', DB];
  log(`seeding: ${BIN} ${args.slice(0, -1).join(' ')} <database>`);
  const r = spawnSync(BIN, args, { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`portal seed failed (${r.status}): ${r.stderr.slice(-2000)}`);
  return JSON.parse(r.stdout).tokens;
}

async function startServer() {
  const logFile = fs.createWriteStream(path.join(OUT, 'portal.log'));
  server = spawn(BIN, ['portal', 'serve', '--listen', '127.0.0.1:0', '--database', DB], { stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const grab = (b) => { text += b; logFile.write(b); };
  server.stdout.on('data', grab);
  server.stderr.on('data', grab);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the portal printed no address in 60 s:\n${text}`)), 60000);
    const look = () => {
      const m = text.match(/http:\/\/127\.0\.0\.1:\d+/);
      if (m) { clearTimeout(timer); resolve(m[0]); }
    };
    server.stdout.on('data', look);
    server.stderr.on('data', look);
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the portal exited (${code}):\n${text}`)); });
  });
}

function cleanup() {
  try { if (server && server.exitCode === null) server.kill('SIGKILL'); } catch { /* gone */ }
}
process.on('exit', cleanup);

// `page` names the view that must be showing (data-page), so a check never reads the page
// it came from while the next one is still loading.
async function ready(page, what, view) {
  try {
    await page.waitForSelector(view ? `main[data-ready="1"] > [data-page="${view}"]` : 'main[data-ready="1"]', { timeout: TIMEOUT });
  } catch {
    throw new Error(`${what}: the page did not finish rendering`);
  }
  const banner = page.getByTestId('error-banner');
  if (await banner.isVisible()) throw new Error(`${what}: error banner: ${await banner.innerText()}`);
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(OUT, `portal-${name}.png`), fullPage: true });
}

async function check(what, f) {
  try {
    const note = await f();
    log(`ok   ${what}${note ? ` — ${note}` : ''}`);
  } catch (e) {
    fail(`${what}: ${e.message.split('\n')[0]}`);
  }
}

async function signIn(page, base, token, what) {
  await page.goto(`${base}/#/login`);
  await page.locator('details summary').click();
  await page.getByTestId('login-token').waitFor({ timeout: TIMEOUT });
  await page.getByTestId('login-token').fill(token);
  await page.getByTestId('login-token-submit').click();
  await page.waitForFunction(() => !location.hash.startsWith('#/login'), null, { timeout: TIMEOUT });
  await ready(page, what);
}

async function go(page, base, hash, what) {
  await page.goto(`${base}/${hash}`);
  await ready(page, what, hash.replace(/^#\//, '').split('/')[0]);
}

async function main() {
  expect(BIN && fs.existsSync(BIN), 'set AIFACTORY_BIN to the aifactory binary');
  expect(DB, 'set AIFACTORY_PORTAL_DATABASE to an empty PostgreSQL database or schema');
  fs.mkdirSync(OUT, { recursive: true });
  const tokens = seed();
  const base = await startServer();
  log(`portal at ${base}`);
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  // The wrong-token check expects one 401; the browser logs it as a failed resource.
  let expect401 = false;
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expect401 && /status of 401/.test(m.text())) return;
    fail(`console error: ${m.text()}`);
  });
  page.on('pageerror', (e) => fail(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 500) fail(`${r.status()} from ${r.url()}`); });

  let voucher = null;
  await check('a wrong token is refused on the login page', async () => {
    expect401 = true;
    await page.goto(`${base}/`);
    await page.locator('details summary').click();
    await page.getByTestId('login-token').fill('nope');
    await page.getByTestId('login-token-submit').click();
    await page.getByTestId('login-error').filter({ hasText: /unknown token/ }).waitFor();
    await page.getByTestId('login-name').fill('officer');
    await page.getByTestId('login-password').fill('not-the-password');
    await page.getByTestId('login-submit').click();
    await page.getByTestId('login-error').filter({ hasText: /wrong user name or password/ }).waitFor();
    await shoot(page, 'login');
    expect401 = false;
  });
  await check('the assessor signs in with a name and a password', async () => {
    const r = await fetch(`${base}/api/v1/users/assessor/password`, {
      method: 'PUT', headers: { Authorization: `Bearer ${tokens.officer}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ password: 'assessor-password-1' }),
    });
    expect(r.ok, `setting the password: ${r.status}`);
    await page.goto(`${base}/#/login`);
    await page.getByTestId('login-name').fill('assessor');
    await page.getByTestId('login-password').fill('assessor-password-1');
    await page.getByTestId('login-submit').click();
    await page.waitForFunction(() => location.hash.startsWith('#/targets'), null, { timeout: TIMEOUT });
    await ready(page, 'assessor targets', 'targets');
    const user = await page.getByTestId('user').innerText();
    expect(/assessor/.test(user), user);
    await page.getByTestId('logout').click();
    await page.waitForFunction(() => location.hash.startsWith('#/login'), null, { timeout: TIMEOUT });
  });
  await check('officer: targets dashboard', async () => {
    await signIn(page, base, tokens.officer, 'targets');
    expect(page.url().includes('#/targets'), `landed on ${page.url()}`);
    const rows = await page.locator('[data-testid="targets-district"] tbody tr').count();
    expect(rows >= 5, `${rows} district rows`);
    const plants = await page.locator('[data-testid="target-stats"] .stat-value').first().innerText();
    expect(plants.replace(/\D/g, '') === '200', `plants stat ${plants}`);
    await shoot(page, 'targets-en');
    return `${rows} districts`;
  });
  await check('officer: registry and a plant\'s evidence history', async () => {
    await go(page, base, '#/plants', 'plants');
    const rows = await page.locator('[data-testid="plants"] tbody tr').count();
    expect(rows === 100, `${rows} rows on the first page`);
    await shoot(page, 'plants-en');
    // A plant that grew during the year: its ledger grew every quarter, so four bundles.
    await page.locator('[data-testid="plants"] tbody tr').filter({ has: page.locator('.tier-2') }).first().locator('a').click();
    await ready(page, 'plant', 'plant');
    const history = await page.locator('[data-testid="evidence"] tbody tr').count();
    expect(history === 4, `${history} evidence rows (a year of quarterly bundles)`);
    await shoot(page, 'plant-en');
  });
  await check('officer: issue a voucher through the form', async () => {
    await go(page, base, '#/vouchers', 'vouchers');
    await page.getByTestId('issue-plant').fill('HZ-00000');
    await page.getByTestId('issue-amount').fill('12000.50');
    await page.getByTestId('issue-expiry').fill(`${new Date().getUTCFullYear() + 1}-12-31`);
    await page.getByTestId('issue-provider').fill('SP-000');
    await page.getByTestId('issue-submit').click();
    const result = page.getByTestId('issue-result');
    await result.filter({ hasText: /V\d{4}-\d+/ }).waitFor();
    voucher = (await result.innerText()).match(/V\d{4}-\d+/)[0];
    await shoot(page, 'vouchers-en');
    return voucher;
  });
  await check('officer: the books balance and the issue is audited', async () => {
    await go(page, base, '#/books', 'books');
    const balanced = await page.getByTestId('balanced').innerText();
    expect(/balance/i.test(balanced) && !/not/i.test(balanced), balanced);
    const audit = await page.getByTestId('audit').innerText();
    expect(audit.includes('voucher.issue') && audit.includes(voucher), 'no audit row for the new voucher');
    await shoot(page, 'books-en');
  });
  await check('Simplified Chinese on every officer page', async () => {
    await page.getByTestId('lang-switch').selectOption('zh');
    for (const [hash, name, title] of [['#/targets', 'targets', '目标完成进度'], ['#/plants', 'plants', '企业名录'], ['#/vouchers', 'vouchers', '券台账'], ['#/needs', 'needs', '需求与供给'], ['#/books', 'books', '账目与审计']]) {
      await go(page, base, hash, name);
      const h1 = await page.getByTestId('page-title').innerText();
      expect(h1.includes(title), `${name}: title ${h1}`);
      await shoot(page, `${name}-zh`);
    }
    await page.getByTestId('lang-switch').selectOption('en');
  });
  await check('provider: redeems the voucher; the plant co-pays the rest', async () => {
    await page.getByTestId('logout').click();
    await signIn(page, base, tokens['provider-SP-000'], 'provider vouchers');
    const row = page.getByTestId(`voucher-${voucher}`);
    await row.getByTestId('redeem-no').fill('INV-BROWSER-1');
    await row.getByTestId('redeem-total').fill('10000');
    await row.getByTestId('redeem-submit').click();
    await row.getByTestId('redeem-result').filter({ hasText: /3,000\.00/ }).waitFor();
    const note = await row.getByTestId('redeem-result').innerText();
    expect(note.includes('7,000.00'), note);
    await shoot(page, 'provider-redeem');
    return note;
  });
  await check('plant: its own page, and a need with its matches', async () => {
    await page.getByTestId('logout').click();
    await signIn(page, base, tokens['plant-HZ-00000'], 'plant');
    expect(page.url().includes('#/plant/HZ-00000'), `landed on ${page.url()}`);
    // SME onboarding: the example CSV exports become a plan and a first assessment.
    const dir = path.resolve('../../examples/sme-csv');
    await page.getByTestId('onboard-files').setInputFiles(['machines.csv', 'routings.csv', 'orders.csv'].map((f) => path.join(dir, f)));
    await page.getByTestId('onboard-submit').click();
    await page.getByTestId('onboard-result').filter({ hasText: /Planned \d+ orders/ }).waitFor();
    const promises = await page.locator('[data-testid="promises"] tbody tr').count();
    expect(promises >= 4, `${promises} promised orders`);
    const missing = await page.getByTestId('onboarding-missing').innerText();
    expect(/streaming/.test(missing), missing);
    await shoot(page, 'myplant');
    await go(page, base, '#/needs', 'needs');
    await page.getByTestId('need-scenario').selectOption('predictive-maintenance');
    await page.getByTestId('need-title').fill('Vibration-based maintenance for 12 CNC lathes');
    await page.getByTestId('need-submit').click();
    await page.locator('[data-testid="needs"] tbody tr').filter({ hasText: 'Vibration-based' }).waitFor();
    const row = page.locator('[data-testid="needs"] tbody tr').filter({ hasText: 'Vibration-based' });
    await row.locator('button').click();
    await page.locator('[data-testid="matches"] tbody tr').first().waitFor();
    await shoot(page, 'needs-plant');
  });
  await browser.close();
}

main()
  .catch((e) => fail(e.message))
  .finally(() => {
    cleanup();
    if (failures.length) {
      log(`\n${failures.length} failed:\n${failures.join('\n')}`);
      process.exit(1);
    }
    log('portal browser checks passed');
    process.exit(0);
  });
