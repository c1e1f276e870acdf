// #/decisions — the decision ledger, newest first, filterable by skill, stage, who executed
// it and free text; a row opens its output JSON. New decisions arrive from the event stream.

import { t, fmt, toMs } from '../i18n.js';
import { api, withQuery } from '../api.js';
import { h, fill, pageHeader, panel, select, field, emptyNote } from '../dom.js';

const STAGES = ['design', 'testing', 'production', 'management', 'sales'];
const BY = ['auto', 'human', 'agent', 'none'];
const KEY = 'aifactory.ledger';

export async function render(ctx) {
  const saved = JSON.parse(sessionStorage.getItem(KEY) || '{}');
  const f = { skill: '', stage: '', by: '', text: '', limit: '500', ...saved };
  let all = [];
  let selected = null;

  const skillSel = select([['', t('decisions.all')]], '', { testid: 'filter-skill' });
  const stageSel = select([['', t('decisions.all')], ...STAGES.map((s) => [s, t(`stage.${s}`)])], f.stage, { testid: 'filter-stage' });
  const bySel = select([['', t('decisions.all')], ...BY.map((s) => [s, t(`by.${s}`)])], f.by, { testid: 'filter-executed-by' });
  const text = h('input', { type: 'search', value: f.text, placeholder: t('decisions.textPlaceholder'), testid: 'filter-text' });
  const limitSel = select(['100', '500', '1000', '5000'].map((n) => [n, n]), f.limit, { testid: 'filter-limit' });
  const count = h('span', { class: 'page-sub', testid: 'decisions-count', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const detail = h('div', { testid: 'decision-detail' }, emptyNote(t('decisions.pick')));

  const cols = [
    ['decisions.at', 'nowrap num'], ['decisions.id', 'nowrap mono'], ['decisions.skill', 'nowrap'],
    ['decisions.stage', 'nowrap'], ['decisions.model', 'nowrap'], ['decisions.confidence', 'num'],
    ['decisions.executedBy', 'nowrap'], ['decisions.outcome', 'nowrap'],
  ];
  ctx.view.append(
    pageHeader(t('decisions.title'), count),
    h('div', { class: 'filters panel' },
      field(t('decisions.filterSkill'), skillSel),
      field(t('decisions.filterStage'), stageSel),
      field(t('decisions.filterBy'), bySel),
      field(t('decisions.filterText'), text, { class: 'field grow' }),
      field(t('decisions.limit'), limitSel)),
    h('div', { class: 'row cols-main-side' },
      h('section', { class: 'panel' },
        h('div', { class: 'table-wrap', style: { maxHeight: '70vh' } },
          h('table', { class: 'grid', testid: 'decisions-table' },
            h('caption', { class: 'sr-only' }, t('decisions.title')),
            h('thead', null, h('tr', null, cols.map(([k, c]) => h('th', { scope: 'col', class: c }, t(k))))),
            tbody))),
      h('section', { class: 'panel detail-panel' }, detail)),
  );

  const matches = (d) => {
    if (f.skill && d.skill !== f.skill) return false;
    if (f.stage && d.stage !== f.stage) return false;
    if (f.by && d.executed_by !== f.by) return false;
    if (f.text) {
      const hay = `${d.id} ${d.skill} ${d.stage} ${d.model} ${d.model_version} ${d.inputs_ref} ${JSON.stringify(d.output)}`.toLowerCase();
      if (!f.text.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w))) return false;
    }
    return true;
  };

  function row(d) {
    const tr = h('tr', {
      class: `clickable ${selected === d.id ? 'selected' : ''}`, testid: 'decision-row', 'data-id': d.id, tabindex: '0',
      onclick: () => choose(d, tr),
      onkeydown: (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); choose(d, tr); } },
    },
    h('td', { class: 'nowrap num' }, fmt.dateTime(d.at)),
    h('td', { class: 'nowrap mono' }, d.id),
    h('td', { class: 'nowrap' }, d.skill),
    h('td', { class: 'nowrap' }, STAGES.includes(d.stage) ? t(`stage.${d.stage}`) : d.stage),
    h('td', { class: 'model' }, `${d.model ?? ''}${d.model_version ? ` ${d.model_version}` : ''}`),
    h('td', { class: 'num' }, typeof d.confidence === 'number' ? fmt.pct(d.confidence, 0) : '—'),
    h('td', { class: 'nowrap' }, byBadge(d.executed_by)),
    h('td', { class: 'nowrap' }, outcome(d.outcome)));
    return tr;
  }

  function draw() {
    sessionStorage.setItem(KEY, JSON.stringify(f));
    const shown = all.filter(matches);
    fill(tbody, ...(shown.length ? shown.map(row)
      : [h('tr', null, h('td', { class: 'empty', colspan: String(cols.length) }, t('decisions.none')))]));
    count.textContent = t('decisions.shown', { n: fmt.int(shown.length), total: fmt.int(all.length) });
  }

  function choose(d, tr) {
    selected = d.id;
    for (const r of tbody.querySelectorAll('tr.selected')) r.classList.remove('selected');
    tr.classList.add('selected');
    fill(detail,
      h('h3', null, t('decisions.detail', { id: d.id })),
      h('dl', { class: 'kv' },
        kv(t('decisions.at'), fmt.dateTimeSec(d.at)),
        kv(t('decisions.skill'), d.skill),
        kv(t('decisions.stage'), STAGES.includes(d.stage) ? t(`stage.${d.stage}`) : d.stage),
        kv(t('decisions.model'), `${d.model ?? ''} ${d.model_version ?? ''}`),
        kv(t('decisions.confidence'), typeof d.confidence === 'number' ? fmt.pct(d.confidence, 1) : '—'),
        kv(t('decisions.executedBy'), byBadge(d.executed_by)),
        kv(t('decisions.inputs'), h('span', { class: 'mono' }, d.inputs_ref ?? '—'))),
      h('h4', { class: 'panel-title' }, t('decisions.output')),
      h('pre', { class: 'json', testid: 'decision-output' }, JSON.stringify(d.output, null, 2)),
      d.outcome ? [h('h4', { class: 'panel-title', style: { marginTop: '12px' } }, t('decisions.outcome')),
        h('pre', { class: 'json' }, JSON.stringify(d.outcome, null, 2))] : null,
    );
  }

  function fillSkills() {
    const skills = [...new Set(all.map((d) => d.skill))].sort();
    if (f.skill && !skills.includes(f.skill)) skills.push(f.skill);
    fill(skillSel, h('option', { value: '' }, t('decisions.all')), ...skills.map((s) => h('option', { value: s }, s)));
    skillSel.value = f.skill;
  }

  async function load() {
    const res = await api(withQuery('/api/v1/decisions', { limit: f.limit }));
    if (!ctx.alive()) return;
    all = [...(res.decisions || [])].sort((a, b) => toMs(b.at) - toMs(a.at) || String(b.id).localeCompare(String(a.id)));
    fillSkills();
    draw();
  }

  skillSel.addEventListener('change', () => { f.skill = skillSel.value; draw(); });
  stageSel.addEventListener('change', () => { f.stage = stageSel.value; draw(); });
  bySel.addEventListener('change', () => { f.by = bySel.value; draw(); });
  text.addEventListener('input', () => { f.text = text.value.trim(); draw(); });
  limitSel.addEventListener('change', () => { f.limit = limitSel.value; load().catch(ctx.showError); });

  await load();

  ctx.onDecision((d) => {
    if (!d || !d.id || all.some((x) => x.id === d.id)) return;
    all.unshift(d);
    if (![...skillSel.options].some((o) => o.value === d.skill)) fillSkills();
    if (matches(d)) {
      tbody.querySelector('td.empty')?.parentElement.remove();
      tbody.prepend(row(d));
    }
    count.textContent = t('decisions.shown', { n: fmt.int(tbody.querySelectorAll('tr[data-id]').length), total: fmt.int(all.length) });
  });
}

function kv(k, v) { return [h('dt', null, k), h('dd', null, v)]; }

function byBadge(by) {
  const b = BY.includes(by) ? by : 'none';
  return h('span', { class: `badge by-${b}` }, t(`by.${b}`));
}

function outcome(o) {
  if (!o) return '—';
  if (o.success === true) return h('span', { class: 'badge approved' }, t('decisions.success'));
  if (o.success === false) return h('span', { class: 'badge rejected' }, t('decisions.failure'));
  return h('span', { class: 'badge by-none' }, t('decisions.measured'));
}
