// #/schedule — the current plan as a Gantt chart (ECharts custom series), a what-if panel
// (a machine down for some hours) that proposes a re-plan, and approving or rejecting proposals.

import { t, fmt, toMs, has } from '../i18n.js';
import { api, ApiError } from '../api.js';
import { h, fill, pageHeader, panel, stat, table, emptyNote, select, field } from '../dom.js';
import { colorFor, colors, opt } from '../charts.js';

export async function render(ctx) {
  const canAct = ctx.canAct();
  const planNote = h('span', { class: 'page-sub', testid: 'schedule-planned' });
  const refresh = h('button', { type: 'button', class: 'btn', onclick: () => loadPlan().catch(ctx.showError) }, t('common.refresh'));
  const stats = h('div', { class: 'stats' });
  const ganttEl = h('div', { class: 'chart tall', testid: 'gantt' });
  const ganttBox = h('div', null, ganttEl);
  const formBox = h('div', { testid: 'whatif' });
  const resultBox = h('div', { testid: 'whatif-result' }, emptyNote(t('whatif.hint')));
  const proposedEl = h('div', { class: 'chart tall', testid: 'gantt-proposal' });
  const proposedPanel = panel(t('whatif.proposed'), { hidden: true }, proposedEl);
  const proposalsBox = h('div');

  ctx.view.append(
    pageHeader(t('schedule.title'), planNote, refresh),
    stats,
    h('section', { class: 'panel', style: { marginBottom: '14px' } },
      h('div', { class: 'panel-head' }, h('h2', { class: 'panel-title' }, t('schedule.gantt')),
        h('div', { class: 'right legend' },
          h('span', null, h('span', { class: 'sw', style: { background: colorFor('O-0001') } }), t('schedule.work')),
          h('span', null, h('span', { class: 'sw', style: { background: colors.warn, outline: '1px dashed #ffd8a8' } }), t('schedule.service')),
          h('span', null, h('span', { class: 'sw', style: { background: '#5a636d' } }), t('schedule.setup')))),
      ganttBox),
    h('div', { class: 'row cols-2' },
      panel(t('whatif.title'), null, formBox),
      panel(null, null, resultBox)),
    proposedPanel,
    panel(t('proposals.title'), null, proposalsBox),
  );

  let plan = null;
  let mainChart = null;
  let proposedChart = null;
  let machines = [];

  async function loadPlan() {
    try {
      plan = await api('/api/v1/schedule');
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        plan = null;
        planNote.textContent = '';
        fill(stats);
        fill(ganttBox, emptyNote(`${t('schedule.noPlan')} (${e.message})`), ganttEl);
        ganttEl.hidden = true;
        ganttEl.dataset.bars = '0';
        return;
      }
      throw e;
    }
    if (!ctx.alive()) return;
    ganttEl.hidden = false;
    fill(ganttBox, ganttEl);
    machines = plan.machines?.length ? plan.machines : (ctx.plant()?.machines || []).map((m) => ({ id: m.id, name: m.name }));
    planNote.textContent = [t('schedule.planned', { t: fmt.dateTime(plan.at) }), plan.decision ? `${t('schedule.decision')} ${plan.decision}` : null].filter(Boolean).join(' · ');
    fill(stats,
      stat(t('schedule.makespan'), fmt.hours(plan.makespan_h), { testid: 'schedule-makespan', tone: 'info' }),
      stat(t('schedule.tardiness'), fmt.hours(plan.weighted_tardiness_h), { tone: plan.weighted_tardiness_h > 0 ? 'warn' : 'ok' }),
      typeof plan.late_jobs === 'number' ? stat(t('schedule.lateJobs'), fmt.int(plan.late_jobs), { testid: 'schedule-late', tone: plan.late_jobs ? 'bad' : 'ok' }) : null,
      stat(t('schedule.bars'), fmt.int((plan.bars || []).length)),
      stat(t('plant.machines'), fmt.int(machines.length)),
    );
    if (!mainChart) {
      await ctx.charts.ready();
      if (!ctx.alive()) return;
      mainChart = ctx.charts.make(ganttEl, ganttOption());
    }
    drawGantt(mainChart, ganttEl, machines, plan.bars || [], toMs(ctx.plant()?.sim_time ?? plan.at));
    if (!formBox.firstChild) buildForm();
  }

  // ------------------------------------------------------------ what-if form
  // One kind of what-if for now: a machine out of service for some hours.
  function buildForm() {
    const machineSel = select(machines.map((m) => [m.id, m.name && m.name !== m.id ? `${m.id} · ${m.name}` : m.id]), undefined, { testid: 'whatif-machine' });
    const hours = h('input', { type: 'number', min: '0.5', max: '336', step: '0.5', value: '8', testid: 'whatif-hours', inputmode: 'decimal' });
    const downRow = h('div', { class: 'form-row' }, field(t('whatif.machine'), machineSel), field(t('whatif.hours'), hours));
    const run = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'whatif-run', disabled: !canAct }, t('whatif.run'));

    const form = h('form', {
      onsubmit: async (ev) => {
        ev.preventDefault();
        ctx.clearError();
        const body = { machine_down: machineSel.value, hours: Number(hours.value) };
        run.disabled = true;
        run.textContent = t('whatif.running');
        try {
          const r = await api('/api/v1/schedule/what-if', { method: 'POST', body });
          if (ctx.alive()) showResult(r);
        } catch (e) {
          if (ctx.alive()) ctx.showError(e);
        } finally {
          run.disabled = !canAct;
          run.textContent = t('whatif.run');
        }
      },
    },
    h('p', { class: 'note', style: { marginTop: '0' } }, t('whatif.down')),
    downRow,
    h('div', { style: { marginTop: '14px', display: 'flex', gap: '10px', alignItems: 'center' } }, run),
    canAct ? null : h('p', { class: 'note warn', testid: 'whatif-forbidden' }, t('common.forbidden', { role: t(`role.${ctx.session.role}`) })));
    fill(formBox, form);
  }

  // ------------------------------------------------------------ proposal
  function showResult(r) {
    const status = h('span', { testid: 'proposal-status' });
    const decided = h('span', { class: 'page-sub' });
    const setStatus = (p) => {
      const s = p?.status || 'pending';
      status.className = `badge ${s}`;
      status.dataset.status = s;
      status.textContent = t(`proposal.${s}`);
      status.setAttribute('aria-label', `${t('proposal.status')}: ${t(`proposal.${s}`)}`);
      const pending = s === 'pending';
      approve.disabled = !canAct || !pending;
      reject.disabled = !canAct || !pending;
    };
    const act = (verb) => async () => {
      approve.disabled = true;
      reject.disabled = true;
      ctx.clearError();
      try {
        const res = await api(`/api/v1/proposals/${encodeURIComponent(r.proposal)}/${verb}`, { method: 'POST' });
        if (!ctx.alive()) return;
        setStatus(res?.proposal || { status: verb === 'approve' ? 'approved' : 'rejected' });
        const by = res?.proposal?.decided_by;
        decided.textContent = [by ? t('proposal.decided', { status: t(`proposal.${res.proposal.status}`), user: by }) : null,
          res?.decision ? t('proposal.decision', { id: res.decision }) : null,
          res && 'sent_to_plant' in res ? t(res.sent_to_plant ? 'proposal.sent' : 'proposal.notSent') : null].filter(Boolean).join(' · ');
        loadProposals();
        if (verb === 'approve') loadPlan().catch(ctx.showError);
      } catch (e) {
        if (!ctx.alive()) return;
        ctx.showError(e);
        setStatus({ status: 'pending' });
      }
    };
    const approve = h('button', { type: 'button', class: 'btn btn-ok', testid: 'proposal-approve', onclick: act('approve') }, t('proposal.approve'));
    const reject = h('button', { type: 'button', class: 'btn btn-bad', testid: 'proposal-reject', onclick: act('reject') }, t('proposal.reject'));
    setStatus({ status: 'pending' });

    const rows = [
      ['schedule.makespan', 'makespan_h', fmt.hours],
      ['schedule.tardiness', 'weighted_tardiness_h', fmt.hours],
      ['schedule.lateJobs', 'late_jobs', fmt.int],
    ];
    const b = r.before || {};
    const a = r.after || {};
    const compare = table([
      [t('whatif.metric'), (x) => t(x[0])],
      [t('whatif.before'), (x) => x[2](b[x[1]]), { class: 'num' }],
      [t('whatif.after'), (x) => x[2](a[x[1]]), { class: 'num' }],
      [t('whatif.change'), (x) => {
        const d = a[x[1]] - b[x[1]];
        return Number.isFinite(d) ? h('span', { class: d > 0 ? 'up' : d < 0 ? 'down' : '' }, `${d > 0 ? '+' : ''}${x[2](d)}`) : '—';
      }, { class: 'num' }],
    ], rows, { testid: 'whatif-compare' });
    compare.querySelector('table').classList.add('compare');

    fill(resultBox,
      h('div', { class: 'proposal-head' },
        h('h2', { class: 'panel-title', style: { margin: 0 }, testid: 'proposal-id' }, t('whatif.result', { id: r.proposal })),
        status,
        h('div', { class: 'proposal-actions' }, approve, reject)),
      r.summary ? h('p', { class: 'summary' }, r.summary) : null,
      compare,
      h('p', { class: 'note' }, decided),
      canAct ? null : h('p', { class: 'note warn' }, t('common.forbidden', { role: t(`role.${ctx.session.role}`) })),
    );
    proposedPanel.hidden = false;
    if (!proposedChart) proposedChart = ctx.charts.make(proposedEl, ganttOption());
    else proposedChart.resize();
    drawGantt(proposedChart, proposedEl, r.machines?.length ? r.machines : machines, r.bars || [], toMs(ctx.plant()?.sim_time ?? plan?.at));
    loadProposals();
  }

  async function loadProposals() {
    try {
      const res = await api('/api/v1/proposals');
      if (!ctx.alive()) return;
      const list = [...(res.proposals || [])].sort((x, y) => toMs(y.created) - toMs(x.created));
      fill(proposalsBox, table([
        [t('proposals.id'), (p) => p.id, { class: 'nowrap mono' }],
        [t('proposals.kind'), (p) => (has(`proposals.kind.${p.kind}`) ? t(`proposals.kind.${p.kind}`) : p.kind ?? ''), { class: 'nowrap' }],
        [t('proposals.summary'), (p) => p.summary ?? '', { class: 'wrap' }],
        [t('proposals.created'), (p) => fmt.dateTime(p.created), { class: 'nowrap num' }],
        [t('proposals.by'), (p) => p.by ?? '', { class: 'nowrap' }],
        [t('proposal.status'), (p) => h('span', { class: `badge ${p.status}` }, t(`proposal.${p.status}`))],
        [t('proposals.decidedBy'), (p) => p.decided_by ?? '—', { class: 'nowrap' }],
      ], list, { testid: 'proposals-table', empty: t('proposals.none'), rowAttrs: () => ({ testid: 'proposal-row' }) }));
    } catch (e) {
      if (ctx.alive()) ctx.showError(e);
    }
  }

  // Both lists are fetched at once (the plan's chart waits for ECharts).
  await Promise.all([loadPlan(), loadProposals()]);

  // A new scheduling decision means a new plan.
  let timer = null;
  ctx.onDecision((d) => {
    if (d?.skill !== 'scheduling' || timer) return;
    timer = setTimeout(() => { timer = null; if (ctx.alive()) loadPlan().catch(() => {}); }, 1000);
  });
  ctx.onLeave(() => clearTimeout(timer));
}

