// The leads filter form and the export buttons, shared by the Leads and Export pages.
import { h, debounce, toExportQuery } from '../util.js';
import { gql, download } from '../graphql.js';
import { SYNC_STATES, runAction } from '../ui.js';

const STATUSES_Q = 'query Statuses { statuses }';
let statusesCache = null;

/** Configured pipeline statuses (cached for the session); [] with `error` set when the query fails. */
export async function loadStatuses() {
  if (statusesCache) return statusesCache;
  try {
    const d = await gql(STATUSES_Q);
    statusesCache = { list: d.statuses, error: null };
  } catch (err) {
    return { list: [], error: err };
  }
  return statusesCache;
}

function labelled(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control,
    hint ? h('span', { class: 'field-hint' }, hint) : null);
}

/** Filter controls bound to `filter` (mutated in place); `onChange()` runs after each change
 * (text inputs debounced). Returns {el, setStatuses(list, error)}. */
export function filterForm(filter, onChange) {
  const changed = () => onChange();
  const typed = debounce(changed, 300);

  const search = h('input', {
    type: 'search', id: 'lead-search', 'data-testid': 'lead-search', value: filter.search || '',
    placeholder: 'Name, company, email, title…', autocomplete: 'off',
    oninput: (e) => { filter.search = e.target.value; typed(); },
  });
  const status = h('select', {
    multiple: true, size: 4, 'data-testid': 'filter-status', 'aria-describedby': 'status-hint',
    onchange: (e) => { filter.status = [...e.target.selectedOptions].map((o) => o.value); changed(); },
  });
  const statusNote = h('span', { class: 'field-hint', id: 'status-hint' }, 'Ctrl/⌘-click to pick several');
  const source = h('input', { type: 'text', 'data-testid': 'filter-source', value: filter.source || '',
    oninput: (e) => { filter.source = e.target.value; typed(); } });
  const company = h('input', { type: 'text', 'data-testid': 'filter-company', value: filter.company || '',
    oninput: (e) => { filter.company = e.target.value; typed(); } });
  const syncState = h('select', { 'data-testid': 'filter-sync-state',
    onchange: (e) => { filter.syncState = e.target.value; changed(); } },
  h('option', { value: '' }, 'any'),
  SYNC_STATES.map((st) => h('option', { value: st, selected: filter.syncState === st }, st.toLowerCase())));
  const enriched = h('select', { 'data-testid': 'filter-enriched',
    onchange: (e) => { filter.enriched = e.target.value; changed(); } },
  h('option', { value: '' }, 'any'),
  h('option', { value: 'true', selected: filter.enriched === 'true' }, 'yes'),
  h('option', { value: 'false', selected: filter.enriched === 'false' }, 'no'));
  const includeDeleted = h('input', { type: 'checkbox', 'data-testid': 'filter-include-deleted', checked: !!filter.includeDeleted,
    onchange: (e) => { filter.includeDeleted = e.target.checked; changed(); } });
  const clear = h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'filter-clear',
    onclick: () => {
      Object.assign(filter, { status: [], source: '', company: '', syncState: '', enriched: '', includeDeleted: false, search: '' });
      search.value = ''; source.value = ''; company.value = ''; syncState.value = ''; enriched.value = ''; includeDeleted.checked = false;
      for (const o of status.options) o.selected = false;
      changed();
    } }, 'Clear filters');

  function setStatuses(list, error) {
    while (status.firstChild) status.removeChild(status.firstChild);
    // Keep statuses already in the filter even when the server does not list them.
    const all = [...list, ...(filter.status || []).filter((x) => !list.includes(x))];
    for (const st of all) status.appendChild(h('option', { value: st, selected: (filter.status || []).includes(st) }, st));
    if (error) statusNote.textContent = `Statuses could not be loaded: ${error.message}`;
    status.size = Math.min(Math.max(all.length, 2), 5);
  }

  const el = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter leads', onsubmit: (e) => { e.preventDefault(); typed.cancel(); changed(); } },
    h('div', { class: 'field field-search' }, h('label', { for: 'lead-search', class: 'field-label' }, 'Search'), search),
    h('label', { class: 'field' }, h('span', { class: 'field-label' }, 'Status'), status, statusNote),
    labelled('Source', source),
    labelled('Company', company),
    labelled('Sync state', syncState),
    labelled('Enriched', enriched),
    h('label', { class: 'field field-check' }, includeDeleted, h('span', null, 'Include deleted')),
    h('div', { class: 'field field-buttons' }, clear));
  loadStatuses().then((r) => setStatuses(r.list, r.error));
  return { el, setStatuses };
}

function stamp() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}`;
}

/** "Export CSV" / "Export JSON" buttons for the filter returned by getFilter(). */
export function exportButtons(getFilter) {
  const make = (fmt, label) => {
    const btn = h('button', { type: 'button', class: 'btn', 'data-testid': `export-${fmt}` }, label);
    btn.addEventListener('click', () => {
      const qs = toExportQuery(getFilter());
      runAction(btn, () => download(`/export/leads.${fmt}${qs ? `?${qs}` : ''}`, `leads-${stamp()}.${fmt}`),
        (size) => `Exported ${fmt.toUpperCase()} (${size.toLocaleString('en-US')} bytes)`);
    });
    return btn;
  };
  return h('div', { class: 'export-buttons' }, make('csv', 'Export CSV'), make('json', 'Export JSON'));
}
