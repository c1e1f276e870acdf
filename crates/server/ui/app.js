// The shell: session, hash routing (#/plant, #/machine/ID, …), the top bar (twin clock, user,
// language), the error banner and the live stream of plant snapshots (/api/v1/events).

import { t, getLang, setLang, languages, fmt, toMs } from './i18n.js';
import { api, setCsrf, setUnauthorizedHandler, ApiError, endPrefetch } from './api.js';
import { ChartSet } from './charts.js';
import { h } from './dom.js';

const pages = {
  login: () => import('./pages/login.js'),
  plant: () => import('./pages/plant.js'),
  machine: () => import('./pages/machine.js'),
  schedule: () => import('./pages/schedule.js'),
  quality: () => import('./pages/quality.js'),
  forecast: () => import('./pages/forecast.js'),
  decisions: () => import('./pages/decisions.js'),
  assessment: () => import('./pages/assessment.js'),
  agent: () => import('./pages/agent.js'),
};
const NAV = ['plant', 'schedule', 'quality', 'forecast', 'decisions', 'assessment', 'agent'];
const ACTORS = ['operator', 'engineer', 'admin'];

const main = document.getElementById('main');
const banner = document.getElementById('banner');

let session = null; // {user, role, csrf_token}
let plant = null; // the latest plant snapshot
let plantAt = 0; // wall ms when it arrived
let current = null; // {token, charts, leave: [fn], plantSubs: Set, decisionSubs: Set}
let navToken = 0;
let returnTo = null;

// ---------------------------------------------------------------- the shell

function buildShell() {
  const nav = document.getElementById('nav');
  nav.replaceChildren(...NAV.map((p) => h('a', { href: `#/${p}`, testid: `nav-${p}`, 'data-page': p, 'data-i18n': `nav.${p}` })));
  const sel = document.getElementById('lang-switch');
  sel.replaceChildren(...languages.map(([v, l]) => h('option', { value: v, lang: v === 'zh' ? 'zh-CN' : 'en' }, l)));
  sel.value = getLang();
  sel.addEventListener('change', () => {
    setLang(sel.value);
    shellText();
    route();
  });
  document.getElementById('logout').addEventListener('click', logout);
  document.getElementById('banner-close').addEventListener('click', clearError);
  shellText();
  setInterval(tickClock, 1000);
}

function shellText() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  document.getElementById('lang-switch').value = getLang();
  showUser();
  tickClock();
  document.title = `aifactory${plant ? ` · ${plant.plant?.name ?? ''}` : ''}`;
}

function showUser() {
  document.body.classList.toggle('anon', !session);
  const el = document.getElementById('user');
  if (!session) { el.textContent = ''; return; }
  const role = t(`role.${session.role}`);
  el.replaceChildren(h('span', { class: 'user-name' }, session.user), h('span', { class: 'user-role' }, role));
  el.title = t('top.user', { user: session.user, role });
}

function tickClock() {
  const clock = document.getElementById('twin-time');
  const speed = document.getElementById('twin-speed');
  const name = document.getElementById('plant-name');
  if (!plant) { clock.textContent = '—'; speed.textContent = ''; name.textContent = ''; return; }
  let ms = toMs(plant.sim_time);
  const sp = Number(plant.speed) || 0;
  // Between snapshots the twin clock moves on at its speed.
  if (plant.running && Number.isFinite(ms)) ms += Math.min(Date.now() - plantAt, 5000) * sp;
  clock.textContent = fmt.dateTimeSec(ms);
  clock.setAttribute('datetime', Number.isFinite(ms) ? new Date(ms).toISOString() : '');
  speed.textContent = `×${fmt.num(sp, 1)}`;
  speed.title = t('top.speed', { x: fmt.num(sp, 1) });
  const state = document.getElementById('twin-state');
  state.textContent = plant.running ? t('top.running') : t('top.paused');
  state.className = `twin-state ${plant.running ? 'on' : 'off'}`;
  name.textContent = plant.plant?.name ?? '';
}

function setLive(on) {
  const dot = document.getElementById('live-dot');
  dot.classList.toggle('on', on);
  dot.title = on ? t('top.live') : t('top.offline');
  dot.setAttribute('aria-label', dot.title);
}

// ---------------------------------------------------------------- errors

export function showError(err) {
  if (err && err.name === 'AbortError') return;
  const text = err instanceof ApiError
    ? `${err.message}${err.field ? ` (${err.field})` : ''}${err.status ? ` — HTTP ${err.status}` : ''}`
    : String((err && err.message) || err);
  document.getElementById('banner-text').textContent = text;
  banner.hidden = false;
  if (!(err instanceof ApiError)) console.warn(err);
}

function clearError() {
  banner.hidden = true;
  document.getElementById('banner-text').textContent = '';
}

// ---------------------------------------------------------------- session

setUnauthorizedHandler(() => {
  if (!session && location.hash.startsWith('#/login')) return;
  session = null;
  setCsrf(null);
  stopStream();
  showUser();
  if (!location.hash.startsWith('#/login')) {
    returnTo = location.hash;
    location.hash = '#/login';
  }
});

async function restoreSession() {
  try {
    const me = await api('/api/v1/me', { quiet401: true });
    setSession(me);
    return true;
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) showError(e);
    return false;
  }
}

