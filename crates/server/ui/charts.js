// ECharts (vendored, global `echarts`): one dark theme for every chart, and a per-page set of
// charts that resize with their containers and are disposed when the page is left.

import { getLang } from './i18n.js';

export const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif';

export const palette = ['#5794f2', '#73bf69', '#f2cc0c', '#ff9830', '#b877d9', '#8ab8ff', '#4fc3c7', '#fade2a', '#ca95e5', '#96d98d', '#ffb357', '#6ed0e0'];
export const colors = {
  text: '#c7d0d9', muted: '#8e99a4', grid: '#262a30', axis: '#3a4048',
  ok: '#73bf69', warn: '#ff9830', bad: '#f2495c', info: '#5794f2', idle: '#7f8b96',
};
export const stateColor = { busy: '#3fa354', idle: '#5c6773', down: '#e02f44', maintenance: '#e8912d', unknown: '#4a525c' };

const axis = {
  axisLine: { lineStyle: { color: colors.axis } },
  axisTick: { lineStyle: { color: colors.axis } },
  axisLabel: { color: colors.muted },
  splitLine: { lineStyle: { color: colors.grid } },
  splitArea: { show: false },
  nameTextStyle: { color: colors.muted },
};

const theme = {
  color: palette,
  backgroundColor: 'transparent',
  textStyle: { fontFamily: FONT, color: colors.text },
  title: { textStyle: { color: '#e6e9ed', fontWeight: 600, fontSize: 13 }, subtextStyle: { color: colors.muted } },
  legend: { textStyle: { color: '#aeb6bf' }, inactiveColor: '#4a525c' },
  tooltip: {
    backgroundColor: 'rgba(22,25,29,0.97)', borderColor: '#3a4048', borderWidth: 1,
    textStyle: { color: '#e6e9ed', fontSize: 12 }, extraCssText: 'box-shadow:0 4px 16px rgba(0,0,0,.5);',
  },
  categoryAxis: axis, valueAxis: axis, timeAxis: axis, logAxis: axis,
  dataZoom: {
    borderColor: colors.axis, textStyle: { color: colors.muted },
    fillerColor: 'rgba(87,148,242,0.15)', handleStyle: { color: '#5794f2', borderColor: '#5794f2' },
    moveHandleStyle: { color: '#3a4048' },
    dataBackground: { lineStyle: { color: '#4b5560' }, areaStyle: { color: 'rgba(87,148,242,0.12)' } },
    selectedDataBackground: { lineStyle: { color: '#5794f2' }, areaStyle: { color: 'rgba(87,148,242,0.25)' } },
  },
  markLine: { label: { color: colors.text } },
};

let themed = false;

/** The charts of one page. */
export class ChartSet {
  constructor() {
    this.charts = [];
    this.pending = false;
    this.ro = typeof ResizeObserver === 'function'
      ? new ResizeObserver(() => {
        if (this.pending) return;
        this.pending = true;
        requestAnimationFrame(() => { this.pending = false; this.resize(); });
      })
      : null;
  }

  /**
   * Resolves once ECharts has loaded (or failed to: make() then says so). index.html loads it
   * async, so pages fetch and lay out their data meanwhile and wait only before drawing.
   */
  ready() {
    return Promise.resolve(window.echarts ? true : window.echartsReady);
  }

  /** A chart in `el` with `option` (times on every axis in UTC, as the twin's clock). */
  make(el, option) {
    const ec = window.echarts;
    if (!ec) throw new Error('ECharts did not load (/ui/vendor/echarts.min.js)');
    if (!themed) { ec.registerTheme('aifactory', theme); themed = true; }
    const chart = ec.init(el, 'aifactory', { renderer: 'canvas', locale: getLang() === 'zh' ? 'ZH' : 'EN' });
    chart.setOption({ useUTC: true, animationDuration: 300, animationDurationUpdate: 300, ...option });
    this.charts.push(chart);
    if (this.ro) this.ro.observe(el);
    return chart;
  }

  resize() {
    for (const c of this.charts) if (!c.isDisposed()) c.resize();
  }

  dispose() {
    if (this.ro) this.ro.disconnect();
    for (const c of this.charts) if (!c.isDisposed()) c.dispose();
    this.charts = [];
  }
}

/** A stable colour for a key (an order id): the same order keeps its colour across charts. */
export function colorFor(key) {
  let x = 0;
  for (const ch of String(key)) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return palette[x % palette.length];
}

/** Shared pieces of chart options. */
export const opt = {
  grid: (extra) => ({ left: 56, right: 24, top: 36, bottom: 64, containLabel: false, ...extra }),
  zoom: (bottom = 12) => [
    { type: 'inside', xAxisIndex: 0, filterMode: 'none' },
    { type: 'slider', xAxisIndex: 0, height: 18, bottom, filterMode: 'none', showDetail: false },
  ],
  /** A time axis with labels in the chosen language (day boundaries as dates). */
  timeAxis(extra) {
    const zh = getLang() === 'zh';
    return {
      type: 'time',
      axisLabel: {
        hideOverlap: true,
        formatter: {
          year: '{yyyy}', month: zh ? '{M}月' : '{MMM}', day: zh ? '{M}月{d}日' : '{d} {MMM}',
          hour: '{HH}:{mm}', minute: '{HH}:{mm}', second: '{HH}:{mm}:{ss}', millisecond: '{HH}:{mm}:{ss}', none: '{HH}:{mm}',
        },
        rich: {},
      },
      ...(extra || {}),
    };
  },
  escape(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  },
};
