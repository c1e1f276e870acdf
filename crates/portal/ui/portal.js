// The programme portal's web UI: a bearer token kept for the tab (sessionStorage), hash routing
// (#/targets, #/plants, #/plant/ID, #/vouchers, #/needs, #/books) and one render function per
// page. The shared theme, DOM helpers and language choice come from `aifactory serve`'s UI.

import { getLang, setLang, languages, fmt } from './shared/i18n.js';
import { h, fill, pageHeader, panel, stat, table, field, select, emptyNote } from './shared/dom.js';
import { pt } from './strings.js';

const TOKEN_KEY = 'aifactory.portal.token';
const main = document.getElementById('main');
let me = null;
let navToken = 0;

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

async function api(path, { method = 'GET', body, raw } = {}) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined && !raw) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: raw ? body : body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    if (res.status === 401 && !path.endsWith('/me')) signOut();
    throw new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`);
  }
  return data;
}

function showError(err) {
  const banner = document.getElementById('banner');
  document.getElementById('banner-text').textContent = err instanceof ApiError ? `${err.message} — HTTP ${err.status}` : String((err && err.message) || err);
  banner.hidden = false;
}

function clearError() {
  document.getElementById('banner').hidden = true;
}

// ---------------------------------------------------------------- formatting

const yuan = (s) => {
  const n = Number(s);
  return Number.isFinite(n) ? new Intl.NumberFormat(getLang() === 'zh' ? 'zh-CN' : 'en-GB', { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n) : '—';
};
const tierBadge = (tier) => h('span', { class: `tier tier-${Number(tier) || 0}`, testid: 'tier' }, String(tier ?? 0));
const day = (ms) => (Number.isFinite(ms) ? fmt.date(ms) : '—');
const when = (ms) => (Number.isFinite(ms) ? fmt.dateTime(ms) : '—');

function progress(reached, target) {
  if (target === null || target === undefined) return h('span', { class: 'muted' }, String(reached));
  const share = target > 0 ? Math.min(1, reached / target) : 1;
  return h('div', { class: 'progress' },
    h('div', { class: 'bar' }, h('span', { class: share >= 1 ? 'done' : '', style: { width: `${(share * 100).toFixed(1)}%` } })),
    h('span', { class: 'num' }, pt('targets.reached', { n: fmt.int(reached), target: fmt.int(target) })));
}

// ---------------------------------------------------------------- shell

function navFor(role) {
  switch (role) {
    case 'officer': return [['targets', '#/targets'], ['plants', '#/plants'], ['vouchers', '#/vouchers'], ['needs', '#/needs'], ['books', '#/books']];
    case 'assessor': return [['targets', '#/targets'], ['plants', '#/plants'], ['vouchers', '#/vouchers'], ['needs', '#/needs']];
    case 'plant': return [['myplant', `#/plant/${encodeURIComponent(me.plant)}`], ['vouchers', '#/vouchers'], ['needs', '#/needs']];
    default: return [['vouchers', '#/vouchers'], ['needs', '#/needs']];
  }
}

function shell() {
  document.body.classList.toggle('anon', !me);
  document.getElementById('portal-name').textContent = pt('portal.name');
  document.getElementById('lang-label').textContent = pt('lang.label');
  document.getElementById('logout').textContent = pt('top.logout');
  const nav = document.getElementById('nav');
  nav.replaceChildren(...(me ? navFor(me.role).map(([key, href]) => h('a', { href, testid: `nav-${key}`, 'data-page': key }, pt(`nav.${key}`))) : []));
  const user = document.getElementById('user');
  user.replaceChildren(...(me ? [h('span', { class: 'user-name' }, me.user), h('span', { class: 'user-role' }, pt(`role.${me.role}`))] : []));
  document.title = `aifactory · ${pt('portal.name')}`;
}

function signOut() {
  // Ends the credential on the server too: a session closes, an API token is revoked.
  if (token()) api('/api/v1/logout', { method: 'POST' }).catch(() => {});
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
  me = null;
  shell();
  location.hash = '#/login';
}

function home() {
  if (!me) return '#/login';
  if (me.role === 'plant') return `#/plant/${encodeURIComponent(me.plant)}`;
  if (me.role === 'provider') return '#/vouchers';
  return '#/targets';
}

