// A small DOM builder (text is always set as text, never parsed as HTML) and the pieces
// every page uses: panels, tables, stat cards, badges.

import { t } from './i18n.js';

/**
 * h('div', {class: 'x', testid: 'y', onclick: f}, child, ...) — children are nodes, strings
 * or numbers (as text), arrays (flattened), null/false (skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'testid') el.dataset.testid = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style' && typeof v === 'object') {
        for (const [sk, sv] of Object.entries(v)) {
          if (sk.startsWith('--')) el.style.setProperty(sk, sv); else el.style[sk] = sv;
        }
      }
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  append(el, children);
  return el;
}

/** Replaces the children of `el` (same rules as h: null and false are skipped). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** A page header: the title (testid page-title) and optional things on the right. */
export function pageHeader(title, ...right) {
  return h('div', { class: 'page-head' },
    h('h1', { testid: 'page-title' }, title),
    h('div', { class: 'page-head-right' }, right));
}

/** A titled panel. */
export function panel(title, attrs, ...body) {
  const a = { ...(attrs || {}) };
  a.class = `panel ${a.class || ''}`.trim();
  return h('section', a, title ? h('h2', { class: 'panel-title' }, title) : null, body);
}

/** A stat card: a label, a big value and an optional note. */
export function stat(label, value, { testid, note, tone } = {}) {
  return h('div', { class: `stat ${tone ? `tone-${tone}` : ''}`, testid },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value' }, value),
    note ? h('div', { class: 'stat-note' }, note) : null);
}

/**
 * A table: `columns` are [label, (row) => cell content, {class}] triples; `rowAttrs(row)` gives
 * attributes for each row (testid, onclick…).
 */
export function table(columns, rows, { rowAttrs, empty, testid, caption } = {}) {
  const body = rows.length
    ? rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : null,
      columns.map(([, cell, o]) => h('td', { class: o && o.class }, cell(r)))))
    : [h('tr', null, h('td', { class: 'empty', colspan: String(columns.length) }, empty || t('common.noData')))];
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'grid', testid },
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', null, h('tr', null, columns.map(([label, , o]) => h('th', { scope: 'col', class: o && o.class }, label)))),
      h('tbody', null, body)));
}

/** A coloured badge for a machine state. */
export function stateBadge(state) {
  const s = ['idle', 'busy', 'down', 'maintenance'].includes(state) ? state : 'unknown';
  return h('span', { class: `badge state-${s}` }, t(`state.${s}`));
}

export function chips(items, cls = '') {
  return h('div', { class: 'chips' }, items.map((x) => h('span', { class: `chip ${cls}` }, x)));
}

export function emptyNote(text) {
  return h('p', { class: 'empty-note' }, text);
}

/** A select with `options` as [value, label] pairs. */
export function select(options, value, attrs) {
  const el = h('select', attrs, options.map(([v, l]) => h('option', { value: v }, l)));
  if (value !== undefined) el.value = value;
  return el;
}

/** A labelled form field. */
export function field(label, control, attrs) {
  const id = control.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  control.id = id;
  return h('div', { class: 'field', ...(attrs || {}) }, h('label', { for: id }, label), control);
}
