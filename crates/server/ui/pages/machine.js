// #/machine/ID — one machine: state, health gauge, RUL, telemetry charts (one per signal,
// bucketed for long ranges), anomalies and events.

import { t, fmt, toMs } from '../i18n.js';
import { api, withQuery } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, stateBadge, emptyNote } from '../dom.js';
import { colors, palette, opt } from '../charts.js';
import { eventsTable } from './plant.js';

const RANGES = [['1h', 1, 'raw'], ['6h', 6, 'raw'], ['24h', 24, 'minute'], ['7d', 168, 'hour']];
const HOUR = 3600e3;

export async function render(ctx) {
  const id = ctx.params[0];
  if (!id) { ctx.go('#/plant'); return; }
  const detail = await api(`/api/v1/machines/${encodeURIComponent(id)}`);
  if (!ctx.alive()) return;

  let range = sessionStorage.getItem('aifactory.range') || '6h';
  if (!RANGES.some((r) => r[0] === range)) range = '6h';

  const badgeBox = h('span');
  const sub = h('span', { class: 'page-sub' });
  const stats = h('div', { class: 'stats machine-stats' });
  const gaugeEl = h('div', { class: 'chart gauge', testid: 'chart-health' });
  const gaugeTitle = h('h2', { class: 'panel-title' }, t('machine.health'));
  const seg = h('div', { class: 'seg', role: 'group', 'aria-label': t('machine.range') });
  const bucketNote = h('span', { class: 'page-sub' });
  const grid = h('div', { class: 'row cols-2', testid: 'telemetry' });
  const anomaliesBox = h('div');
  const eventsBox = h('div');

  ctx.view.append(
    pageHeader(detail.machine?.name && detail.machine.name !== id ? `${detail.machine.name} · ${id}` : t('machine.title', { id }), badgeBox, sub, h('a', { href: '#/plant', class: 'btn btn-ghost' }, t('machine.back'))),
    h('div', { class: 'row', style: { gridTemplateColumns: 'minmax(220px, 300px) minmax(0, 1fr)' } },
      panel(null, null, gaugeTitle, gaugeEl),
      stats),
    h('section', { class: 'panel', style: { marginBottom: '14px' } },
      h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, t('machine.telemetry')), bucketNote,
        h('div', { class: 'right' }, seg)),
      grid),
    h('div', { class: 'row cols-2' },
      panel(t('machine.anomalies'), null, anomaliesBox),
      panel(t('machine.events'), null, eventsBox)),
  );

  let gauge = null; // made once ECharts has loaded
  let gaugeMode = null;
  function showMachine(m, d) {
    fill(badgeBox, stateBadge(m.state));
    sub.textContent = [
      m.group ? `${t('machine.workCentre')}: ${m.group}` : null,
      m.order ? `${t('machine.current')}: ${m.order}${m.operation != null ? ` · ${t('plant.op', { op: m.operation })}` : ''}` : null,
      m.since ? t('plant.since', { t: fmt.dateTime(m.since) }) : null,
    ].filter(Boolean).join('  ·  ');
    // Health where the server estimates it; otherwise the anomaly score (0 normal … 1 anomalous).
    const useHealth = typeof m.health === 'number' || typeof m.anomaly_score !== 'number';
    const value = useHealth ? (typeof m.health === 'number' ? m.health * 100 : NaN) : m.anomaly_score * 100;
    gaugeTitle.textContent = useHealth ? t('machine.health') : t('machine.anomalyScore');
    if (gaugeMode !== useHealth) {
      gaugeMode = useHealth;
      gauge.setOption({ series: [gaugeSeries(useHealth, value)] }, { replaceMerge: ['series'] });
    } else {
      gauge.setOption({ series: [{ data: [{ value }] }] });
    }
    // Remaining life in running hours, from the maintenance records of machines of its type.
    const rul = m.rul_h ?? d.rul_h;
    fill(stats,
      ('rul_h' in m || 'rul_h' in d) ? stat(t('machine.rul'), typeof rul === 'number' ? (rul >= 72 ? `${fmt.num(rul / 24, 1)} ${t('common.days')}` : fmt.hours(rul)) : '—',
        { testid: 'machine-rul', note: typeof rul === 'number' ? t('machine.rulNote', { age: fmt.hours(m.age_h ?? 0) }) : t('machine.rulNone'), tone: typeof rul === 'number' && rul < 48 ? 'warn' : 'info' }) : null,
      stat(t('machine.utilisation'), fmt.pct(m.utilisation), { testid: 'machine-util' }),
      stat(t('machine.failures'), fmt.int(m.failures), { tone: m.failures > 0 ? 'bad' : null }),
      stat(t('machine.maintenances'), fmt.int(m.maintenances)),
      useHealth ? stat(t('machine.anomalyScore'), fmt.num(m.anomaly_score, 2), { tone: m.anomaly ? 'warn' : null, note: m.anomaly ? t('plant.anomaly') : null }) : null,
      stat(t('machine.current'), m.order || '—', { testid: 'machine-job', note: m.order && m.operation != null ? t('plant.op', { op: m.operation }) : null }),
      'queue' in m ? stat(t('machine.queue'), fmt.int(m.queue), { note: t('machine.queueNote') }) : null,
      'next_service' in m ? stat(t('machine.nextService'), m.next_service ? fmt.shortDateTime(m.next_service) : '—', { note: m.next_service ? null : t('machine.noService'), tone: m.next_service ? 'warn' : null }) : null,
    );
  }

  function showLists(d) {
    const an = [...(d.anomalies || [])].sort((a, b) => toMs(b.at) - toMs(a.at));
    fill(anomaliesBox, table([
      [t('common.time'), (a) => fmt.dateTime(a.at), { class: 'nowrap num' }],
      [t('common.signal'), (a) => a.signal],
      [t('machine.score'), (a) => fmt.num(a.score, 2), { class: 'num' }],
    ], an, { testid: 'anomalies-table' }));
    fill(eventsBox, eventsTable(d.events || [], { machine: false }));
  }

  let current = detail;
  showLists(detail);

  // Telemetry: one chart per signal, fetched while ECharts loads (the time range ends at the
  // twin's clock, so the first plant snapshot comes first).
  const signals = detail.signals || [];
  const charts = new Map();
  if (!ctx.plant()) await ctx.refreshPlant();
  if (!ctx.alive()) return;
  const firstTelemetry = requestTelemetry();
  firstTelemetry.catch(() => {});
  await ctx.charts.ready();
  if (!ctx.alive()) return;
  gauge = ctx.charts.make(gaugeEl, { series: [] });
  showMachine(current.machine, current);
  if (!signals.length) fill(grid, emptyNote(t('machine.noSignals')));
  signals.forEach((s, i) => {
    const el = h('div', { class: 'chart short', testid: `chart-telemetry-${s}`, 'data-signal': s });
    grid.append(h('div', { class: 'panel', style: { padding: '8px 10px' } }, h('h3', { class: 'mono' }, s), el));
    const color = palette[i % palette.length];
    charts.set(s, { el, color, chart: ctx.charts.make(el, telemetryOption(s, color)) });
  });

  async function loadTelemetry() {
    const got = await requestTelemetry();
    if (!ctx.alive()) return;
    showTelemetry(got);
  }

  /** The telemetry of every signal for the chosen range: {bucket, results} (allSettled). */
  async function requestTelemetry() {
    const [, hours, bucket] = RANGES.find((r) => r[0] === range);
    bucketNote.textContent = t('machine.bucket', { b: t(`machine.bucket.${bucket}`) });
    const now = toMs(ctx.plant()?.sim_time);
    const params = { machine: id, bucket };
    if (Number.isFinite(now)) {
      params.to = new Date(now).toISOString();
      params.from = new Date(now - hours * HOUR).toISOString();
    }
    const results = await Promise.allSettled(signals.map((s) => api(withQuery('/api/v1/telemetry', { ...params, signal: s }))));
    return { bucket, results };
  }

  function showTelemetry({ bucket, results }) {
    let failed = null;
    let truncated = false;
    results.forEach((r, i) => {
      const s = signals[i];
      if (r.status === 'rejected') { failed = failed || r.reason; return; }
      const { chart, el, color } = charts.get(s);
      const anomalies = (current.anomalies || []).filter((a) => a.signal === s).map((a) => toMs(a.at));
      if (r.value.truncated) truncated = true;
      const upd = telemetryData(r.value, anomalies, color);
      chart.setOption(upd, { replaceMerge: ['series'] });
      el.dataset.count = String(upd.count);
    });
    bucketNote.textContent = t('machine.bucket', { b: t(`machine.bucket.${bucket}`) }) + (truncated ? ` · ${t('machine.truncated')}` : '');
    if (failed) throw failed;
  }

  function drawSeg() {
    fill(seg, ...RANGES.map(([r]) => h('button', {
      type: 'button', 'aria-pressed': String(r === range), testid: `range-${r}`,
      onclick: async () => {
        range = r;
        sessionStorage.setItem('aifactory.range', r);
        drawSeg();
        try { await loadTelemetry(); } catch (e) { ctx.showError(e); }
      },
    }, t(`machine.range.${r}`))));
  }
  drawSeg();
  const got = await firstTelemetry;
  if (!ctx.alive()) return;
  showTelemetry(got);

  ctx.onPlant((p) => {
    const m = (p.machines || []).find((x) => x.id === id);
    if (m && ctx.alive()) { current = { ...current, machine: m }; showMachine(m, current); }
  });
  ctx.every(20000, async () => {
    try {
      current = await api(`/api/v1/machines/${encodeURIComponent(id)}`);
      if (!ctx.alive()) return;
      showLists(current);
      await loadTelemetry();
    } catch (e) { if (ctx.alive()) ctx.showError(e); }
  });
}