const PAGES = {
  login: renderLogin,
  targets: renderTargets,
  plants: renderPlants,
  plant: renderPlant,
  vouchers: renderVouchers,
  needs: renderNeeds,
  books: renderBooks,
};

async function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  let name = parts[0] || '';
  if (!me && name !== 'login') { location.hash = '#/login'; return; }
  if (!PAGES[name]) { location.hash = home(); return; }
  const my = ++navToken;
  clearError();
  main.dataset.ready = '0';
  fill(main, h('p', { class: 'loading' }, pt('common.loading')));
  for (const a of document.querySelectorAll('#nav a')) {
    if (location.hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const view = h('div', { 'data-page': name });
  try {
    await PAGES[name](view, parts.slice(1));
    if (my !== navToken) return;
    fill(main, view);
  } catch (e) {
    if (my !== navToken) return;
    fill(main, view);
    showError(e);
  }
  main.dataset.ready = '1';
}

async function start() {
  const sel = document.getElementById('lang-switch');
  sel.replaceChildren(...languages.map(([v, l]) => h('option', { value: v }, l)));
  sel.value = getLang();
  sel.addEventListener('change', () => { setLang(sel.value); shell(); route(); });
  document.getElementById('logout').addEventListener('click', signOut);
  document.getElementById('banner-close').addEventListener('click', clearError);
  if (token()) {
    try { me = await api('/api/v1/me'); } catch { me = null; }
  }
  shell();
  window.addEventListener('hashchange', route);
  route();
}

// ---------------------------------------------------------------- pages

async function renderLogin(view) {
  const error = h('p', { class: 'login-error', role: 'alert', testid: 'login-error' });
  const enter = async (token) => {
    try { sessionStorage.setItem(TOKEN_KEY, token); } catch { /* ignore */ }
    me = await api('/api/v1/me');
    shell();
    location.hash = home();
  };
  const failed = (e) => {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* ignore */ }
    error.textContent = pt('login.failed', { error: e.message });
  };
  const name = h('input', { type: 'text', id: 'login-name', autocomplete: 'username', required: true, testid: 'login-name', autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { type: 'password', id: 'login-password', autocomplete: 'current-password', required: true, testid: 'login-password' });
  const byPassword = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      try {
        const s = await api('/api/v1/session', { method: 'POST', body: { name: name.value.trim(), password: password.value } });
        await enter(s.token);
      } catch (e) { failed(e); password.select(); }
    },
  },
  field(pt('login.name'), name),
  field(pt('login.password'), password),
  h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit' }, pt('login.submit')));
  const input = h('input', { type: 'password', id: 'token', autocomplete: 'off', required: true, testid: 'login-token', spellcheck: 'false' });
  const byToken = h('details', null,
    h('summary', null, pt('login.withToken')),
    h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        try { await enter(input.value.trim()); } catch (e) { failed(e); }
      },
    }, field(pt('login.token'), input), h('button', { type: 'submit', class: 'btn', testid: 'login-token-submit' }, pt('login.submit'))));
  view.append(h('div', { class: 'login-card' },
    h('h1', { testid: 'page-title' }, pt('login.title')),
    byPassword,
    error,
    byToken,
    h('p', { class: 'note' }, pt('login.hint'))));
  name.focus();
}

async function renderTargets(view) {
  const year = Number(sessionStorage.getItem('aifactory.portal.year')) || new Date().getUTCFullYear();
  const d = await api(`/api/v1/targets?year=${year}`);
  const years = [year - 1, year, year + 1].map((y) => [String(y), String(y)]);
  const pick = select(years, String(year), { testid: 'year', onchange: (ev) => { sessionStorage.setItem('aifactory.portal.year', ev.target.value); route(); } });
  const districtRows = d.rows.filter((r) => r.industry === '*');
  const industryRows = d.rows.filter((r) => r.industry !== '*');
  const tierCols = [1, 2, 3].map((i) => [pt(`targets.t${i}`), (r) => progress(r.at_least[i - 1], r.targets[i - 1])]);
  view.append(
    pageHeader(pt('targets.title'), field(pt('common.year'), pick)),
    h('div', { class: 'stats', testid: 'target-stats' },
      stat(pt('targets.plants'), fmt.int(d.plants), { tone: 'info' }),
      stat(pt('targets.t1'), fmt.int(d.at_least[0])),
      stat(pt('targets.t2'), fmt.int(d.at_least[1])),
      stat(pt('targets.t3'), fmt.int(d.at_least[2]), { tone: 'ok' }),
      stat(pt('targets.benchmarks'), fmt.int(d.benchmarks), { tone: 'ok' })),
    panel(pt('targets.byDistrict'), { testid: 'targets-district' },
      table([[pt('targets.district'), (r) => r.district], [pt('targets.plants'), (r) => fmt.int(r.plants), { class: 'num' }], ...tierCols,
        [pt('targets.benchmarks'), (r) => fmt.int(r.benchmarks), { class: 'num' }]], districtRows, { empty: pt('common.none') })),
    panel(pt('targets.byIndustry'), null,
      table([[pt('targets.district'), (r) => r.district], [pt('targets.industry'), (r) => r.industry],
        [pt('targets.plants'), (r) => fmt.int(r.plants), { class: 'num' }],
        ...[1, 2, 3].map((i) => [pt(`targets.t${i}`), (r) => fmt.int(r.at_least[i - 1]), { class: 'num' }])], industryRows, { empty: pt('common.none') })));
}