function setSession(s) {
  session = { user: s.user, role: s.role, csrf_token: s.csrf_token };
  setCsrf(s.csrf_token);
  showUser();
  startStream();
}

async function logout() {
  try {
    await api('/api/v1/logout', { method: 'POST', quiet401: true });
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) showError(e);
  }
  session = null;
  plant = null;
  setCsrf(null);
  stopStream();
  shellText();
  returnTo = null;
  location.hash = '#/login';
}

// ---------------------------------------------------------------- live stream

let source = null;
let poll = null;
let retry = null;

function startStream() {
  stopStream();
  refreshPlant();
  if (typeof EventSource === 'function') {
    source = new EventSource('/api/v1/events', { withCredentials: true });
    source.addEventListener('open', () => setLive(true));
    source.addEventListener('plant', (ev) => {
      try { acceptPlant(JSON.parse(ev.data)); } catch (e) { console.warn('bad plant event', e); }
    });
    source.addEventListener('decision', (ev) => {
      let d;
      try { d = JSON.parse(ev.data); } catch { return; }
      if (current) for (const f of current.decisionSubs) f(d);
    });
    source.addEventListener('error', () => {
      setLive(false);
      if (source && source.readyState === EventSource.CLOSED) {
        // The server refused the stream (logged out, or no stream): check, then try again.
        source = null;
        retry = setTimeout(async () => {
          retry = null;
          if (session && await restoreSessionQuiet()) startStream();
        }, 5000);
      }
    });
  }
  // Polls while the stream is not open, so the page stays live either way.
  poll = setInterval(() => {
    if (session && (!source || source.readyState !== EventSource.OPEN)) refreshPlant();
  }, 5000);
}

async function restoreSessionQuiet() {
  try {
    const me = await api('/api/v1/me');
    session = { user: me.user, role: me.role, csrf_token: me.csrf_token };
    setCsrf(me.csrf_token);
    return true;
  } catch {
    return false;
  }
}

function stopStream() {
  if (source) source.close();
  source = null;
  if (poll) clearInterval(poll);
  poll = null;
  if (retry) clearTimeout(retry);
  retry = null;
  setLive(false);
}

async function refreshPlant() {
  try {
    acceptPlant(await api('/api/v1/plant'));
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) console.warn('plant', e.message);
  }
}

function acceptPlant(p) {
  if (!p || typeof p !== 'object') return;
  const first = !plant;
  plant = p;
  plantAt = Date.now();
  tickClock();
  if (first) document.title = `aifactory · ${p.plant?.name ?? ''}`;
  if (current) for (const f of current.plantSubs) f(p);
}

// ---------------------------------------------------------------- routing

function parse() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const name = pages[parts[0]] ? parts[0] : 'plant';
  return { name, params: parts.slice(1) };
}

function leave() {
  if (!current) return;
  for (const f of current.leave) { try { f(); } catch (e) { console.warn(e); } }
  current.charts.dispose();
  current = null;
}

async function route() {
  const token = ++navToken;
  // The GETs index.html started answer the first page only.
  if (token > 1) endPrefetch();
  leave();
  clearError();
  const { name, params } = parse();
  if (!location.hash.startsWith(`#/${name}`)) {
    history.replaceState(null, '', `#/${name}`);
  }
  main.dataset.ready = '0';
  main.removeAttribute('data-error');
  const view = h('div', { class: `view view-${name}` }, h('p', { class: 'loading' }, t('common.loading')));
  main.replaceChildren(view);

  if (!session && name !== 'login') {
    if (!(await restoreSession())) {
      if (token !== navToken) return;
      returnTo = location.hash;
      location.hash = '#/login';
      return;
    }
    if (token !== navToken) return;
  }
  for (const a of document.querySelectorAll('#nav a')) {
    const on = a.dataset.page === name || (name === 'machine' && a.dataset.page === 'plant');
    if (on) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }

  const page = {
    token, charts: new ChartSet(), leave: [], plantSubs: new Set(), decisionSubs: new Set(),
  };
  current = page;
  const ctx = {
    view,
    params,
    session,
    charts: page.charts,
    alive: () => token === navToken,
    plant: () => plant,
    onPlant: (f) => page.plantSubs.add(f),
    onDecision: (f) => page.decisionSubs.add(f),
    onLeave: (f) => page.leave.push(f),
    every: (ms, f) => { const id = setInterval(f, ms); page.leave.push(() => clearInterval(id)); },
    canAct: () => !!session && ACTORS.includes(session.role),
    showError,
    clearError,
    go: (hash) => { location.hash = hash; },
    login: (s) => {
      setSession(s);
      const to = returnTo && !returnTo.startsWith('#/login') ? returnTo : '#/plant';
      returnTo = null;
      location.hash = to;
    },
    refreshPlant,
  };
  try {
    const mod = await pages[name]();
    if (token !== navToken) return;
    view.replaceChildren();
    await mod.render(ctx);
  } catch (e) {
    if (token !== navToken) return;
    if (e instanceof ApiError && e.status === 401) return;
    main.dataset.error = '1';
    if (view.querySelector('.loading')) view.replaceChildren();
    showError(e);
  }
  if (token === 1) endPrefetch();
  if (token !== navToken) return;
  main.dataset.ready = '1';
  view.appendChild(h('span', { testid: 'page-ready', hidden: true }));
}

// ---------------------------------------------------------------- start

buildShell();
window.addEventListener('hashchange', route);
route();
