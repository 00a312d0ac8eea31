// Leads: search, filters, sortable columns, cursor paging, live refresh of the open page.
import { h, replace, debounce, fmtDate, fmtNum, CursorStack, toLeadFilter, describeFilter } from '../util.js';
import { gql } from '../graphql.js';
import { badge, errorBox, emptyState, getLeadsFilter, setLeadsFilter } from '../ui.js';
import { filterForm, exportButtons } from './lead-filters.js';

export const LEADS_Q = `query Leads($filter: LeadFilter, $search: String, $orderBy: [LeadOrder!], $first: Int, $after: String) {
  leads(filter: $filter, search: $search, orderBy: $orderBy, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { id fullName email company title status source score enriched syncState
      pendingFields createdAt updatedAt deletedAt } } } }`;

const COLUMNS = [
  { label: 'Name', field: 'FULL_NAME', cell: (l) => h('a', { href: `#/leads/${encodeURIComponent(l.id)}`, class: 'lead-link' }, l.fullName || '(no name)') },
  { label: 'Company', field: 'COMPANY', cell: (l) => l.company || '—' },
  { label: 'Title', cell: (l) => l.title || '—' },
  { label: 'Email', cell: (l) => l.email || '—' },
  { label: 'Status', field: 'STATUS', cell: (l) => badge(l.status, 'status') },
  { label: 'Score', field: 'SCORE', className: 'num', cell: (l) => (l.score === null || l.score === undefined ? '—' : String(l.score)) },
  { label: 'Source', cell: (l) => l.source || '—' },
  { label: 'Sync', cell: (l) => badge(l.syncState.toLowerCase(), l.syncState) },
  { label: 'Updated', field: 'UPDATED_AT', cell: (l) => fmtDate(l.updatedAt) },
  { label: 'Created', field: 'CREATED_AT', cell: (l) => fmtDate(l.createdAt) },
];

// Kept across visits to the page (the filter itself lives in ui.js so Export sees it).
const view = { order: { field: 'UPDATED_AT', direction: 'DESC' }, pageSize: 50, cursors: new CursorStack() };

