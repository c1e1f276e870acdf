// #/forecast — demand history and the forecast per product, with its prediction interval.

import { t, fmt, toMs } from '../i18n.js';
import { api, withQuery } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, select, field } from '../dom.js';
import { colors, opt } from '../charts.js';

export async function render(ctx) {
  let product = sessionStorage.getItem('aifactory.product') || undefined;
  let d;
  try {
    d = await api(withQuery('/api/v1/forecast', { product }));
  } catch (e) {
    if (!product) throw e;
    product = undefined; // a product remembered from another plant
    d = await api('/api/v1/forecast');
  }
  if (!ctx.alive()) return;

  const productSel = select((d.products || [d.product]).map((p) => [p, p]), d.product, { testid: 'forecast-product' });
  const stats = h('div', { class: 'stats' });
  const chartEl = h('div', { class: 'chart tall', testid: 'chart-forecast' });
  const tableBox = h('div');
  ctx.view.append(
    pageHeader(t('forecast.title'), h('div', { class: 'form-row' }, field(t('common.product'), productSel))),
    stats,
    panel(null, null, chartEl),
    panel(t('forecast.table'), null, tableBox),
  );
  await ctx.charts.ready();
  if (!ctx.alive()) return;
  const chart = ctx.charts.make(chartEl, {
    grid: opt.grid({ left: 56, right: 24, top: 44, bottom: 60 }),
    legend: { top: 4, left: 'center' },
    tooltip: { trigger: 'axis', confine: true },
    xAxis: opt.timeAxis(),
    yAxis: { type: 'value', name: t('forecast.quantity'), min: 0 },
    dataZoom: opt.zoom(8),
    series: [],
  });

  function show(f) {
    const pct = Math.round((f.level ?? 0.9) * 100);
    const history = (f.history || []).map((x) => [toMs(x.day), x.quantity]);
    const fc = f.forecast || [];
    const mean = fc.map((x) => [toMs(x.day), x.mean]);
    // The forecast line starts from the last observed day so the two lines join.
    const joined = history.length && mean.length ? [history[history.length - 1], ...mean] : mean;
    const bandName = t('forecast.band', { p: pct });
    const total = fc.reduce((s, x) => s + (x.mean || 0), 0);
    fill(stats,
      stat(t('forecast.horizon'), `${fmt.int(fc.length)} ${t('common.days')}`, { tone: 'info' }),
      stat(t('forecast.total'), fmt.num(total, 0), { testid: 'forecast-total', note: fc.length ? `${fmt.date(fc[0].day)} – ${fmt.date(fc[fc.length - 1].day)}` : null }),
      stat(t('forecast.next'), fc.length ? fmt.num(fc[0].mean, 1) : '—', { testid: 'forecast-next', note: fc.length ? `${bandName}: ${fmt.num(fc[0].lo, 1)} – ${fmt.num(fc[0].hi, 1)}` : null }),
      stat(t('forecast.history'), `${fmt.int(history.length)} ${t('common.days')}`),
    );
    chart.setOption({
      tooltip: {
        formatter: (ps) => {
          const by = Object.fromEntries(ps.map((p) => [p.seriesId, p]));
          const day = ps[0] ? fmt.date(ps[0].value[0]) : '';
          const lines = [day];
          if (by.history) lines.push(`${by.history.marker}${opt.escape(t('forecast.history'))}: <b>${fmt.num(by.history.value[1], 1)}</b>`);
          if (by.mean) lines.push(`${by.mean.marker}${opt.escape(t('forecast.mean'))}: <b>${fmt.num(by.mean.value[1], 1)}</b>`);
          if (by.lo && by.band) lines.push(`${opt.escape(bandName)}: ${fmt.num(by.lo.value[1], 1)} – ${fmt.num(by.lo.value[1] + by.band.value[1], 1)}`);
          return lines.join('<br>');
        },
      },
      legend: { data: [t('forecast.history'), t('forecast.mean'), bandName] },
      series: [
        { id: 'lo', name: '_lo', type: 'line', stack: 'band', symbol: 'none', lineStyle: { opacity: 0 }, data: fc.map((x) => [toMs(x.day), x.lo]), tooltip: { show: false } },
        { id: 'band', name: bandName, type: 'line', stack: 'band', symbol: 'none', lineStyle: { opacity: 0 }, itemStyle: { color: 'rgba(255,152,48,0.5)' }, areaStyle: { color: 'rgba(255,152,48,0.22)' }, data: fc.map((x) => [toMs(x.day), x.hi - x.lo]) },
        { id: 'history', name: t('forecast.history'), type: 'line', symbol: 'circle', symbolSize: 4, showSymbol: history.length < 120, itemStyle: { color: colors.info }, lineStyle: { width: 1.6 }, data: history },
        { id: 'mean', name: t('forecast.mean'), type: 'line', symbol: 'circle', symbolSize: 5, itemStyle: { color: colors.warn }, lineStyle: { width: 2, type: 'dashed' }, data: joined },
      ],
    }, { replaceMerge: ['series'] });
    chartEl.dataset.count = String(history.length + fc.length);
    fill(tableBox, table([
      [t('forecast.day'), (x) => fmt.date(x.day), { class: 'nowrap num' }],
      [t('forecast.mean'), (x) => fmt.num(x.mean, 1), { class: 'num' }],
      [t('forecast.lo'), (x) => fmt.num(x.lo, 1), { class: 'num' }],
      [t('forecast.hi'), (x) => fmt.num(x.hi, 1), { class: 'num' }],
    ], fc, { testid: 'forecast-table' }));
  }
  show(d);

  productSel.addEventListener('change', async () => {
    try {
      const f = await api(withQuery('/api/v1/forecast', { product: productSel.value }));
      if (!ctx.alive()) return;
      sessionStorage.setItem('aifactory.product', productSel.value);
      show(f);
    } catch (e) { ctx.showError(e); }
  });
}
