// Sync runs: the table of recent runs, updated live from syncProgress; refresh and push buttons.
import { h, debounce } from '../util.js';
import { gql } from '../graphql.js';
import { section, emptyState, runAction, button } from '../ui.js';
import { syncActionButtons, syncRunsTable, runSummary, REFRESH } from './dashboard.js';

export const RUNS_Q = `query SyncRuns($first: Int) { syncRuns(first: $first) {
  id kind trigger startedAt finishedAt outcome phase fetched created updated deleted pushed failed conflicts
  requests retries error } }`;

export function mount(root, { bus }) {
  const runs = section({ title: 'Recent runs', testid: 'section-sync-runs', load: () => gql(RUNS_Q, { first: 50 }),
    render: (d) => (d.syncRuns.length ? syncRunsTable(d.syncRuns) : emptyState('No sync runs yet.')) });
  const { refresh, push } = syncActionButtons({ onDone: () => runs.reload(true) });
  const force = button('Full refresh', { 'data-testid': 'btn-force-refresh', title: 'Pull every record again (costs one request per 100 leads)',
    onclick: () => runAction(force, () => gql(REFRESH, { force: true }).then((d) => { runs.reload(true); return d.refreshCache; }),
      (run) => `Full refresh: ${runSummary(run)}`) });
  const progress = h('p', { class: 'sync-progress muted', 'data-testid': 'sync-progress', role: 'status' });

  root.appendChild(h('div', { 'data-testid': 'page-sync' },
    h('div', { class: 'page-head' }, h('h1', null, 'Sync runs'), h('div', { class: 'actions' }, refresh, force, push)),
    progress, runs.el));
  runs.reload(false);

  const reload = debounce(() => runs.reload(true), 500, 2000);
  const onSync = (ev) => {
    const run = ev.detail;
    progress.textContent = run.finishedAt ? `Last run: ${runSummary(run)}` : `Running: ${runSummary(run)}`;
    reload();
  };
  bus.addEventListener('syncProgress', onSync);
  return () => { bus.removeEventListener('syncProgress', onSync); reload.cancel(); };
}
