// #/plant — the live plant: KPI cards, machine tiles coloured by state (updated from the
// event stream), machine states and utilisation charts, recent events.

import { t, fmt, kpiLabel, has } from '../i18n.js';
import { api } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, stateBadge } from '../dom.js';
import { stateColor, colors } from '../charts.js';

const STATES = ['busy', 'idle', 'down', 'maintenance'];

export async function render(ctx) {
  const first = await api('/api/v1/plant');
  if (!ctx.alive()) return;

  // The tier shown is the one the ledger earns (the assessment), never the configured one:
  // the coordinator's configured rung is shown beside it, labelled as such.
  const tierLink = h('a', { class: 'badge depth-0', href: '#/assessment', testid: 'plant-tier' }, t('plant.tier', { tier: '—' }));
  const configuredNote = h('span', { class: 'muted', testid: 'plant-tier-configured' });
  const kpiBox = h('div', { class: 'stats', testid: 'kpis' });
  const moreBox = h('dl', { class: 'kv kv-wide', testid: 'kpis-more' });
  const legend = h('div', { class: 'legend', testid: 'state-legend' });
  const tileBox = h('div', { testid: 'machine-tiles' });
  const statesEl = h('div', { class: 'chart short', testid: 'chart-states' });
  const utilEl = h('div', { class: 'chart', testid: 'chart-utilisation' });
  const eventsBox = h('div', { testid: 'events' });

  ctx.view.append(
    pageHeader(t('plant.title'), configuredNote, tierLink),
    kpiBox,
    h('div', { class: 'row cols-main-side' },
      h('section', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, t('plant.machines')), h('div', { class: 'right' }, legend)),
        tileBox),
      h('div', { class: 'stack' },
        panel(t('plant.states'), null, statesEl),
        panel(t('plant.more'), null, moreBox),
        panel(t('plant.utilisation'), null, utilEl))),
    panel(t('plant.events'), null, eventsBox),
  );

  await ctx.charts.ready();
  if (!ctx.alive()) return;
  const states = ctx.charts.make(statesEl, {
    tooltip: { trigger: 'item', formatter: (p) => `${p.name}: ${fmt.int(p.value)} (${fmt.num(p.percent, 0)} %)` },
    series: [{
      type: 'pie', radius: ['52%', '78%'], center: ['50%', '52%'], avoidLabelOverlap: true,
      itemStyle: { borderColor: '#181b1f', borderWidth: 2 },
      label: { color: colors.text, formatter: '{b}\n{c}' },
      data: [],
    }],
  });
  const util = ctx.charts.make(utilEl, {
    grid: { left: 130, right: 46, top: 8, bottom: 24 },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: (v) => fmt.pct(v) },
    xAxis: { type: 'value', max: 1, axisLabel: { formatter: (v) => fmt.pct(v, 0) } },
    yAxis: { type: 'category', inverse: true, data: [], axisLabel: { width: 120, overflow: 'truncate' } },
    series: [{ type: 'bar', barMaxWidth: 12, data: [], label: { show: true, position: 'right', color: colors.muted, fontSize: 11, formatter: (p) => fmt.pct(p.value, 0) } }],
  });

  const tiles = new Map();
  let tileKey = '';
  let eventsKey = '';

  function update(p) {
    // KPI cards.
    const k = p.kpis || {};
    const cards = [
      ['oee', fmt.pct(k.oee), 'kpi-oee', 'info'],
      ['availability', fmt.pct(k.availability), 'kpi-availability'],
      ['performance', fmt.pct(k.performance), 'kpi-performance'],
      ['quality', fmt.pct(k.quality), 'kpi-quality'],
      ['on_time_delivery', fmt.pct(k.on_time_delivery), 'kpi-otd',
        k.on_time_delivery >= 0.95 ? 'ok' : k.on_time_delivery >= 0.85 ? 'warn' : k.on_time_delivery === undefined ? null : 'bad'],
      [k.throughput_per_day !== undefined || k.throughput === undefined ? 'throughput_per_day' : 'throughput',
        fmt.num(k.throughput_per_day ?? k.throughput, 1), 'kpi-throughput'],
      [k.cost_so_far !== undefined || k.total_cost === undefined ? 'cost_so_far' : 'total_cost',
        fmt.money(k.cost_so_far ?? k.total_cost), 'kpi-cost'],
    ];
    const o = p.orders || {};
    fill(kpiBox,
      ...cards.map(([key, v, id, tone]) => stat(kpiLabel(key), v, { testid: id, tone })),
      stat(t('plant.orders'), fmt.int(o.open), {
        testid: 'kpi-orders',
        note: `${t('plant.orders.released')} ${fmt.int(o.released)} · ${t('plant.orders.completed')} ${fmt.int(o.completed)} · ${t('plant.orders.late')} ${fmt.int(o.late)}`,
        tone: o.late > 0 ? 'warn' : null,
      }),
    );
    const more = [
      ['mean_tardiness_h', (x) => fmt.num(x, 1)], ['scrap_rate', (x) => fmt.pct(x)], ['downtime_h', (x) => fmt.num(x, 1)],
      ['energy_kwh_per_good_unit', (x) => fmt.num(x, 2)], ['avg_wip', (x) => fmt.num(x, 1)], ['good_units', fmt.int],
      ['orders_completed', fmt.int], ['failures', fmt.int], ['preventive_maintenance', fmt.int],
    ].filter(([key]) => typeof k[key] === 'number');
    fill(moreBox, ...more.map(([key, f]) => [h('dt', null, kpiLabel(key)), h('dd', null, f(k[key]))]));
    moreBox.parentElement.hidden = !more.length;
    configuredNote.textContent = Number.isInteger(p.tier) ? t('plant.tierConfigured', { tier: p.tier }) : '';

    // Tiles, grouped by work centre; rebuilt only when the set of machines changes.
    const machines = p.machines || [];
    const key = machines.map((m) => `${m.group}/${m.id}`).join('|');
    if (key !== tileKey) {
      tileKey = key;
      tiles.clear();
      const groups = new Map();
      for (const m of machines) {
        const g = m.group || '';
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(m);
      }
      fill(tileBox, h('div', { class: 'groups' }, [...groups].map(([g, ms]) => h('div', { class: 'group', style: { '--n': String(Math.min(ms.length, 4)) } },
        g ? h('h3', { class: 'group-name' }, g) : null,
        h('div', { class: 'tiles' }, ms.map((m) => {
          const el = h('button', {
            type: 'button', class: 'tile', testid: 'machine-tile', 'data-machine': m.id,
            onclick: () => ctx.go(`#/machine/${encodeURIComponent(m.id)}`),
          });
          tiles.set(m.id, el);
          return el;
        }))))));
    }
    for (const m of machines) fillTile(tiles.get(m.id), m);

    const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
    for (const m of machines) counts[m.state] = (counts[m.state] || 0) + 1;
    fill(legend, ...STATES.map((s) => h('span', null,
      h('span', { class: 'sw', style: { background: stateColor[s] } }), t(`state.${s}`), h('b', null, fmt.int(counts[s])))));
    states.setOption({
      series: [{
        data: STATES.filter((s) => counts[s] > 0).map((s) => ({ name: t(`state.${s}`), value: counts[s], itemStyle: { color: stateColor[s] } })),
      }],
    });
    util.setOption({
      yAxis: { data: machines.map((m) => m.name || m.id) },
      series: [{
        data: machines.map((m) => ({ value: m.utilisation ?? 0, itemStyle: { color: stateColor[m.state] || stateColor.unknown } })),
      }],
    });
    utilEl.dataset.count = String(machines.length);

    // Recent events.
    const events = p.recent_events || [];
    const ek = events.length ? `${events.length}:${events[0].at}:${events[0].kind}:${events[0].machine}` : '0';
    if (ek !== eventsKey) {
      eventsKey = ek;
      fill(eventsBox, eventsTable(events.slice(0, 50)));
    }
  }

  async function loadTier() {
    try {
      const a = await api('/api/v1/assessment');
      if (!ctx.alive()) return;
      const tier = Number.isInteger(a.tier) ? Math.min(Math.max(a.tier, 0), 3) : 0;
      tierLink.textContent = t('plant.tier', { tier });
      tierLink.className = `badge depth-${tier}`;
    } catch (e) {
      if (!ctx.alive()) return;
      // 409: the store's ledger does not verify, so it earns no tier.
      tierLink.textContent = e.status === 409 ? t('plant.tierUnverified') : t('plant.tier', { tier: '—' });
      tierLink.className = e.status === 409 ? 'badge rejected' : 'badge depth-0';
      tierLink.title = e.message || '';
    }
  }

  update(first);
  loadTier();
  ctx.every(30000, () => loadTier());
  ctx.onPlant((p) => { if (ctx.alive()) update(p); });
}