async function renderPlants(view) {
  const saved = JSON.parse(sessionStorage.getItem('aifactory.portal.plants') || '{}');
  const q = new URLSearchParams();
  for (const k of ['district', 'industry', 'tier']) if (saved[k]) q.set(k, saved[k]);
  q.set('limit', String(saved.limit || 100));
  const plants = await api(`/api/v1/plants?${q}`);
  const input = (k) => h('input', { type: 'text', value: saved[k] || '', testid: `filter-${k}`, size: 12 });
  const district = input('district');
  const industry = input('industry');
  const tier = select([['', pt('common.all')], ['0', '0'], ['1', '1'], ['2', '2'], ['3', '3']], saved.tier || '', { testid: 'filter-tier' });
  const form = h('form', {
    class: 'form-row',
    onsubmit: (ev) => {
      ev.preventDefault();
      sessionStorage.setItem('aifactory.portal.plants', JSON.stringify({ district: district.value.trim(), industry: industry.value.trim(), tier: tier.value }));
      route();
    },
  }, field(pt('plants.district'), district), field(pt('plants.industry'), industry), field(pt('plants.tier'), tier),
  h('button', { type: 'submit', class: 'btn' }, pt('plants.filter')));
  view.append(
    pageHeader(pt('plants.title')),
    panel(null, null, form),
    table([
      [pt('plants.id'), (p) => h('a', { href: `#/plant/${encodeURIComponent(p.id)}` }, p.id), { class: 'mono' }],
      [pt('plants.name'), (p) => p.name],
      [pt('plants.district'), (p) => p.district],
      [pt('plants.industry'), (p) => p.industry],
      [pt('plants.size'), (p) => pt(`size.${p.size_class}`)],
      [pt('plants.tier'), (p) => tierBadge(p.tier)],
      [pt('plants.benchmark'), (p) => (p.benchmark_since_ms ? '★' : '')],
    ], plants, { testid: 'plants', empty: pt('common.none') }),
    plants.length >= (saved.limit || 100)
      ? h('button', { class: 'btn', onclick: () => { sessionStorage.setItem('aifactory.portal.plants', JSON.stringify({ ...saved, limit: (saved.limit || 100) + 100 })); route(); } }, pt('common.more'))
      : null);
}