export function mount(root, { bus, navigate }) {
  const filter = getLeadsFilter();
  let seq = 0;
  let shownIds = new Set();
  const highlight = new Map(); // lead id -> time until which its row is marked as changed
  const HIGHLIGHT_MS = 6000;

  const summary = h('p', { class: 'muted filter-summary', 'data-testid': 'leads-total', role: 'status' });
  const tableBox = h('div', { class: 'leads-table-box', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'btn', 'data-testid': 'page-prev', onclick: () => { view.cursors.previous(); load(); } }, '← Previous');
  const next = h('button', { type: 'button', class: 'btn', 'data-testid': 'page-next' }, 'Next →');
  const pageNo = h('span', { class: 'page-number', 'data-testid': 'page-number' });
  const pageSize = h('select', { 'data-testid': 'page-size', 'aria-label': 'Leads per page',
    onchange: (e) => { view.pageSize = Number(e.target.value); view.cursors.reset(); load(); } },
  [25, 50, 100, 200].map((n) => h('option', { value: String(n), selected: n === view.pageSize }, `${n} per page`)));
  let endCursor = null;
  next.addEventListener('click', () => { if (endCursor) { view.cursors.next(endCursor); load(); } });

  const form = filterForm(filter, () => {
    setLeadsFilter(filter);
    view.cursors.reset();
    load();
  });

  function sortHeader(col) {
    if (!col.field) return h('th', { scope: 'col', class: col.className || null }, col.label);
    const active = view.order.field === col.field;
    const dir = active ? view.order.direction : null;
    return h('th', { scope: 'col', class: col.className || null, 'aria-sort': dir === 'ASC' ? 'ascending' : dir === 'DESC' ? 'descending' : 'none' },
      h('button', { type: 'button', class: 'sort-btn', 'data-testid': `sort-${col.field}`,
        onclick: () => {
          view.order = { field: col.field, direction: active && dir === 'ASC' ? 'DESC' : 'ASC' };
          view.cursors.reset();
          load();
        } }, col.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, dir === 'ASC' ? ' ▲' : dir === 'DESC' ? ' ▼' : ' ↕')));
  }

  function renderTable(conn, live) {
    const nodes = conn.edges.map((e) => e.node);
    if (!nodes.length) {
      return emptyState(view.cursors.hasPrevious ? 'No more leads on this page.' : 'No leads match this filter.');
    }
    const before = shownIds;
    const now = Date.now();
    for (const [id, until] of highlight) if (until < now) highlight.delete(id);
    if (live && before.size > 0) for (const l of nodes) if (!before.has(l.id)) highlight.set(l.id, now + HIGHLIGHT_MS);
    return h('div', { class: 'table-wrap' },
      h('table', { 'data-testid': 'leads-table', class: 'leads-table' },
        h('caption', { class: 'sr-only' }, 'Leads'),
        h('thead', null, h('tr', null, COLUMNS.map(sortHeader))),
        h('tbody', null, nodes.map((l) => {
          const isChanged = highlight.has(l.id);
          return h('tr', {
            'data-lead-id': l.id, class: [isChanged ? 'row-changed' : null, l.deletedAt ? 'row-deleted' : null],
            onclick: (e) => { if (!e.target.closest('a, button')) navigate(`#/leads/${encodeURIComponent(l.id)}`); },
          }, COLUMNS.map((c) => h('td', { class: c.className || null, 'data-label': c.label }, c.cell(l))));
        }))));
  }

  async function load(quiet = false) {
    const my = ++seq;
    const { filter: f, search } = toLeadFilter(filter);
    if (!quiet) tableBox.setAttribute('aria-busy', 'true');
    if (!quiet && !tableBox.firstChild) replace(tableBox, h('p', { class: 'loading' }, 'Loading…'));
    try {
      const d = await gql(LEADS_Q, { filter: f, search, orderBy: [view.order], first: view.pageSize, after: view.cursors.after });
      if (my !== seq) return;
      const conn = d.leads;
      endCursor = conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null;
      replace(tableBox, renderTable(conn, quiet));
      shownIds = new Set(conn.edges.map((e) => e.node.id));
      const from = (view.cursors.page - 1) * view.pageSize + (conn.edges.length ? 1 : 0);
      const to = (view.cursors.page - 1) * view.pageSize + conn.edges.length;
      replace(summary, `${fmtNum(conn.totalCount)} leads (${describeFilter(filter)})`,
        conn.edges.length ? ` · showing ${fmtNum(from)}–${fmtNum(to)}` : '');
      const pages = Math.max(1, Math.ceil(conn.totalCount / view.pageSize));
      replace(pageNo, `Page ${view.cursors.page}`, h('span', { class: 'muted' }, ` of ${fmtNum(pages)}`));
    } catch (err) {
      if (my !== seq) return;
      replace(tableBox, errorBox(err, () => load()));
      replace(summary, '');
      endCursor = null;
    } finally {
      if (my === seq) {
        tableBox.setAttribute('aria-busy', 'false');
        prev.disabled = !view.cursors.hasPrevious;
        next.disabled = !endCursor;
      }
    }
  }

  root.appendChild(h('div', { 'data-testid': 'page-leads' },
    h('div', { class: 'page-head' }, h('h1', null, 'Leads'), exportButtons(() => filter)),
    h('section', { class: 'card' }, form.el),
    h('section', { class: 'card' }, summary, tableBox,
      h('div', { class: 'pager' }, prev, pageNo, next, pageSize))));
  load();

  const refetch = debounce(() => load(true), 700, 3000);
  const onLead = (ev) => {
    const change = ev.detail;
    if (change && change.lead) highlight.set(change.lead.id, Date.now() + HIGHLIGHT_MS);
    refetch();
  };
  bus.addEventListener('leadChanged', onLead);
  return () => { bus.removeEventListener('leadChanged', onLead); refetch.cancel(); form.destroy(); };
}