function gaugeSeries(useHealth, value) {
  const scale = useHealth ? [[0.4, colors.bad], [0.7, colors.warn], [1, colors.ok]] : [[0.4, colors.ok], [0.7, colors.warn], [1, colors.bad]];
  return {
    type: 'gauge', min: 0, max: 100, startAngle: 210, endAngle: -30, radius: '96%', center: ['50%', '58%'],
    axisLine: { lineStyle: { width: 12, color: scale } },
    pointer: { width: 4, length: '60%', itemStyle: { color: '#d8dde3' } },
    axisTick: { distance: -12, length: 4, lineStyle: { color: '#181b1f' } },
    splitLine: { distance: -12, length: 12, lineStyle: { color: '#181b1f', width: 2 } },
    axisLabel: { distance: 16, color: colors.muted, fontSize: 10, formatter: (v) => (useHealth ? String(v) : fmt.num(v / 100, 1)) },
    detail: {
      formatter: (v) => (Number.isFinite(v) ? (useHealth ? `${Math.round(v)} %` : fmt.num(v / 100, 2)) : '—'),
      color: '#f1f3f5', fontSize: 22, offsetCenter: [0, '38%'],
    },
    data: [{ value }],
  };
}

function telemetryOption(signal, color) {
  return {
    color: [color],
    grid: opt.grid({ left: 52, right: 16, top: 16, bottom: 54 }),
    tooltip: {
      trigger: 'axis',
      formatter: (ps) => {
        const list = Array.isArray(ps) ? ps : [ps];
        if (!list.length) return '';
        const by = Object.fromEntries(list.map((p) => [p.seriesId, p]));
        const lines = [fmt.dateTimeSec(list[0].value[0])];
        if (by.v) lines.push(`${by.v.marker}${opt.escape(signal)}: <b>${fmt.num(by.v.value[1], 3)}</b>`);
        if (by.mean) lines.push(`${by.mean.marker}${opt.escape(t('machine.mean'))}: <b>${fmt.num(by.mean.value[1], 3)}</b>`);
        if (by.lo) lines.push(`${opt.escape(t('machine.min'))}: ${fmt.num(by.lo.value[1], 3)}`);
        if (by.lo && by.band) lines.push(`${opt.escape(t('machine.max'))}: ${fmt.num(by.lo.value[1] + by.band.value[1], 3)}`);
        return lines.join('<br>');
      },
    },
    xAxis: opt.timeAxis(),
    yAxis: { type: 'value', scale: true, name: '', splitNumber: 4 },
    dataZoom: opt.zoom(8),
    series: [],
  };
}