function fillTile(el, m) {
  el.dataset.state = m.state;
  const health = typeof m.health === 'number' ? m.health : null;
  const score = typeof m.anomaly_score === 'number' ? m.anomaly_score : null;
  // Health where the server estimates it; the anomaly score (0 normal … 1 anomalous) otherwise.
  const useHealth = health !== null || score === null;
  const level = useHealth ? health : score;
  const tone = level === null ? '' : useHealth ? (level < 0.4 ? 'bad' : level < 0.7 ? 'warn' : '') : (level > 0.7 ? 'bad' : level > 0.4 ? 'warn' : '');
  el.setAttribute('aria-label', `${m.name || m.id}: ${t(`state.${STATES.includes(m.state) ? m.state : 'unknown'}`)}`);
  el.title = m.since ? t('plant.since', { t: fmt.dateTime(m.since) }) : '';
  const sub = [];
  if (m.order) {
    sub.push(h('b', null, m.order));
    if (m.operation !== null && m.operation !== undefined) sub.push(` · ${t('plant.op', { op: m.operation })}`);
  } else sub.push('—');
  if (m.queue) sub.push(` · ${t('plant.queue', { n: m.queue })}`);
  fill(el,
    h('div', { class: 'tile-name', title: m.name || m.id }, m.name || m.id),
    h('div', { class: 'tile-head' },
      m.name && m.name !== m.id ? h('span', { class: 'tile-id' }, m.id) : null,
      stateBadge(m.state)),
    h('div', { class: 'tile-job' }, sub),
    h('div', { class: 'tile-metrics' },
      h('span', null, t('plant.util')),
      h('div', { class: 'bar' }, h('span', { style: { width: `${Math.round((m.utilisation ?? 0) * 100)}%` } })),
      h('span', { class: 'v' }, fmt.pct(m.utilisation, 0)),
      h('span', null, useHealth ? t('plant.health') : t('plant.anomaly')),
      h('div', { class: `bar health ${tone}` }, h('span', { style: { width: `${level === null ? 0 : Math.round(level * 100)}%` } })),
      h('span', { class: 'v' }, level === null ? '—' : useHealth ? fmt.pct(level, 0) : fmt.num(level, 2))),
    m.anomaly ? h('span', { class: 'anomaly-flag', title: `${t('plant.anomaly')} ${fmt.num(m.anomaly_score, 2)}`, testid: 'anomaly-flag' }, '!') : null,
  );
}