async function renderPlant(view, [id]) {
  const [plant, history] = await Promise.all([
    api(`/api/v1/plants/${encodeURIComponent(id)}`),
    api(`/api/v1/plants/${encodeURIComponent(id)}/evidence?limit=100`),
  ]);
  const right = [];
  if ((me.role === 'assessor' || me.role === 'officer') && plant.tier >= 3 && !plant.benchmark_since_ms) {
    right.push(h('button', {
      class: 'btn btn-primary', testid: 'designate',
      onclick: async () => { try { await api(`/api/v1/plants/${encodeURIComponent(id)}/benchmark`, { method: 'POST' }); route(); } catch (e) { showError(e); } },
    }, pt('plant.designate')));
  }
  view.append(
    pageHeader(`${plant.name} (${plant.id})`, ...right),
    h('div', { class: 'stats', testid: 'plant-stats' },
      stat(pt('plant.tier'), tierBadge(plant.tier), { tone: plant.tier >= 3 ? 'ok' : 'info', note: plant.tier_at_ms ? when(plant.tier_at_ms) : null }),
      stat(pt('plant.entries'), fmt.int(plant.ledger_entries)),
      stat(pt('plants.district'), plant.district, { note: plant.industry }),
      stat(pt('plants.size'), pt(`size.${plant.size_class}`), { note: plant.revenue_myuan !== null ? `${fmt.num(plant.revenue_myuan, 1)} M¥` : null }),
      plant.benchmark_since_ms ? stat(pt('plant.benchmarkSince'), day(plant.benchmark_since_ms), { tone: 'ok', testid: 'benchmark-since' }) : null),
    plant.public_key ? h('p', { class: 'muted mono' }, `${pt('plant.key')}: ${plant.public_key}`) : null);
  if (me.role === 'plant' || me.role === 'officer') {
    const file = h('input', { type: 'file', accept: '.json,application/json', testid: 'bundle-file' });
    const out = h('p', { testid: 'upload-result' });
    view.append(panel(pt('plant.upload'), null,
      h('p', { class: 'muted' }, pt('plant.uploadHint')),
      h('form', {
        class: 'form-row',
        onsubmit: async (ev) => {
          ev.preventDefault();
          if (!file.files[0]) return;
          out.textContent = '';
          try {
            const r = await api(`/api/v1/plants/${encodeURIComponent(id)}/evidence`, { method: 'POST', body: await file.files[0].arrayBuffer(), raw: true });
            out.className = 'ok-text';
            out.textContent = pt('plant.uploaded', { tier: r.tier });
            setTimeout(route, 800);
          } catch (e) {
            out.className = 'bad-text';
            out.textContent = e.message;
          }
        },
      }, file, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'upload' }, pt('common.submit'))),
      out));
  }
  view.append(await onboardingPanel(id));
  view.append(panel(pt('plant.history'), null, table([
    [pt('plant.received'), (e) => when(e.received_at_ms)],
    [pt('plant.generated'), (e) => day(e.generated_at_ms)],
    [pt('plant.verdict'), (e) => (e.accepted ? h('span', { class: 'ok-text' }, pt('plant.accepted')) : h('span', { class: 'bad-text' }, pt('plant.refused')))],
    [pt('plant.tier'), (e) => (e.accepted ? tierBadge(e.tier) : '')],
    [pt('plant.entries'), (e) => (e.entries ?? ''), { class: 'num' }],
    [pt('plant.depths'), (e) => h('span', { class: 'depths' }, (e.depths || []).join('·'))],
    [pt('plant.missing'), (e) => h('span', { class: 'reason' }, e.accepted ? (e.missing_for_next_tier || []).join('; ') : e.reason)],
  ], history, { testid: 'evidence', empty: pt('common.none') })));
}

function onboardingView(record) {
  const p = record.plan;
  return h('div', { testid: 'onboarding' },
    h('div', { class: 'stats' },
      stat(pt('onboard.orders'), fmt.int(p.orders), { note: pt('onboard.onTime', { n: p.on_time, late: p.late }) }),
      stat(pt('onboard.makespan'), fmt.hours(p.makespan_minutes / 60), { note: pt('onboard.from', { start: p.start }) }),
      stat(pt('onboard.ceiling'), fmt.pct(p.planned_oee_ceiling, 0), { testid: 'oee-ceiling', note: pt('onboard.ceilingNote') }),
      stat(pt('onboard.firstTier'), tierBadge(p.tier), { note: when(record.at_ms) })),
    h('p', { class: 'muted reason', testid: 'onboarding-missing' }, `${pt('plant.missing')}: ${p.missing_for_next_tier.join('; ')}`),
    h('div', { class: 'row cols-2' },
      table([
        [pt('onboard.order'), (o) => o.order, { class: 'mono' }],
        [pt('onboard.due'), (o) => o.due],
        [pt('onboard.completes'), (o) => o.completes],
        [pt('onboard.late'), (o) => (o.late_minutes ? h('span', { class: 'bad-text' }, fmt.int(o.late_minutes)) : '0'), { class: 'num' }],
      ], p.promises, { testid: 'promises' }),
      table([
        [pt('onboard.machine'), (m) => `${m.machine} · ${m.name}`],
        [pt('onboard.loading'), (m) => h('div', { class: 'progress' }, h('div', { class: 'bar' }, h('span', { style: { width: `${(m.loading * 100).toFixed(1)}%` } })), h('span', { class: 'num' }, fmt.pct(m.loading, 0)))],
      ], p.loading, { testid: 'loading' })));
}

