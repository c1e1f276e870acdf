// #/quality — SPC control charts for a machine's signal: X̄ (subgroup means) and R (ranges),
// with centre line and control limits, points breaking a rule highlighted.

import { t, fmt } from '../i18n.js';
import { api, withQuery } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, select, field } from '../dom.js';
import { colors, opt } from '../charts.js';

const KEY = 'aifactory.spc';

export async function render(ctx) {
  const plant = ctx.plant() || await api('/api/v1/plant');
  if (!ctx.alive()) return;
  const machines = plant.machines || [];
  const saved = JSON.parse(sessionStorage.getItem(KEY) || '{}');
  let machine = machines.some((m) => m.id === saved.machine) ? saved.machine : machines[0]?.id;
  let signal = saved.signal;

  const machineSel = select(machines.map((m) => [m.id, m.name && m.name !== m.id ? `${m.id} · ${m.name}` : m.id]), machine, { testid: 'quality-machine' });
  const signalSel = select([], undefined, { testid: 'quality-signal' });
  const stats = h('div', { class: 'stats' });
  const meanEl = h('div', { class: 'chart', testid: 'chart-spc-mean' });
  const rangeEl = h('div', { class: 'chart', testid: 'chart-spc-range' });
  const violBox = h('div');
  const subNote = h('span', { class: 'page-sub' });

  ctx.view.append(
    pageHeader(t('quality.title'), subNote,
      h('div', { class: 'form-row' }, field(t('common.machine'), machineSel), field(t('common.signal'), signalSel))),
    stats,
    h('div', { class: 'row' },
      panel(t('quality.mean'), null, meanEl),
      panel(t('quality.range'), null, rangeEl)),
    panel(t('quality.violations'), null, violBox),
  );

  const meanChart = ctx.charts.make(meanEl, spcOption());
  const rangeChart = ctx.charts.make(rangeEl, spcOption());

  async function loadSignals() {
    const d = await api(`/api/v1/machines/${encodeURIComponent(machine)}`);
    const signals = d.signals || [];
    fill(signalSel, ...signals.map((s) => h('option', { value: s }, s)));
    if (!signals.includes(signal)) signal = signals[0];
    signalSel.value = signal ?? '';
  }

  async function load() {
    sessionStorage.setItem(KEY, JSON.stringify({ machine, signal }));
    if (!machine || !signal) return;
    const d = await api(withQuery('/api/v1/quality/spc', { machine, signal }));
    if (!ctx.alive()) return;
    const pts = d.points || [];
    const r = d.range || {};
    const rangeRule = (p) => (p.violations || []).some((v) => /^r(ange)?[_-]/i.test(v))
      || (Number.isFinite(r.ucl) && p.range > r.ucl) || (Number.isFinite(r.lcl) && p.range < r.lcl);
    const meanRule = (p) => (p.violations || []).some((v) => !/^r(ange)?[_-]/i.test(v));
    const bad = pts.filter((p) => (p.violations || []).length || rangeRule(p));
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
    rangeChart.setOption(spcSeries(cats, pts.map((p) => p.range), pts.map(rangeRule), r, pts, t('quality.range')), { replaceMerge: ['series'] });
    meanEl.dataset.count = String(pts.length);
    rangeEl.dataset.count = String(pts.length);
    fill(violBox, table([
      [t('common.time'), (p) => fmt.dateTime(p.at), { class: 'nowrap num' }],
      ['X̄', (p) => fmt.num(p.mean, 3), { class: 'num' }],
      ['R', (p) => fmt.num(p.range, 3), { class: 'num' }],
      [t('quality.rule'), (p) => h('div', { class: 'chips' }, (p.violations?.length ? p.violations : ['R > UCL']).map((v) => h('span', { class: 'chip' }, v)))],
    ], [...bad].reverse(), { testid: 'spc-violations-table', empty: t('quality.noViolations') }));
  }

  machineSel.addEventListener('change', async () => {
    machine = machineSel.value;
    try { await loadSignals(); await load(); } catch (e) { ctx.showError(e); }
  });
  signalSel.addEventListener('change', () => { signal = signalSel.value; load().catch(ctx.showError); });

  if (machine) {
    await loadSignals();
    await load();
  }
}

function spcOption() {
  return {
    grid: opt.grid({ left: 64, right: 90, top: 20, bottom: 56 }),
    tooltip: { trigger: 'axis', confine: true },
    xAxis: { type: 'category', boundaryGap: false, axisLabel: { hideOverlap: true } },
    yAxis: { type: 'value', scale: true, splitNumber: 4, axisLabel: { showMinLabel: false, showMaxLabel: false } },
    dataZoom: opt.zoom(8),
    series: [],
  };
}

function spcSeries(cats, values, flagged, limits, pts, name) {
  const { center, ucl, lcl } = limits || {};
  const line = (v, label, color, type) => (Number.isFinite(v) ? {
    yAxis: v, lineStyle: { color, type, width: 1.2 },
    label: { formatter: `${label} ${fmt.num(v, 3)}`, color, position: 'end', fontSize: 11 },
  } : null);
  const lims = [line(ucl, t('quality.ucl'), colors.bad, 'dashed'), line(center, t('quality.cl'), colors.ok, 'solid'), line(lcl, t('quality.lcl'), colors.bad, 'dashed')].filter(Boolean);
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
