// Dashboard: cache status, pipeline charts, tables, last sync runs, actions. Updates live.
import { h, replace, debounce, fmtDate, fmtAge, fmtNum, fmtPct, fmtBytes, emptyFilter } from '../util.js';
import { gql, gqlOptional } from '../graphql.js';
import { section, table, badge, emptyState, runAction, button, setLeadsFilter } from '../ui.js';
import { renderFunnel, renderPerDay } from '../charts.js';

const STATUS_Q = `query Dashboard_cacheStatus { cacheStatus {
  totalLeads fresh ageSeconds lastFullPull lastIncrementalPull pendingChanges failedChanges deadChanges
  openConflicts airtableReachable mode requestsToday requestsThisMonth } }`;
// Admin only (backup file names): asked apart, so a read or write token still sees the rest.
const LAST_BACKUP_Q = `query Dashboard_lastBackup { cacheStatus {
  lastBackup { file createdAt sizeBytes leadCount outcome reason } } }`;
// The fields SPEC §6 names for cacheStatus; used when the server does not know the newer ones yet.
const STATUS_MIN_Q = `query Dashboard_cacheStatusMin { cacheStatus {
  totalLeads fresh ageSeconds lastFullPull lastIncrementalPull pendingChanges failedChanges openConflicts
  airtableReachable mode } }`;

/** cacheStatus with every field, or the SPEC §6 subset when the server rejects unknown fields. */
async function loadStatus() {
  try {
    const d = await gql(STATUS_Q);
    const backup = await gqlOptional(LAST_BACKUP_Q);
    d.cacheStatus.lastBackup = backup ? backup.cacheStatus.lastBackup : undefined;
    return d;
  } catch (err) {
    if (err.code !== 'VALIDATION' && !/unknown field|cannot query field/i.test(err.message)) throw err;
    const d = await gql(STATUS_MIN_Q);
    d.partial = err.message;
    return d;
  }
}

const REPORT_Q = `query Dashboard_report { report {
  totalLeads enrichmentRate
  byStatus { status count } funnel { status reached share } bySource { source count }
  createdPerDay { day count } medianDaysInStage { status medianDays }
  campaigns { campaignId name leads sent replied replyRate } } }`;
const RUNS_Q = `query Dashboard_syncRuns { syncRuns(first: 5) {
  id kind trigger startedAt finishedAt outcome phase fetched created updated deleted pushed failed conflicts requests error } }`;

export const REFRESH = `mutation Refresh($force: Boolean) { refreshCache(force: $force) {
  id kind outcome phase fetched created updated deleted requests error } }`;
export const PUSH = `mutation Push { syncPendingChanges { run { id kind outcome phase pushed failed conflicts requests error } } }`;
export const BACKUP = `mutation Backup { backupNow { file createdAt sizeBytes leadCount outcome reason } }`;

export function runSummary(run) {
  const counts = [];
  for (const k of ['fetched', 'created', 'updated', 'deleted', 'pushed', 'failed', 'conflicts']) {
    if (run[k]) counts.push(`${run[k]} ${k}`);
  }
  const main = `${run.kind} ${run.outcome}${run.phase && !run.finishedAt ? ` (${run.phase})` : ''}`;
  return `${main}${counts.length ? `: ${counts.join(', ')}` : ''}${run.error ? ` — ${run.error}` : ''}`;
}

export function syncActionButtons({ onDone } = {}) {
  const refresh = button('Refresh cache', { class: 'btn btn-primary', 'data-testid': 'btn-refresh',
    onclick: () => runAction(refresh, () => gql(REFRESH, { force: false }).then((d) => { onDone && onDone(); return d.refreshCache; }),
      (run) => `Refresh: ${runSummary(run)}`) });
  const push = button('Push now', { 'data-testid': 'btn-push',
    onclick: () => runAction(push, () => gql(PUSH).then((d) => { onDone && onDone(); return d.syncPendingChanges.run; }),
      (run) => `Push: ${runSummary(run)}`) });
  const backup = button('Back up now', { 'data-testid': 'btn-backup',
    onclick: () => runAction(backup, () => gql(BACKUP).then((d) => { onDone && onDone(); return d.backupNow; }),
      (b) => `Backup ${b.outcome}: ${b.file} (${fmtNum(b.leadCount)} leads, ${fmtBytes(b.sizeBytes)})`) });
  return { refresh, push, backup };
}

