// Small UI building blocks shared by the pages: independently loaded sections,
// toasts, tables, badges, and the shared leads filter.
import { h, replace, emptyFilter } from './util.js';

// ---------- toasts ----------

/** Show a short message in the toast area. kind: 'ok' | 'error' | 'info'. */
export function toast(message, kind = 'info', ms = 5000) {
  const area = document.getElementById('toasts');
  if (!area) return;
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': `toast-${kind}` },
    h('span', null, message),
    h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
  area.appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? ms * 2 : ms);
}

// ---------- sections ----------

export function errorBox(err, retry) {
  const code = err && err.code ? ` (${err.code})` : '';
  return h('div', { class: 'error-box', role: 'alert', 'data-testid': 'section-error' },
    h('strong', null, 'Could not load this section'), code,
    h('div', { class: 'error-msg' }, (err && err.message) || String(err)),
    retry ? h('button', { type: 'button', class: 'btn btn-small', onclick: retry }, 'Try again') : null);
}

export function emptyState(text) {
  return h('p', { class: 'empty', 'data-testid': 'empty-state' }, text);
}

/** A section that loads on its own: a failing query shows an inline error here
 * and leaves the rest of the page alone. `load()` returns data, `render(data)` returns nodes.
 * Returns {el, body, reload(quiet)}; with quiet the old content stays while loading. */
export function section({ title, testid, load, render, actions, className }) {
  const body = h('div', { class: 'section-body', 'aria-live': 'polite' });
  const heading = title ? h('div', { class: 'section-head' }, h('h2', null, title), actions || null) : null;
  const el = h('section', { class: ['card', className], 'data-testid': testid || null, 'aria-busy': 'false' }, heading, body);
  let seq = 0;
  let loadedOnce = false;
  async function reload(quiet = false) {
    const my = ++seq;
    el.setAttribute('aria-busy', 'true');
    if (!quiet || !loadedOnce) replace(body, h('p', { class: 'loading' }, 'Loading…'));
    try {
      const data = await load();
      if (my !== seq) return;
      replace(body, render(data));
      loadedOnce = true;
    } catch (err) {
      if (my !== seq) return;
      replace(body, errorBox(err, () => reload(false)));
      loadedOnce = false;
    } finally {
      if (my === seq) el.setAttribute('aria-busy', 'false');
    }
  }
  return { el, body, reload };
}

// ---------- tables ----------

/** A horizontally scrollable table. columns: [{label, cell(row) -> node|string, className}] */
export function table(columns, rows, { testid, rowAttrs, caption } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { 'data-testid': testid || null },
      caption ? h('caption', { class: 'sr-only' }, caption) : null,
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.className || null }, c.label)))),
      h('tbody', null, rows.map((row) => h('tr', rowAttrs ? rowAttrs(row) : null,
        columns.map((c) => h('td', { class: c.className || null, 'data-label': c.label }, c.cell(row))))))));
}

export function badge(text, kind) {
  const k = String(kind || text || '').toLowerCase().replace(/[^a-z0-9_-]/g, '');
  return h('span', { class: `badge badge-${k}` }, text ?? '—');
}

export function yesNo(v) {
  if (v === null || v === undefined) return badge('unknown', 'unknown');
  return v ? badge('yes', 'yes') : badge('no', 'no');
}

/** Run an async action from a button: disable it while busy, toast the outcome. */
export async function runAction(button, fn, okMessage) {
  if (button) { button.disabled = true; button.setAttribute('aria-busy', 'true'); }
  try {
    const result = await fn();
    if (okMessage) toast(typeof okMessage === 'function' ? okMessage(result) : okMessage, 'ok');
    return result;
  } catch (err) {
    toast(`${err.message}${err.code ? ` (${err.code})` : ''}`, 'error');
    return undefined;
  } finally {
    if (button) { button.disabled = false; button.removeAttribute('aria-busy'); }
  }
}

export function button(label, attrs = {}) {
  return h('button', { type: 'button', class: 'btn', ...attrs }, label);
}

// ---------- shared leads filter (Leads page + Export page) ----------

const FILTER_KEY = 'leadcache.leadsFilter';
let currentFilter = null;

export function getLeadsFilter() {
  if (!currentFilter) {
    currentFilter = emptyFilter();
    try {
      const saved = JSON.parse(sessionStorage.getItem(FILTER_KEY) || 'null');
      if (saved && typeof saved === 'object') currentFilter = { ...currentFilter, ...saved };
    } catch { /* ignore */ }
  }
  return { ...currentFilter, status: [...(currentFilter.status || [])] };
}

export function setLeadsFilter(f) {
  currentFilter = { ...emptyFilter(), ...f };
  try { sessionStorage.setItem(FILTER_KEY, JSON.stringify(currentFilter)); } catch { /* ignore */ }
}

export const SYNC_STATES = ['SYNCED', 'PENDING', 'CONFLICT', 'ERROR', 'LOCAL'];