async function onboardingPanel(id) {
  const latest = await api(`/api/v1/plants/${encodeURIComponent(id)}/onboarding`);
  const body = h('div', null, latest ? onboardingView(latest) : h('p', { class: 'muted' }, pt('onboard.none')));
  let form = null;
  if (me.role === 'plant' || me.role === 'officer') {
    const files = h('input', { type: 'file', accept: '.csv,text/csv', multiple: true, testid: 'onboard-files' });
    const out = h('p', { testid: 'onboard-result' });
    form = h('form', {
      class: 'form-row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        out.textContent = '';
        const payload = {};
        for (const f of files.files) payload[f.name] = await f.text();
        try {
          const r = await api(`/api/v1/plants/${encodeURIComponent(id)}/onboard`, { method: 'POST', body: { files: payload } });
          out.className = 'ok-text';
          out.textContent = pt('onboard.done', { orders: r.plan.orders });
          fill(body, onboardingView(r));
        } catch (e) {
          out.className = 'bad-text';
          out.textContent = e.message;
        }
      },
    }, files, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'onboard-submit' }, pt('onboard.submit')), out);
  }
  return panel(pt('onboard.title'), null, h('p', { class: 'muted' }, pt('onboard.hint')), form, body);
}

async function renderVouchers(view) {
  const status = sessionStorage.getItem('aifactory.portal.vstatus') || '';
  const book = await api(`/api/v1/vouchers?limit=200${status ? `&status=${status}` : ''}`);
  const pick = select([['', pt('common.all')], ...['active', 'spent', 'expired', 'withdrawn'].map((s) => [s, pt(`status.${s}`)])], status, {
    testid: 'voucher-status', onchange: (ev) => { sessionStorage.setItem('aifactory.portal.vstatus', ev.target.value); route(); },
  });
  view.append(
    pageHeader(pt('vouchers.title'), field(pt('vouchers.filterStatus'), pick)),
    h('div', { class: 'stats', testid: 'voucher-stats' },
      stat(pt('vouchers.count'), fmt.int(book.count), { tone: 'info' }),
      stat(pt('vouchers.amount'), yuan(book.amount)),
      stat(pt('vouchers.remaining'), yuan(book.remaining)),
      stat(pt('vouchers.redeemed'), yuan(book.redeemed), { tone: 'ok' }),
      stat(pt('vouchers.returned'), yuan(book.returned))));
  if (me.role === 'officer') view.append(await issueForm());
  let providers = [];
  if (me.role === 'plant') providers = await api('/api/v1/providers');
  const actions = (v) => {
    if (v.status !== 'active') return '';
    if (me.role === 'provider') return redeemForm(v);
    if (me.role === 'plant' && v.redeemed === '0.00') {
      const sel = select([['', '—'], ...providers.map((p) => [p.id, `${p.id} · ${p.name}`])], v.provider || '', {
        testid: `assign-${v.id}`, 'aria-label': pt('vouchers.assign'),
        onchange: async (ev) => {
          try { await api(`/api/v1/vouchers/${encodeURIComponent(v.id)}/provider`, { method: 'POST', body: { provider: ev.target.value } }); route(); } catch (e) { showError(e); }
        },
      });
      return sel;
    }
    return '';
  };
  view.append(table([
    [pt('vouchers.id'), (v) => v.id, { class: 'mono' }],
    [pt('vouchers.plant'), (v) => (me.role === 'officer' || me.role === 'assessor' ? h('a', { href: `#/plant/${encodeURIComponent(v.plant)}` }, v.plant) : v.plant)],
    [pt('vouchers.category'), (v) => pt(`category.${v.category}`)],
    [pt('vouchers.provider'), (v) => v.provider || '—'],
    [pt('vouchers.amount'), (v) => yuan(v.amount), { class: 'num' }],
    [pt('vouchers.remaining'), (v) => yuan(v.remaining), { class: 'num' }],
    [pt('vouchers.redeemed'), (v) => yuan(v.redeemed), { class: 'num' }],
    [pt('vouchers.expires'), (v) => day(v.expires_at_ms)],
    [pt('vouchers.status'), (v) => h('span', { class: `badge ${v.status === 'active' ? 'approved' : 'pending'}` }, pt(`status.${v.status}`))],
    ['', actions],
  ], book.vouchers, { testid: 'vouchers', empty: pt('common.none'), rowAttrs: (v) => ({ testid: `voucher-${v.id}` }) }));
}