export function eventsTable(events, { machine = true } = {}) {
  return table([
    [t('common.time'), (e) => fmt.dateTime(e.at), { class: 'nowrap num' }],
    [t('common.kind'), (e) => h('span', { class: `chip ev-${eventTone(e.kind)}` }, has(`event.${e.kind}`) ? t(`event.${e.kind}`) : String(e.kind ?? '').replace(/_/g, ' '))],
    machine ? [t('common.machine'), (e) => (e.machine ? h('a', { href: `#/machine/${encodeURIComponent(e.machine)}` }, e.machine) : '—'), { class: 'nowrap' }] : null,
    [t('common.order'), (e) => e.order || '—', { class: 'nowrap' }],
    [t('common.detail'), (e) => detailText(e.detail), { class: 'wrap muted' }],
  ].filter(Boolean), events, { empty: t('plant.noEvents'), testid: 'events-table', rowAttrs: () => ({ testid: 'event-row' }) });
}

function eventTone(kind) {
  if (/failed|scrapped|stockout/.test(kind)) return 'bad';
  if (/maintenance|repair/.test(kind)) return 'warn';
  if (/completed|received/.test(kind)) return 'ok';
  return 'info';
}

/** An event's detail (free-form JSON) as one line of text. */
function detailText(d) {
  if (d === null || d === undefined) return '';
  if (typeof d !== 'object') return String(d);
  const value = (v) => {
    if (typeof v === 'number') return fmt.num(v, 2);
    if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`;
    if (v && typeof v === 'object') return JSON.stringify(v);
    return String(v);
  };
  return Object.entries(d)
    .filter(([, v]) => v !== null && !(Array.isArray(v) && !v.length))
    .map(([k, v]) => `${k.replace(/_/g, ' ')}: ${value(v)}`)
    .join(' · ');
}
