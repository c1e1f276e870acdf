// #/quality — SPC control charts for a machine's signal: X̄ (subgroup means) and R (ranges),
// with centre line and control limits, points breaking a rule highlighted.

import { t, fmt, has } from '../i18n.js';
import { api } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, select, field, emptyNote } from '../dom.js';
import { colors, opt } from '../charts.js';

const KEY = 'aifactory.spc';

export async function render(ctx) {
  const saved = JSON.parse(sessionStorage.getItem(KEY) || '{}');
  let charts = [];
  let machine = saved.machine;
  let signal = saved.signal;

  const machineSel = select([], undefined, { testid: 'quality-machine' });
  const signalSel = select([], undefined, { testid: 'quality-signal' });
  const stats = h('div', { class: 'stats' });
  const meanEl = h('div', { class: 'chart', testid: 'chart-spc-mean' });
  const rangeEl = h('div', { class: 'chart', testid: 'chart-spc-range' });
  const violBox = h('div');
  const overviewBox = h('div');
  const subNote = h('span', { class: 'page-sub' });

  ctx.view.append(
    pageHeader(t('quality.title'), subNote,
      h('div', { class: 'form-row' }, field(t('common.machine'), machineSel), field(t('common.signal'), signalSel))),
    stats,
    h('div', { class: 'row cols-main-side' },
      h('div', { class: 'stack' },
        panel(t('quality.mean'), null, meanEl),
        panel(t('quality.range'), null, rangeEl)),
      panel(t('quality.overview'), { class: 'overview-panel' }, overviewBox)),
    panel(t('quality.violations'), null, violBox),
  );

  // The data is fetched while ECharts loads.
  const fetched = fetchCharts();
  fetched.catch(() => {});
  await ctx.charts.ready();
  if (!ctx.alive()) return;
  const meanChart = ctx.charts.make(meanEl, spcOption());
  const rangeChart = ctx.charts.make(rangeEl, spcOption());
  // Rules of the dispersion (R) chart; every other rule is the X̄ chart's.
  const isRangeRule = (v) => /^(r|range)[_-]|^dispersion/i.test(v);
  const rangeRule = (c) => (p) => (p.violations || []).some(isRangeRule)
    || (Number.isFinite(c.range?.ucl) && p.range > c.range.ucl) || (Number.isFinite(c.range?.lcl) && p.range < c.range.lcl);
  const meanRule = (p) => (p.violations || []).some((v) => !isRangeRule(v));
  const flagged = (c) => (c.points || []).filter((p) => (p.violations || []).length || rangeRule(c)(p));

  async function fetchCharts() {
    const res = await api('/api/v1/quality/spc');
    // The server answers every chart ({charts: [...]}); one chart on its own is taken too.
    charts = Array.isArray(res?.charts) ? res.charts : res && res.points ? [res] : [];
  }

  function selectors() {
    const machines = [...new Set(charts.map((c) => c.machine))];
    const names = new Map((ctx.plant()?.machines || []).map((m) => [m.id, m.name]));
    if (!machines.includes(machine)) machine = machines[0];
    fill(machineSel, machines.map((m) => h('option', { value: m }, names.get(m) && names.get(m) !== m ? `${m} · ${names.get(m)}` : m)));
    machineSel.value = machine ?? '';
    const signals = charts.filter((c) => c.machine === machine).map((c) => c.signal);
    if (!signals.includes(signal)) signal = signals[0];
    fill(signalSel, signals.map((x) => h('option', { value: x }, x)));
    signalSel.value = signal ?? '';
  }

  function draw() {
    sessionStorage.setItem(KEY, JSON.stringify({ machine, signal }));
    fill(overviewBox, table([
      [t('common.machine'), (c) => c.machine, { class: 'nowrap' }],
      [t('common.signal'), (c) => c.signal, { class: 'nowrap mono' }],
      [t('quality.points'), (c) => fmt.int((c.points || []).length), { class: 'num' }],
      [t('quality.violations'), (c) => {
        const n = flagged(c).length;
        return h('span', { class: `badge ${n ? 'rejected' : 'approved'}`, title: n ? t('quality.outOfControl', { n }) : t('quality.inControl') }, n ? fmt.int(n) : t('quality.inControl'));
      }, { class: 'nowrap num' }],
    ], charts, {
      testid: 'spc-overview', empty: t('quality.noCharts'),
      rowAttrs: (c) => ({
        class: `clickable ${c.machine === machine && c.signal === signal ? 'selected' : ''}`, tabindex: '0',
        onclick: () => { machine = c.machine; signal = c.signal; selectors(); draw(); },
        onkeydown: (ev) => { if (ev.key === 'Enter') { machine = c.machine; signal = c.signal; selectors(); draw(); } },
      }),
    }));
    const d = charts.find((c) => c.machine === machine && c.signal === signal);
    if (!d) {
      fill(stats);
      fill(violBox, emptyNote(t('quality.noCharts')));
      meanEl.dataset.count = '0';
      rangeEl.dataset.count = '0';
      return;
    }
    const pts = d.points || [];
    const r = d.range || {};
    const bad = flagged(d);
    subNote.textContent = t('quality.subgroup', { n: d.subgroup_size ?? '—' });
    fill(stats,
      stat(t('quality.cl'), fmt.num(d.center, 3), { tone: 'info' }),
      stat(t('quality.ucl'), fmt.num(d.ucl, 3)),
      stat(t('quality.lcl'), fmt.num(d.lcl, 3)),
      stat(`R ${t('quality.cl')}`, fmt.num(r.center, 3)),
      stat(t('quality.points'), fmt.int(pts.length)),
      stat(t('quality.violations'), fmt.int(bad.length), {
        testid: 'spc-violations', tone: bad.length ? 'bad' : 'ok',
        note: bad.length ? t('quality.outOfControl', { n: bad.length }) : t('quality.inControl'),
      }),
    );
    const cats = pts.map((p) => fmt.shortDateTime(p.at));
    meanChart.setOption(spcSeries(cats, pts.map((p) => p.mean), pts.map(meanRule), d, pts, t('quality.mean')), { replaceMerge: ['series'] });
    rangeChart.setOption(spcSeries(cats, pts.map((p) => p.range), pts.map(rangeRule(d)), r, pts, t('quality.range')), { replaceMerge: ['series'] });
    meanEl.dataset.count = String(pts.length);
    rangeEl.dataset.count = String(pts.length);
    fill(violBox, table([
      [t('common.time'), (p) => fmt.dateTime(p.at), { class: 'nowrap num' }],
      ['X̄', (p) => fmt.num(p.mean, 3), { class: 'num' }],
      ['R', (p) => fmt.num(p.range, 3), { class: 'num' }],
      [t('quality.rule'), (p) => (p.violations?.length ? p.violations : ['R']).map((v, i) => [i ? ', ' : '', h('abbr', { title: has(`rule.${v}`) ? t(`rule.${v}`) : v }, v)]), { class: 'rules' }],
    ], [...bad].reverse(), { testid: 'spc-violations-table', empty: t('quality.noViolations') }));
  }

  machineSel.addEventListener('change', () => { machine = machineSel.value; signal = undefined; selectors(); draw(); });
  signalSel.addEventListener('change', () => { signal = signalSel.value; draw(); });

  await fetched;
  if (!ctx.alive()) return;
  selectors();
  draw();
  // The charts are live: new subgroups arrive as the plant runs.
  ctx.every(15000, async () => {
    try {
      await fetchCharts();
      if (ctx.alive()) { selectors(); draw(); }
    } catch (e) { if (ctx.alive()) ctx.showError(e); }
  });
}

