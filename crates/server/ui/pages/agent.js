// #/agent — ask the plant's agent (a model, or the offline planner) in English or Chinese, and
// decide the actions it holds for approval: changes to the plant wait here for a person.

import { t, fmt } from '../i18n.js';
import { api } from '../api.js';
import { h, fill, pageHeader, panel, table, emptyNote } from '../dom.js';

export async function render(ctx) {
  const canAct = ctx.canAct();
  const question = h('textarea', { rows: '3', class: 'agent-question', testid: 'agent-question', placeholder: t('agent.placeholder') });
  const send = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'agent-ask' }, t('agent.ask'));
  const answer = h('div', { class: 'agent-answer', testid: 'agent-answer', 'aria-live': 'polite' }, emptyNote(t('agent.hint')));
  const actions = h('div', { testid: 'agent-actions' });
  const form = h('form', {
    class: 'agent-form',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const q = question.value.trim();
      if (!q) return;
      send.disabled = true;
      fill(answer, emptyNote(t('agent.thinking')));
      try {
        const a = await api('/api/v1/agent/ask', { method: 'POST', body: { question: q } });
        if (!ctx.alive()) return;
        showAnswer(a);
        await loadActions();
      } catch (e) {
        fill(answer, emptyNote(''));
        ctx.showError(e);
      } finally {
        send.disabled = false;
      }
    },
  }, question, h('div', { class: 'agent-form-row' }, send));

  function showAnswer(a) {
    const steps = (a.steps || []).map((s) => h('li', { testid: 'agent-step', 'data-outcome': s.outcome },
      h('span', { class: 'mono' }, s.tool), ' ',
      h('span', { class: `badge outcome-${s.outcome}` }, t(`agent.outcome.${s.outcome}`)),
      s.action ? h('span', { class: 'mono' }, ` ${s.action}`) : null,
      s.error || s.reason ? h('span', { class: 'note' }, ` ${s.error || s.reason}`) : null));
    const cites = (a.citations || []).map((c) => h('li', null, h('span', { class: 'mono' }, `[${c.id}]`), ` ${c.title} — ${c.section}`));
    fill(answer,
      h('p', { class: 'agent-by' }, t('agent.by', { by: a.by, ms: fmt.num(a.elapsed_ms, 0) })),
      h('div', { class: 'agent-text', testid: 'agent-text' }, a.text),
      steps.length ? h('ul', { class: 'agent-steps' }, steps) : null,
      cites.length ? h('div', null, h('h3', null, t('agent.sources')), h('ul', { class: 'agent-cites' }, cites)) : null);
  }

  async function decide(id, verb) {
    try {
      await api(`/api/v1/agent/actions/${encodeURIComponent(id)}/${verb}`, { method: 'POST' });
      await loadActions();
    } catch (e) {
      ctx.showError(e);
      await loadActions();
    }
  }

  async function loadActions() {
    const res = await api('/api/v1/agent/actions?limit=50');
    if (!ctx.alive()) return;
    const approvers = res.approvers || {};
    const mayDecide = (a) => canAct && (approvers[a.tool] || []).includes(ctx.session.role);
    const cols = [
      [t('agent.col.id'), (a) => h('span', { class: 'mono' }, a.id), { class: 'nowrap' }],
      [t('agent.col.created'), (a) => fmt.dateTime(a.created_at), { class: 'nowrap num' }],
      [t('agent.col.tool'), (a) => h('span', { class: 'mono' }, a.tool), { class: 'nowrap' }],
      [t('agent.col.arguments'), (a) => h('code', { class: 'agent-args' }, JSON.stringify(a.arguments))],
      [t('agent.col.by'), (a) => `${a.requested_by} (${t(`role.${a.role}`)}, ${a.via})`],
      [t('agent.col.status'), (a) => h('span', { class: `badge action-${a.status}`, testid: 'action-status' }, t(`agent.status.${a.status}`)), { class: 'nowrap' }],
      [t('agent.col.decide'), (a) => (a.status === 'pending' && mayDecide(a)
        ? h('span', { class: 'proposal-actions' },
          h('button', { type: 'button', class: 'btn btn-ok', testid: 'action-approve', onclick: () => decide(a.id, 'approve') }, t('proposal.approve')),
          h('button', { type: 'button', class: 'btn btn-bad', testid: 'action-reject', onclick: () => decide(a.id, 'reject') }, t('proposal.reject')))
        : (a.decided_by ? t('agent.decidedBy', { who: a.decided_by }) : '—')), { class: 'nowrap' }],
    ];
    fill(actions, table(cols, res.actions || [], {
      testid: 'actions-table', caption: t('agent.actions'), empty: t('agent.noActions'),
      rowAttrs: (a) => ({ testid: 'action-row', 'data-id': a.id, 'data-status': a.status }),
    }));
  }

  ctx.view.append(
    pageHeader(t('agent.title')),
    h('div', { class: 'row cols-main-side' },
      panel(t('agent.askTitle'), { testid: 'agent-panel' }, form, answer),
      panel(t('agent.policyTitle'), null, h('p', { class: 'note' }, t('agent.policy')),
        canAct ? null : h('p', { class: 'note warn' }, t('common.forbidden', { role: t(`role.${ctx.session.role}`) })))),
    panel(t('agent.actions'), null, actions),
  );
  await loadActions();
  ctx.every(5000, () => loadActions().catch(() => {}));
}
