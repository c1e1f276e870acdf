// #/login — user name and password; the server sets the session cookie.

import { t } from '../i18n.js';
import { api, ApiError } from '../api.js';
import { h } from '../dom.js';

export async function render(ctx) {
  const user = h('input', { type: 'text', id: 'login-user', name: 'username', autocomplete: 'username', required: true, testid: 'login-user', autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', id: 'login-password', name: 'password', autocomplete: 'current-password', required: true, testid: 'login-password' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit' }, t('login.submit'));
  const error = h('p', { class: 'login-error', role: 'alert', testid: 'login-error' });

  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      error.textContent = '';
      submit.disabled = true;
      submit.textContent = t('login.busy');
      try {
        const s = await api('/api/v1/session', {
          method: 'POST', body: { username: user.value.trim(), password: pass.value }, quiet401: true,
        });
        ctx.login(s);
      } catch (e) {
        error.textContent = t('login.failed', { error: e instanceof ApiError ? e.message : String(e) });
        pass.select();
      } finally {
        submit.disabled = false;
        submit.textContent = t('login.submit');
      }
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'login-user' }, t('login.user')), user),
  h('div', { class: 'field' }, h('label', { for: 'login-password' }, t('login.password')), pass),
  error,
  submit);

  ctx.view.append(h('div', { class: 'login-card' },
    h('svg', null),
    h('h1', { testid: 'page-title' }, t('login.title')),
    h('p', { class: 'page-sub' }, t('login.subtitle')),
    form,
    h('p', { class: 'note' }, t('login.hint'))));
  // The logo (an SVG element needs its namespace).
  const logo = document.querySelector('.topbar .logo').cloneNode(true);
  ctx.view.querySelector('.login-card > svg').replaceWith(logo);
  user.focus();
}