function ganttOption() {
  return {
    grid: { left: 190, right: 24, top: 28, bottom: 56 },
    tooltip: { trigger: 'item', confine: true },
    xAxis: opt.timeAxis({ position: 'top', splitLine: { show: true } }),
    yAxis: { type: 'category', inverse: true, data: [], axisTick: { show: false }, splitLine: { show: true, interval: 0 }, axisLabel: { width: 176, overflow: 'truncate' } },
    dataZoom: [
      { type: 'inside', xAxisIndex: 0, filterMode: 'weakFilter' },
      { type: 'slider', xAxisIndex: 0, height: 18, bottom: 12, filterMode: 'weakFilter', showDetail: false },
    ],
    series: [],
  };
}

function drawGantt(chart, el, machines, bars, nowMs) {
  const index = new Map(machines.map((m, i) => [m.id, i]));
  const cats = machines.map((m) => (m.name && m.name !== m.id ? `${m.id} · ${m.name}` : m.id));
  for (const b of bars) {
    if (!index.has(b.machine)) { index.set(b.machine, cats.length); cats.push(b.machine); }
  }
  const items = bars.map((b) => ({ ...b, s: toMs(b.start), e: toMs(b.end), y: index.get(b.machine) }))
    .filter((b) => Number.isFinite(b.s) && Number.isFinite(b.e));
  const echarts = window.echarts;

  const renderItem = (params, api) => {
    const it = items[params.dataIndex];
    const y = api.value(0);
    const start = api.coord([api.value(1), y]);
    const end = api.coord([api.value(2), y]);
    const height = api.size([0, 1])[1] * 0.64;
    const cs = params.coordSys;
    const shape = echarts.graphic.clipRectByRect(
      { x: start[0], y: start[1] - height / 2, width: Math.max(end[0] - start[0], 1.5), height },
      { x: cs.x, y: cs.y, width: cs.width, height: cs.height },
    );
    if (!shape) return null;
    const service = it.kind === 'service';
    const setup = it.kind === 'setup';
    const children = [{
      type: 'rect', shape, transition: ['shape'],
      style: service ? { fill: 'rgba(255,152,48,0.55)', stroke: '#ffb357', lineWidth: 1, lineDash: [3, 2] }
        : setup ? { fill: 'rgba(142,153,164,0.35)', stroke: '#8e99a4', lineWidth: 1 }
          : { fill: colorFor(it.order || it.job), stroke: 'rgba(0,0,0,0.35)', lineWidth: 1 },
    }];
    const label = service ? t('schedule.service') : setup ? t('schedule.setup') : (it.order || it.job);
    if (shape.width > 40 && label) {
      children.push({
        type: 'text', silent: true,
        style: {
          text: label, x: shape.x + 5, y: shape.y + shape.height / 2, verticalAlign: 'middle',
          fill: service ? '#1b1206' : setup ? '#d8dde3' : '#0d1117', font: '600 11px system-ui, sans-serif',
          width: shape.width - 8, overflow: 'truncate', ellipsis: '…',
        },
      });
    }
    return { type: 'group', children };
  };

  const nowOk = Number.isFinite(nowMs);
  chart.setOption({
    yAxis: { data: cats },
    tooltip: {
      formatter: (p) => {
        const it = items[p.dataIndex];
        if (!it) return '';
        const rows = [
          [t('schedule.job'), it.job],
          [t('common.order'), it.order || '—'],
          [t('schedule.op'), it.op ?? '—'],
          [t('common.machine'), it.machine],
          [t('common.kind'), ['service', 'setup'].includes(it.kind) ? t(`schedule.${it.kind}`) : t('schedule.work')],
          [t('schedule.start'), fmt.dateTime(it.s)],
          [t('schedule.end'), fmt.dateTime(it.e)],
          [t('schedule.duration'), fmt.hours((it.e - it.s) / 3600e3)],
        ];
        return `${p.marker}<b>${opt.escape(it.job)}</b><br>${rows.slice(1).map(([k, v]) => `<span style="color:#8e99a4">${opt.escape(k)}</span> ${opt.escape(v)}`).join('<br>')}`;
      },
    },
    series: [{
      id: 'bars', type: 'custom', renderItem, clip: true,
      encode: { x: [1, 2], y: 0 },
      data: items.map((it) => [it.y, it.s, it.e]),
      markLine: nowOk ? {
        symbol: 'none', silent: true,
        lineStyle: { color: '#f2495c', width: 1.5, type: 'solid' },
        label: { formatter: t('schedule.now'), color: '#ff8c99', position: 'end' },
        data: [{ xAxis: nowMs }],
      } : undefined,
    }],
  }, { replaceMerge: ['series'] });
  el.dataset.bars = String(items.length);
  el.style.height = `${Math.max(300, Math.min(760, cats.length * 34 + 90))}px`;
  chart.resize();
}
