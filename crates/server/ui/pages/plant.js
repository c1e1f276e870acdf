// #/plant — the live plant: KPI cards, machine tiles coloured by state (updated from the
// event stream), machine states and utilisation charts, recent events.

import { t, fmt, kpiLabel } from '../i18n.js';
import { api } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, stateBadge } from '../dom.js';
import { stateColor, colors } from '../charts.js';

const STATES = ['busy', 'idle', 'down', 'maintenance'];

export async function render(ctx) {
  const first = await api('/api/v1/plant');
  if (!ctx.alive()) return;

  const tierLink = h('a', { class: 'badge depth-2', href: '#/assessment', testid: 'plant-tier' });
  const kpiBox = h('div', { class: 'stats', testid: 'kpis' });
  const legend = h('div', { class: 'legend', testid: 'state-legend' });
  const tileBox = h('div', { testid: 'machine-tiles' });
  const statesEl = h('div', { class: 'chart short', testid: 'chart-states' });
  const utilEl = h('div', { class: 'chart', testid: 'chart-utilisation' });
  const eventsBox = h('div', { testid: 'events' });

  ctx.view.append(
    pageHeader(t('plant.title'), tierLink),
    kpiBox,
    h('div', { class: 'row cols-main-side' },
      h('section', { class: 'panel' },
        h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, t('plant.machines')), h('div', { class: 'right' }, legend)),
        tileBox),
      h('div', { class: 'stack' },
        panel(t('plant.states'), null, statesEl),
        panel(t('plant.utilisation'), null, utilEl))),
    panel(t('plant.events'), null, eventsBox),
  );

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
    grid: { left: 90, right: 46, top: 8, bottom: 24 },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, valueFormatter: (v) => fmt.pct(v) },
    xAxis: { type: 'value', max: 1, axisLabel: { formatter: (v) => fmt.pct(v, 0) } },
    yAxis: { type: 'category', inverse: true, data: [], axisLabel: { width: 80, overflow: 'truncate' } },
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
    tierLink.textContent = t('plant.tier', { tier: p.tier ?? '—' });

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
        data: STATES.map((s) => ({ name: t(`state.${s}`), value: counts[s], itemStyle: { color: stateColor[s] } })),
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

  update(first);
  ctx.onPlant((p) => { if (ctx.alive()) update(p); });
}

function fillTile(el, m) {
  el.dataset.state = m.state;
  const health = typeof m.health === 'number' ? m.health : null;
  const tone = health === null ? '' : health < 0.4 ? 'bad' : health < 0.7 ? 'warn' : '';
  el.setAttribute('aria-label', `${m.name || m.id}: ${t(`state.${STATES.includes(m.state) ? m.state : 'unknown'}`)}`);
  el.title = m.since ? t('plant.since', { t: fmt.dateTime(m.since) }) : '';
  fill(el,
    h('div', { class: 'tile-head' },
      h('span', { class: 'tile-name' }, m.name || m.id),
      stateBadge(m.state)),
    h('div', { class: 'tile-job' },
      m.name && m.name !== m.id ? h('span', { class: 'tile-id' }, m.id) : null,
      m.name && m.name !== m.id ? '  ·  ' : null,
      m.order ? [h('b', null, m.order), m.operation !== null && m.operation !== undefined ? ` · ${t('plant.op', { op: m.operation })}` : ''] : '—'),
    h('div', { class: 'tile-metrics' },
      h('span', null, t('plant.util')),
      h('div', { class: 'bar' }, h('span', { style: { width: `${Math.round((m.utilisation ?? 0) * 100)}%` } })),
      h('span', { class: 'v' }, fmt.pct(m.utilisation, 0)),
      h('span', null, t('plant.health')),
      h('div', { class: `bar health ${tone}` }, h('span', { style: { width: `${health === null ? 0 : Math.round(health * 100)}%` } })),
      h('span', { class: 'v' }, health === null ? '—' : fmt.pct(health, 0))),
    m.anomaly ? h('span', { class: 'anomaly-flag', title: `${t('plant.anomaly')} ${fmt.num(m.anomaly_score, 2)}`, testid: 'anomaly-flag' }, '!') : null,
  );
}

export function eventsTable(events) {
  return table([
    [t('common.time'), (e) => fmt.dateTime(e.at), { class: 'nowrap num' }],
    [t('common.kind'), (e) => h('span', { class: 'chip' }, String(e.kind ?? '').replace(/_/g, ' '))],
    [t('common.machine'), (e) => (e.machine ? h('a', { href: `#/machine/${encodeURIComponent(e.machine)}` }, e.machine) : '—'), { class: 'nowrap' }],
    [t('common.order'), (e) => e.order || '—', { class: 'nowrap' }],
    [t('common.detail'), (e) => e.detail ?? '', { class: 'wrap' }],
  ], events, { empty: t('plant.noEvents'), testid: 'events-table', rowAttrs: () => ({ testid: 'event-row' }) });
}
