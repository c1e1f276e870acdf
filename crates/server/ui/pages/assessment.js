// #/assessment — the tier the ledger earns: the tier, depth per lifecycle stage, evidence and
// what is missing per stage, cross-stage links, and what is missing for the next tier.

import { t, fmt, has } from '../i18n.js';
import { api } from '../api.js';
import { h, pageHeader, panel, stat, table, chips, emptyNote } from '../dom.js';
import { colors } from '../charts.js';

const KNOWN = ['stage', 'depth', 'decisions', 'executed', 'executed_auto', 'with_outcome', 'model_updates', 'live_scenarios', 'links', 'evidence', 'missing', 'skills'];
const COUNTS = ['decisions', 'executed', 'executed_auto', 'with_outcome', 'model_updates'];
const DEPTH_COLOR = ['#3a4048', '#5794f2', '#8ab8ff', '#73bf69'];

export async function render(ctx) {
  const a = await api('/api/v1/assessment');
  if (!ctx.alive()) return;
  const tier = Number.isInteger(a.tier) ? a.tier : 0;
  const stages = a.stages || [];
  const missingNext = a.missing_for_next_tier || [];
  const stageName = (s) => (has(`stage.${s}`) ? t(`stage.${s}`) : s);

  const depthEl = h('div', { class: 'chart short', testid: 'chart-depth' });
  ctx.view.append(
    pageHeader(t('assess.title')),
    h('div', { class: 'row cols-main-side' },
      h('section', { class: 'panel' },
        h('div', { class: 'tier-hero' },
          h('div', { class: `tier-big t${tier}`, testid: 'tier-value', 'aria-label': `${t('assess.tier')} ${tier}` }, String(tier)),
          h('div', null,
            h('div', { class: 'panel-title', style: { marginBottom: '4px' } }, t('assess.tier')),
            h('div', { class: 'tier-name', testid: 'tier-name' }, t(`assess.tier${Math.min(Math.max(tier, 0), 3)}`)),
            h('div', { class: 'tier-steps', 'aria-hidden': 'true' }, [1, 2, 3].map((i) => h('span', { class: i <= tier ? 'on' : '' }))))),
        h('div', { class: 'stats', style: { marginTop: '18px', marginBottom: 0 } },
          stat(t('assess.scenarios'), `${fmt.int(a.scenarios_live)} / ${fmt.int(a.scenarios_total)}`, { tone: 'info' }),
          shareStat(t('assess.scenarioShare'), a.scenario_share),
          shareStat(t('assess.streamingShare'), a.streaming_share))),
      panel(t('assess.missingNext'), { testid: 'missing-next' },
        missingNext.length
          ? h('ul', { class: 'missing-list' }, missingNext.map((m) => h('li', null, m)))
          : emptyNote(t('assess.atTop')))),
    panel(t('assess.depth'), null, depthEl),
    h('div', { class: 'stages', style: { marginBottom: '14px' } }, stages.map((s) => stageCard(s, stageName))),
    panel(t('assess.links'), null, linksTable(a.links || [])),
  );

  await ctx.charts.ready();
  if (!ctx.alive()) return;
  ctx.charts.make(depthEl, {
    grid: { left: 110, right: 70, top: 10, bottom: 30 },
    tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' }, formatter: (ps) => `${ps[0].name}: ${ps[0].value} — ${t(`assess.depth${ps[0].value}`)}` },
    xAxis: { type: 'value', min: 0, max: 3, interval: 1, axisLabel: { formatter: (v) => `${v} ${t(`assess.depth${v}`)}` } },
    yAxis: { type: 'category', inverse: true, data: stages.map((s) => stageName(s.stage)) },
    series: [{
      type: 'bar', barMaxWidth: 18,
      data: stages.map((s) => ({ value: s.depth ?? 0, itemStyle: { color: DEPTH_COLOR[s.depth] || colors.info, borderRadius: [0, 3, 3, 0] } })),
      label: { show: true, position: 'right', color: colors.text, formatter: (p) => String(p.value) },
      showBackground: true, backgroundStyle: { color: 'rgba(255,255,255,0.03)' },
    }],
  });
  depthEl.dataset.count = String(stages.length);
}

function shareStat(label, x) {
  return h('div', { class: 'stat' },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, fmt.pct(x, 0)),
    h('div', { class: 'bar', style: { marginTop: '4px' } }, h('span', { style: { width: `${Math.round((x || 0) * 100)}%` } })));
}

function stageCard(s, stageName) {
  const d = Math.min(Math.max(s.depth ?? 0, 0), 3);
  const extra = Object.entries(s).filter(([k]) => !KNOWN.includes(k));
  const list = (items, cls) => h('ul', { class: cls }, items.map((x) => h('li', null, typeof x === 'string' ? x : JSON.stringify(x))));
  return h('section', { class: 'panel stage-card', testid: 'stage-card', 'data-stage': s.stage },
    h('h3', null, stageName(s.stage), h('span', { class: `badge depth-${d}`, title: t('assess.stageDepth', { d }) }, `${d} / 3 · ${t(`assess.depth${d}`)}`)),
    h('div', { class: `depth-meter d${d}`, 'aria-hidden': 'true' }, [1, 2, 3].map((i) => h('span', { class: i <= d ? 'on' : '' }))),
    h('dl', { class: 'kv' },
      COUNTS.filter((k) => k in s).map((k) => [h('dt', null, t(`assess.${k}`)), h('dd', null, fmt.int(s[k]))]),
      extra.map(([k, v]) => [h('dt', null, k), h('dd', null, typeof v === 'object' ? JSON.stringify(v) : String(v))])),
    s.live_scenarios?.length ? [h('h4', null, t('assess.live_scenarios')), chips(s.live_scenarios)] : null,
    s.skills?.length ? [h('h4', null, t('assess.skills')), chips(s.skills)] : null,
    s.links?.length ? [h('h4', null, t('assess.stageLinks')), chips(s.links, 'link')] : null,
    s.evidence?.length ? [h('h4', null, t('assess.evidence')), list(s.evidence, 'evidence-list')] : null,
    s.missing?.length ? [h('h4', null, t('assess.missing')), list(s.missing, 'missing-list')] : null,
  );
}

function linksTable(links) {
  const extra = [...new Set(links.flatMap((l) => Object.keys(l)))].filter((k) => !['id', 'from', 'to', 'description', 'citations', 'decisions', 'skills', 'met'].includes(k));
  const cols = [
    [t('assess.link'), (l) => l.id ?? `${l.from ?? ''} → ${l.to ?? ''}`, { class: 'nowrap mono' }],
    [t('assess.description'), (l) => l.description ?? '', { class: 'wrap' }],
    [t('assess.citations'), (l) => fmt.int(l.citations ?? l.decisions), { class: 'num' }],
    [t('assess.skills'), (l) => chips(l.skills || [])],
  ];
  if (links.some((l) => 'met' in l)) {
    cols.push([t('assess.met'), (l) => h('span', { class: `badge ${l.met ? 'approved' : 'rejected'}` }, t(l.met ? 'common.yes' : 'common.no'))]);
  } else {
    cols.push([t('assess.met'), (l) => h('span', { class: `badge ${(l.citations ?? 0) > 0 ? 'approved' : 'by-none'}` }, t((l.citations ?? 0) > 0 ? 'common.yes' : 'common.no'))]);
  }
  for (const k of extra) cols.push([k, (l) => (typeof l[k] === 'object' ? JSON.stringify(l[k]) : String(l[k] ?? ''))]);
  return table(cols, links, { testid: 'links-table', rowAttrs: () => ({ testid: 'link-row' }) });
}
