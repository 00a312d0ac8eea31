// Export: CSV or JSON of the current leads filter (the same filter as the Leads page).
import { h, replace, debounce, describeFilter, toLeadFilter, fmtNum } from '../util.js';
import { gql } from '../graphql.js';
import { getLeadsFilter, setLeadsFilter } from '../ui.js';
import { filterForm, exportButtons } from './lead-filters.js';

const COUNT_Q = `query ExportCount($filter: LeadFilter, $search: String) {
  leads(filter: $filter, search: $search, first: 1) { totalCount } }`;

export function mount(root) {
  const filter = getLeadsFilter();
  const summary = h('p', { 'data-testid': 'export-filter-summary' });
  const count = h('p', { class: 'muted', 'data-testid': 'export-count', role: 'status' });
  let seq = 0;
  async function update() {
    replace(summary, 'Filter: ', h('strong', null, describeFilter(filter)));
    const my = ++seq;
    replace(count, 'Counting…');
    try {
      const d = await gql(COUNT_Q, toLeadFilter(filter));
      if (my === seq) replace(count, `${fmtNum(d.leads.totalCount)} leads will be exported.`);
    } catch (err) {
      if (my === seq) replace(count, h('span', { class: 'error-text', role: 'alert' }, `Could not count the leads: ${err.message}`));
    }
  }
  const later = debounce(update, 300);
  const form = filterForm(filter, () => { setLeadsFilter(filter); later(); });
  root.appendChild(h('div', { 'data-testid': 'page-export' },
    h('div', { class: 'page-head' }, h('h1', null, 'Export')),
    h('section', { class: 'card' },
      h('p', null, 'Download the leads matching the current filter (shared with the ', h('a', { href: '#/leads' }, 'Leads'), ' page). ',
        'CSV opens in a spreadsheet; JSON keeps every field, including the extra Airtable fields.'),
      summary, count, exportButtons(() => filter)),
    h('section', { class: 'card' }, h('h2', null, 'Filter'), form.el)));
  update();
  return () => { later.cancel(); form.destroy(); };
}