async function issueForm() {
  const budgets = await api('/api/v1/budgets');
  const budget = select(budgets.map((b) => [b.id, `${b.id} · ${pt(`category.${b.category}`)} · ${yuan(b.available)}`]), undefined, { testid: 'issue-budget' });
  const plant = h('input', { type: 'text', required: true, testid: 'issue-plant', size: 12 });
  const amount = h('input', { type: 'text', required: true, inputmode: 'decimal', testid: 'issue-amount', size: 12 });
  const expiry = h('input', { type: 'date', required: true, testid: 'issue-expiry' });
  const provider = h('input', { type: 'text', testid: 'issue-provider', size: 10 });
  const out = h('p', { testid: 'issue-result' });
  return panel(pt('vouchers.issue'), null, h('form', {
    class: 'form-row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.textContent = '';
      try {
        const v = await api('/api/v1/vouchers', {
          method: 'POST',
          body: { budget: budget.value, plant: plant.value.trim(), amount: amount.value.trim(), expires_at_ms: Date.parse(`${expiry.value}T23:59:59+08:00`), provider: provider.value.trim() || undefined },
        });
        out.className = 'ok-text';
        out.textContent = pt('vouchers.issued', { id: v.id });
        setTimeout(route, 800);
      } catch (e) {
        out.className = 'bad-text';
        out.textContent = e.message;
      }
    },
  }, field(pt('vouchers.budget'), budget), field(pt('vouchers.plant'), plant), field(pt('vouchers.amountYuan'), amount),
  field(pt('vouchers.expiry'), expiry), field(pt('vouchers.provider'), provider),
  h('button', { type: 'submit', class: 'btn btn-primary', testid: 'issue-submit' }, pt('common.submit'))), out);
}

function redeemForm(v) {
  const no = h('input', { type: 'text', required: true, size: 10, placeholder: pt('vouchers.invoiceNo'), 'aria-label': pt('vouchers.invoiceNo'), testid: 'redeem-no' });
  const total = h('input', { type: 'text', required: true, size: 10, inputmode: 'decimal', placeholder: pt('vouchers.invoiceTotal'), 'aria-label': pt('vouchers.invoiceTotal'), testid: 'redeem-total' });
  const kind = select([['invoice', pt('vouchers.kind.invoice')], ['metered', pt('vouchers.kind.metered')]], 'invoice', { 'aria-label': pt('vouchers.kind') });
  const out = h('span', { testid: 'redeem-result' });
  return h('form', {
    class: 'form-row',
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api(`/api/v1/vouchers/${encodeURIComponent(v.id)}/redeem`, { method: 'POST', body: { invoice_no: no.value.trim(), invoice_total: total.value.trim(), kind: kind.value } });
        out.className = 'ok-text';
        out.textContent = pt('vouchers.redeemed.note', { covered: yuan(r.covered), rest: yuan(r.plant_pays) });
        setTimeout(route, 1500);
      } catch (e) {
        out.className = 'bad-text';
        out.textContent = e.message;
      }
    },
  }, no, total, kind, h('button', { type: 'submit', class: 'btn', testid: 'redeem-submit' }, pt('vouchers.redeem')), out);
}