function telemetryData(res, anomalies, color) {
  const markLine = anomalies.length ? {
    symbol: 'none', silent: true,
    lineStyle: { color: colors.warn, type: 'dashed', width: 1 },
    label: { show: false },
    data: anomalies.map((x) => ({ xAxis: x })),
  } : undefined;
  if (Array.isArray(res.points)) {
    return {
      count: res.points.length,
      series: [{
        id: 'v', name: t('machine.value'), type: 'line', showSymbol: false, sampling: 'lttb',
        lineStyle: { width: 1.5, color }, itemStyle: { color }, data: res.points, markLine,
      }],
    };
  }
  const b = res.buckets || [];
  // The min-max band in the signal's colour, faint.
  const areaColor = `${color}33`;
  return {
    count: b.length,
    series: [
      { id: 'lo', name: t('machine.min'), type: 'line', stack: 'band', symbol: 'none', lineStyle: { opacity: 0 }, data: b.map((x) => [x.start_ms, x.min]) },
      { id: 'band', name: t('machine.max'), type: 'line', stack: 'band', symbol: 'none', lineStyle: { opacity: 0 }, areaStyle: { color: areaColor }, data: b.map((x) => [x.start_ms, x.max - x.min]) },
      { id: 'mean', name: t('machine.mean'), type: 'line', showSymbol: false, lineStyle: { width: 1.5, color }, itemStyle: { color }, data: b.map((x) => [x.start_ms, x.mean]), markLine },
    ],
  };
}
