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
 * (text inputs debounced). Returns {el, setStatuses(list, error), destroy()}. */
export function filterForm(filter, onChange) {
  let el = null;
  // A change that lands after the page was left (debounced typing) must not touch the shared filter.
  const changed = () => { if (!el || el.isConnected) onChange(); };
  const typed = debounce(changed, 300);

  const search = h('input', {
    type: 'search', id: 'lead-search', 'data-testid': 'lead-search', value: filter.search || '',
    placeholder: 'Name, company, email, title…', autocomplete: 'off',
    oninput: (e) => { filter.search = e.target.value; typed(); },
  });
  // Status: a dropdown of checkboxes (several can be picked), works the same on a phone.
  const statusLabel = h('span', { class: 'multi-label' });
  const statusBox = h('fieldset', { class: 'multi-options' }, h('legend', { class: 'sr-only' }, 'Statuses'));
  const statusNote = h('span', { class: 'field-hint' });
  const status = h('details', { class: 'multi', 'data-testid': 'filter-status' },
    h('summary', { class: 'btn multi-summary' }, h('span', { class: 'sr-only' }, 'Status: '), statusLabel), statusBox);
  const showStatusLabel = () => {
    const n = (filter.status || []).length;
    statusLabel.textContent = n === 0 ? 'any' : n <= 2 ? filter.status.join(', ') : `${n} statuses`;
  };
  const outside = (e) => {
    if (!status.isConnected) { document.removeEventListener('click', outside); return; }
    if (status.open && !status.contains(e.target)) status.open = false;
  };
  document.addEventListener('click', outside);
  status.addEventListener('keydown', (e) => { if (e.key === 'Escape' && status.open) { status.open = false; status.querySelector('summary').focus(); } });
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
      for (const i of statusBox.querySelectorAll('input')) i.checked = false;
      showStatusLabel();
      changed();
    } }, 'Clear filters');

  function setStatuses(list, error) {
    while (statusBox.childNodes.length > 1) statusBox.removeChild(statusBox.lastChild);
    // Keep statuses already in the filter even when the server does not list them.
    const all = [...list, ...(filter.status || []).filter((x) => !list.includes(x))];
    for (const st of all) {
      statusBox.appendChild(h('label', { class: 'multi-option' },
        h('input', { type: 'checkbox', value: st, 'data-testid': `filter-status-${st}`, checked: (filter.status || []).includes(st),
          onchange: () => {
            filter.status = [...statusBox.querySelectorAll('input:checked')].map((i) => i.value);
            showStatusLabel();
            changed();
          } }), h('span', null, st)));
    }
    if (!all.length) statusBox.appendChild(h('p', { class: 'muted' }, 'No statuses.'));
    statusNote.textContent = error ? `Statuses could not be loaded: ${error.message}` : '';
    showStatusLabel();
  }

  el = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter leads', onsubmit: (e) => { e.preventDefault(); typed.cancel(); changed(); } },
    h('div', { class: 'field field-search' }, h('label', { for: 'lead-search', class: 'field-label' }, 'Search'), search),
    h('div', { class: 'field' }, h('span', { class: 'field-label', 'aria-hidden': 'true' }, 'Status'), status, statusNote),
    labelled('Source', source),
    labelled('Company', company),
    labelled('Sync state', syncState),
    labelled('Enriched', enriched),
    h('label', { class: 'field field-check' }, includeDeleted, h('span', null, 'Include deleted')),
    h('div', { class: 'field field-buttons' }, clear));
  loadStatuses().then((r) => setStatuses(r.list, r.error));
  return { el, setStatuses, destroy: () => typed.cancel() };
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