async function renderNeeds(view) {
  view.append(pageHeader(pt('needs.title')));
  const scenarios = await api('/api/v1/scenarios');
  if (me.role === 'plant') {
    const scenario = select(scenarios.map((s) => [s.id, `${s.id} (${pt(`stage.${s.stage}`)})`]), undefined, { testid: 'need-scenario' });
    const title = h('input', { type: 'text', required: true, size: 40, testid: 'need-title' });
    view.append(panel(pt('needs.post'), null, h('form', {
      class: 'form-row',
      onsubmit: async (ev) => {
        ev.preventDefault();
        try { await api('/api/v1/needs', { method: 'POST', body: { scenario: scenario.value, title: title.value.trim() } }); route(); } catch (e) { showError(e); }
      },
    }, field(pt('needs.scenario'), scenario), field(pt('needs.titleField'), title), h('button', { type: 'submit', class: 'btn btn-primary', testid: 'need-submit' }, pt('common.submit')))));
  }
  if (me.role === 'provider') {
    const matches = await api('/api/v1/matches');
    view.append(panel(pt('needs.forYou'), null, matchTable(matches, true)));
  } else {
    const needs = await api('/api/v1/needs');
    const matchesPanel = h('div', { testid: 'matches' });
    view.append(panel(pt('needs.title'), null, table([
      ['#', (n) => n.id, { class: 'num' }],
      [pt('vouchers.plant'), (n) => n.plant],
      [pt('needs.scenario'), (n) => n.scenario],
      [pt('needs.stage'), (n) => pt(`stage.${n.stage}`)],
      [pt('needs.titleField'), (n) => n.title],
      [pt('needs.posted'), (n) => day(n.posted_at_ms)],
      ['', (n) => (n.open ? h('button', {
        class: 'btn', testid: `matches-${n.id}`,
        onclick: async () => {
          try { fill(matchesPanel, panel(`${pt('needs.matches')} #${n.id}`, null, matchTable(await api(`/api/v1/needs/${n.id}/matches`), false))); } catch (e) { showError(e); }
        },
      }, pt('needs.show')) : '')],
    ], needs, { testid: 'needs', empty: pt('common.none') })), matchesPanel);
  }
  const providers = await api('/api/v1/providers');
  view.append(panel(pt('needs.providers'), null, table([
    [pt('vouchers.provider'), (p) => `${p.id} · ${p.name}`],
    [pt('needs.offers'), (p) => p.offers.map((o) => o.scenario).join(', ')],
  ], providers, { testid: 'providers', empty: pt('common.none') })));
}

function matchTable(matches, showNeed) {
  return table([
    ...(showNeed ? [['#', (m) => m.need, { class: 'num' }], [pt('vouchers.plant'), (m) => m.plant], [pt('needs.titleField'), (m) => m.title]] : []),
    [pt('needs.scenario'), (m) => m.scenario],
    [pt('vouchers.provider'), (m) => `${m.provider} · ${m.provider_name}`],
    [pt('needs.fit'), (m) => pt(`needs.fit.${m.fit}`)],
  ], matches, { empty: pt('common.none') });
}

async function renderBooks(view) {
  const [tb, budgets, audit] = await Promise.all([api('/api/v1/ledger'), api('/api/v1/budgets'), api('/api/v1/audit?limit=100')]);
  view.append(
    pageHeader(pt('books.title')),
    h('div', { class: 'stats' },
      stat(pt('books.balance'), tb.balanced ? pt('books.balanced') : pt('books.unbalanced'), { tone: tb.balanced ? 'ok' : 'bad', testid: 'balanced', note: `Σ = ${yuan(tb.total)}` }),
      stat(pt('books.journals'), fmt.int(tb.journals))),
    panel(pt('books.balance'), null, table([
      [pt('books.class'), (c) => c.class, { class: 'mono' }],
      [pt('books.accounts'), (c) => fmt.int(c.accounts), { class: 'num' }],
      [pt('books.amount'), (c) => yuan(c.balance), { class: 'num' }],
    ], tb.classes, { testid: 'trial-balance' })),
    panel(pt('books.budgets'), null, table([
      [pt('vouchers.budget'), (b) => b.id, { class: 'mono' }],
      [pt('vouchers.category'), (b) => pt(`category.${b.category}`)],
      [pt('vouchers.amount'), (b) => yuan(b.amount), { class: 'num' }],
      [pt('books.available'), (b) => yuan(b.available), { class: 'num' }],
      [pt('vouchers.remaining'), (b) => yuan(b.outstanding), { class: 'num' }],
      [pt('vouchers.redeemed'), (b) => yuan(b.redeemed), { class: 'num' }],
      [pt('books.share'), (b) => `${b.max_share_pct} %`, { class: 'num' }],
      [pt('books.cap'), (b) => yuan(b.cap_per_firm), { class: 'num' }],
    ], budgets, { testid: 'budgets' })),
    panel(pt('books.audit'), null, table([
      [pt('books.at'), (a) => when(a.at_ms)],
      [pt('books.actor'), (a) => `${a.actor} (${a.role})`],
      [pt('books.action'), (a) => a.action, { class: 'mono' }],
      [pt('books.subject'), (a) => a.subject, { class: 'mono' }],
    ], audit, { testid: 'audit', empty: pt('common.none') })));
  if (!audit.length) view.append(emptyNote(pt('common.none')));
}

start();
