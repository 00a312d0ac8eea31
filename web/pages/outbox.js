// Outbox: unpushed changes per lead, filterable by state; retry one lead or all.
import { h, debounce, fmtDate } from '../util.js';
import { gql } from '../graphql.js';
import { section, table, badge, emptyState, runAction, button } from '../ui.js';

export const OUTBOX_Q = `query Outbox($state: OutboxState) { outbox(state: $state) {
  leadId operation fields attempts nextAttemptAt lastError state createdAt lead { id fullName company } } }`;
const RETRY_M = 'mutation Retry($leadId: ID) { retryOutbox(leadId: $leadId) }';

const STATES = ['PENDING', 'FAILED', 'DEAD'];

export function mount(root, { bus, query }) {
  let state = STATES.includes(query.get('state')) ? query.get('state') : '';

  const retry = (leadId, btn) => runAction(btn, () => gql(RETRY_M, { leadId }).then((d) => d.retryOutbox),
    (n) => (leadId ? `Re-queued ${n} change(s) for this lead` : `Re-queued ${n} change(s)`))
    .then((n) => { if (n !== undefined) list.reload(true); });

  const list = section({ title: 'Entries', testid: 'section-outbox', load: () => gql(OUTBOX_Q, { state: state || null }),
    render: (d) => (d.outbox.length ? table([
      { label: 'Lead', cell: (e) => h('a', { href: `#/leads/${encodeURIComponent(e.leadId)}` }, e.lead ? e.lead.fullName : e.leadId) },
      { label: 'Operation', cell: (e) => e.operation },
      { label: 'Fields', cell: (e) => (e.fields.length ? e.fields.join(', ') : '—') },
      { label: 'State', cell: (e) => badge(e.state.toLowerCase(), e.state) },
      { label: 'Attempts', cell: (e) => String(e.attempts), className: 'num' },
      { label: 'Next attempt', cell: (e) => (e.state === 'DEAD' ? 'never (dead)' : fmtDate(e.nextAttemptAt)) },
      { label: 'Queued', cell: (e) => fmtDate(e.createdAt) },
      { label: 'Last error', cell: (e) => (e.lastError ? h('span', { class: 'error-text' }, e.lastError) : '—') },
      { label: 'Action', cell: (e) => {
        const b = h('button', { type: 'button', class: 'btn btn-small', 'data-testid': `retry-${e.leadId}`,
          'aria-label': `Retry ${e.lead ? e.lead.fullName : e.leadId}` }, 'Retry');
        b.addEventListener('click', () => retry(e.leadId, b));
        return b;
      } },
    ], d.outbox, { testid: 'outbox-table', rowAttrs: (e) => ({ 'data-lead-id': e.leadId, class: `row-${e.state.toLowerCase()}` }) })
      : emptyState(state ? `No ${state.toLowerCase()} entries.` : 'The outbox is empty: every local change has been pushed.')) });

  const select = h('select', { id: 'outbox-state', 'data-testid': 'outbox-state',
    onchange: (e) => {
      state = e.target.value;
      history.replaceState(null, '', state ? `#/outbox?state=${state}` : '#/outbox');
      list.reload(false);
    } },
  h('option', { value: '' }, 'all'), STATES.map((st) => h('option', { value: st, selected: st === state }, st.toLowerCase())));
  const retryAll = button('Retry all', { 'data-testid': 'btn-retry-all', onclick: () => retry(null, retryAll) });

  root.appendChild(h('div', { 'data-testid': 'page-outbox' },
    h('div', { class: 'page-head' }, h('h1', null, 'Outbox'),
      h('div', { class: 'actions' }, h('label', { for: 'outbox-state' }, 'State '), select, retryAll)),
    h('p', { class: 'muted' }, 'Local changes waiting to be pushed to Airtable. Failed entries are retried with backoff; ',
      'dead ones (8 failed attempts) wait for you to retry them.'),
    list.el));
  list.reload(false);

  const reload = debounce(() => list.reload(true), 800, 4000);
  bus.addEventListener('syncProgress', reload);
  bus.addEventListener('leadChanged', reload);
  return () => { bus.removeEventListener('syncProgress', reload); bus.removeEventListener('leadChanged', reload); reload.cancel(); };
}
