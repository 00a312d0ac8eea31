// Backups: the list of backup files and a Back up now button.
import { h, fmtDate, fmtBytes, fmtNum } from '../util.js';
import { gql } from '../graphql.js';
import { section, table, badge, emptyState, runAction, button } from '../ui.js';
import { BACKUP } from './dashboard.js';

export const BACKUPS_Q = 'query Backups { backups { file createdAt sizeBytes leadCount outcome reason } }';

export function mount(root) {
  const list = section({ title: 'Backup files', testid: 'section-backups', load: () => gql(BACKUPS_Q),
    render: (d) => (d.backups.length ? table([
      { label: 'File', cell: (b) => h('code', null, b.file) },
      { label: 'Created', cell: (b) => fmtDate(b.createdAt) },
      { label: 'Size', cell: (b) => fmtBytes(b.sizeBytes), className: 'num' },
      { label: 'Leads', cell: (b) => fmtNum(b.leadCount), className: 'num' },
      { label: 'Outcome', cell: (b) => badge(b.outcome, b.outcome) },
      { label: 'Reason', cell: (b) => b.reason || '—' },
    ], d.backups, { testid: 'backups-table', rowAttrs: (b) => ({ 'data-file': b.file }) }) : emptyState('No backups yet.')) });
  const now = button('Back up now', { class: 'btn btn-primary', 'data-testid': 'btn-backup',
    onclick: () => runAction(now, () => gql(BACKUP).then((d) => d.backupNow),
      (b) => `Backup ${b.outcome}: ${b.file} (${fmtNum(b.leadCount)} leads, ${fmtBytes(b.sizeBytes)})`)
      .then((b) => { if (b) list.reload(true); }) });
  root.appendChild(h('div', { 'data-testid': 'page-backups' },
    h('div', { class: 'page-head' }, h('h1', null, 'Backups'), now),
    h('p', { class: 'muted' }, 'Consistent online copies of the database, checked with an integrity check. ',
      'Restore one with “leadcache restore FILE” while the server is stopped.'),
    list.el));
  list.reload(false);
}