function spcOption() {
  return {
    grid: opt.grid({ left: 64, right: 24, top: 20, bottom: 56 }),
    tooltip: { trigger: 'axis', confine: true },
    xAxis: { type: 'category', boundaryGap: false, axisLabel: { hideOverlap: true } },
    yAxis: { type: 'value', scale: true, splitNumber: 4, axisLabel: { showMinLabel: false, showMaxLabel: false } },
    dataZoom: opt.zoom(8),
    series: [],
  };
}

function spcSeries(cats, values, flagged, limits, pts, name) {
  const { center, ucl, lcl } = limits || {};
  // UCL labelled above its line, LCL below its, CL at the start: close limits never overlap.
  const line = (v, label, color, type, position) => (Number.isFinite(v) ? {
    yAxis: v, lineStyle: { color, type, width: 1.2 },
    label: { formatter: `${label} ${fmt.num(v, 3)}`, color, position, fontSize: 11, backgroundColor: 'rgba(24,27,31,0.75)', padding: [1, 4] },
  } : null);
  const lims = [
    line(ucl, t('quality.ucl'), colors.bad, 'dashed', 'insideEndTop'),
    line(center, t('quality.cl'), colors.ok, 'solid', 'insideStartTop'),
    line(lcl, t('quality.lcl'), colors.bad, 'dashed', 'insideEndBottom'),
  ].filter(Boolean);
  const finite = values.filter(Number.isFinite).concat([ucl, lcl, center].filter(Number.isFinite));
  const lo = Math.min(...finite);
  const hi = Math.max(...finite);
  const pad = (hi - lo) * 0.08 || 1;
  return {
    xAxis: { data: cats },
    yAxis: { min: finite.length ? +(lo - pad).toPrecision(4) : null, max: finite.length ? +(hi + pad).toPrecision(4) : null },
    tooltip: {
      formatter: (ps) => {
        const p = ps[0];
        if (!p) return '';
        const pt = pts[p.dataIndex];
        const v = pt.violations || [];
        return `${fmt.dateTime(pt.at)}<br>${p.marker}${opt.escape(name)}: <b>${fmt.num(p.value?.value ?? p.value, 3)}</b>${v.length ? `<br><span style="color:#ff8c99">${v.map(opt.escape).join(', ')}</span>` : ''}`;
      },
    },
    series: [{
      id: 'spc', type: 'line', name, symbol: 'circle', symbolSize: 5, showAllSymbol: true,
      lineStyle: { color: '#8ab8ff', width: 1.4 }, itemStyle: { color: '#8ab8ff' },
      data: values.map((v, i) => (flagged[i]
        ? { value: v, symbolSize: 10, itemStyle: { color: colors.bad, borderColor: '#fff', borderWidth: 1 } }
        : { value: v })),
      markLine: { symbol: 'none', silent: true, data: lims },
      markArea: Number.isFinite(ucl) && Number.isFinite(lcl) ? {
        silent: true, itemStyle: { color: 'rgba(115,191,105,0.05)' }, data: [[{ yAxis: lcl }, { yAxis: ucl }]],
      } : undefined,
    }],
  };
}