function stat(label, value, testid, kind, href) {
  return h(href ? 'a' : 'div', { href: href || null, class: ['stat', href ? 'stat-link' : null, ...(kind ? kind.split(' ').map((k) => `stat-${k}`) : [])] },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value', 'data-testid': testid }, value));
}

function renderStatus({ cacheStatus: c, partial }) {
  const b = c.lastBackup;
  const na = (v, f) => (v === undefined ? 'n/a' : f(v));
  return h('div', { class: 'stats' },
    stat('Total leads', fmtNum(c.totalLeads), 'total-leads', null, '#/leads'),
    stat('Pending changes', fmtNum(c.pendingChanges), 'pending-changes', c.pendingChanges ? 'warn' : null, '#/outbox?state=PENDING'),
    stat('Failed changes', fmtNum(c.failedChanges), 'failed-changes', c.failedChanges ? 'bad' : null, '#/outbox?state=FAILED'),
    stat('Dead changes', na(c.deadChanges, fmtNum), 'dead-changes', c.deadChanges ? 'bad' : null, '#/outbox?state=DEAD'),
    stat('Open conflicts', fmtNum(c.openConflicts), 'open-conflicts', c.openConflicts ? 'warn' : null, '#/conflicts'),
    stat('Mode', c.mode, 'cache-mode'),
    stat('Cache', c.fresh ? 'fresh' : 'stale', 'cache-fresh', c.fresh ? 'good' : 'warn'),
    stat('Cache age', fmtAge(c.ageSeconds), 'cache-age'),
    stat('Airtable reachable', c.airtableReachable === null || c.airtableReachable === undefined
      ? 'n/a' : c.airtableReachable ? 'yes' : 'no', 'airtable-reachable',
    c.airtableReachable === false ? 'bad' : c.airtableReachable ? 'good' : null),
    stat('Last backup', b === undefined ? 'n/a' : b ? [h('span', { class: 'nowrap' }, fmtDate(b.createdAt)), ` (${b.outcome})`] : 'never', 'last-backup', b && b.outcome !== 'ok' ? 'warn small' : 'small'),
    stat('Requests today', na(c.requestsToday, fmtNum), 'requests-today'),
    stat('Requests this month', na(c.requestsThisMonth, fmtNum), 'requests-month'),
    partial ? h('p', { class: 'error-text stats-note', role: 'status', 'data-testid': 'cache-status-partial' },
      `Some figures are not available from this server (${partial}).`) : null,
    h('p', { class: 'muted stats-note' },
      `Last full pull: ${fmtDate(c.lastFullPull)} · last incremental pull: ${fmtDate(c.lastIncrementalPull)}`));
}

function renderReport({ report: r }) {
  const medians = new Map((r.medianDaysInStage || []).map((m) => [m.status, m.medianDays]));
  return h('div', { class: 'report' },
    h('div', { class: 'charts' },
      h('figure', { class: 'chart-box', 'data-testid': 'funnel-chart' },
        h('figcaption', null, 'Pipeline funnel (share of all leads that reached each stage)'),
        renderFunnel(r.funnel)),
      h('figure', { class: 'chart-box', 'data-testid': 'per-day-chart' },
        h('figcaption', null, 'Leads created per day (last 30 days)'),
        renderPerDay(r.createdPerDay))),
    h('p', { class: 'muted' }, `${fmtNum(r.totalLeads)} leads · enrichment rate ${fmtPct(r.enrichmentRate)}`),
    h('div', { class: 'grid-2' },
      h('div', null, h('h3', null, 'By status'),
        r.byStatus.length ? table([
          { label: 'Status', cell: (x) => h('a', { href: '#/leads', onclick: () => setStatusFilter(x.status) }, x.status) },
          { label: 'Leads', cell: (x) => fmtNum(x.count), className: 'num' },
          { label: 'Median days in stage', cell: (x) => { const m = medians.get(x.status); return m === null || m === undefined ? '—' : m.toFixed(1); }, className: 'num' },
        ], r.byStatus, { testid: 'by-status-table' }) : emptyState('No leads yet.')),
      h('div', null, h('h3', null, 'By source'),
        r.bySource.length ? table([
          { label: 'Source', cell: (x) => x.source || '(none)' },
          { label: 'Leads', cell: (x) => fmtNum(x.count), className: 'num' },
        ], r.bySource, { testid: 'by-source-table' }) : emptyState('No leads yet.'))),
    h('h3', null, 'Campaigns'),
    r.campaigns.length ? table([
      { label: 'Campaign', cell: (x) => x.name },
      { label: 'Leads', cell: (x) => fmtNum(x.leads), className: 'num' },
      { label: 'Sent', cell: (x) => fmtNum(x.sent), className: 'num' },
      { label: 'Replied', cell: (x) => fmtNum(x.replied), className: 'num' },
      { label: 'Reply rate', cell: (x) => fmtPct(x.replyRate), className: 'num' },
    ], r.campaigns, { testid: 'campaigns-table' }) : emptyState('No campaigns.'));
}

function setStatusFilter(status) {
  // Clicking a status opens the leads page filtered by it (runs before the hash changes).
  setLeadsFilter({ ...emptyFilter(), status: [status] });
}

export function syncRunsTable(runs, testid = 'sync-runs-table') {
  return table([
    { label: 'Started', cell: (r) => fmtDate(r.startedAt) },
    { label: 'Kind', cell: (r) => r.kind },
    { label: 'Trigger', cell: (r) => r.trigger || '—' },
    { label: 'Outcome', cell: (r) => badge(r.outcome + (r.phase && !r.finishedAt ? ` · ${r.phase}` : ''), r.outcome) },
    { label: 'Took', cell: (r) => (r.finishedAt ? fmtAge((new Date(r.finishedAt) - new Date(r.startedAt)) / 1000) : 'running') },
    { label: 'Fetched', cell: (r) => fmtNum(r.fetched), className: 'num' },
    { label: 'Created', cell: (r) => fmtNum(r.created), className: 'num' },
    { label: 'Updated', cell: (r) => fmtNum(r.updated), className: 'num' },
    { label: 'Deleted', cell: (r) => fmtNum(r.deleted), className: 'num' },
    { label: 'Pushed', cell: (r) => fmtNum(r.pushed), className: 'num' },
    { label: 'Failed', cell: (r) => fmtNum(r.failed), className: 'num' },
    { label: 'Conflicts', cell: (r) => fmtNum(r.conflicts), className: 'num' },
    { label: 'Requests', cell: (r) => fmtNum(r.requests), className: 'num' },
    { label: 'Error', cell: (r) => (r.error ? h('span', { class: 'error-text' }, r.error) : '—') },
  ], runs, { testid, rowAttrs: (r) => ({ 'data-run-id': r.id }) });
}

export function mount(root, { bus }) {
  const status = section({ title: 'Cache', testid: 'section-cache-status', load: loadStatus, render: renderStatus });
  const report = section({ title: 'Pipeline', testid: 'section-report', load: () => gql(REPORT_Q), render: renderReport });
  const runs = section({
    title: 'Last sync runs', testid: 'section-sync-runs', load: () => gql(RUNS_Q),
    render: (d) => (d.syncRuns.length ? syncRunsTable(d.syncRuns) : emptyState('No sync runs yet.')),
    actions: h('a', { href: '#/sync' }, 'All runs →'),
  });
  const reloadAll = (quiet) => { status.reload(quiet); report.reload(quiet); runs.reload(quiet); };
  const { refresh, push, backup } = syncActionButtons({ onDone: () => reloadAll(true) });
  const progress = h('p', { class: 'sync-progress muted', 'data-testid': 'sync-progress', role: 'status' });

  root.appendChild(h('div', { 'data-testid': 'page-dashboard' },
    h('div', { class: 'page-head' }, h('h1', null, 'Dashboard'),
      h('div', { class: 'actions' }, refresh, push, backup)),
    progress, status.el, report.el, runs.el));
  reloadAll(false);

  const quietReload = debounce(() => reloadAll(true), 800, 4000);
  const onLead = () => quietReload();
  const onSync = (ev) => {
    const run = ev.detail;
    replace(progress, run.finishedAt ? `Last run: ${runSummary(run)}` : `Sync running: ${runSummary(run)}`);
    quietReload();
  };
  bus.addEventListener('leadChanged', onLead);
  bus.addEventListener('syncProgress', onSync);
  const timer = setInterval(() => status.reload(true), 60000); // keeps the cache age current
  return () => {
    bus.removeEventListener('leadChanged', onLead);
    bus.removeEventListener('syncProgress', onSync);
    quietReload.cancel();
    clearInterval(timer);
  };
}
