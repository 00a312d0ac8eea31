// leadcache admin page — entry point: shell, hash router, token dialog, live updates.
//
// Routes (hash):
//   #/dashboard  #/leads  #/leads/<id>  #/conflicts  #/sync  #/outbox  #/backups  #/export
//
// Stable hooks for browser tests (data-testid unless marked #id):
//   shell        nav links "nav-<route>", "live-indicator" (data-state=live|connecting|offline),
//                "btn-token", "token-dialog" (#token-dialog) with "token-input", "token-save",
//                "token-cancel", "token-clear"; toasts "toast-ok" / "toast-error" / "toast-info";
//                #page (data-route=<route>); any failing section shows "section-error";
//                empty lists show "empty-state".
//   dashboard    "page-dashboard", "total-leads" (the stat cards link to their pages), "pending-changes", "failed-changes", "dead-changes",
//                "open-conflicts", "cache-mode", "cache-fresh", "cache-age", "airtable-reachable",
//                "last-backup", "requests-today", "requests-month", "funnel-chart" (svg inside),
//                "per-day-chart", "by-status-table", "by-source-table", "campaigns-table",
//                "sync-runs-table", "btn-refresh", "btn-push", "btn-backup", "sync-progress".
//   leads        "page-leads", "lead-search", "filter-status", "filter-source", "filter-company",
//                "filter-sync-state", "filter-enriched", "filter-include-deleted", "filter-clear",
//                "leads-table" (rows data-lead-id=<id>, class "row-changed" after a live change),
//                sort headers "sort-<FIELD>" (aria-sort), "leads-total", "page-prev", "page-next",
//                "page-number" ("Page N of M"), "page-size", "export-csv", "export-json".
//   lead detail  "lead-detail" (data-lead-id), "lead-fields", "lead-extra", "lead-sync",
//                "lead-pending-fields", "lead-history" (section; events are li[data-event-kind]
//                [data-event-id] in "lead-history-list"), "lead-enrichments",
//                "lead-campaigns", "status-select", "btn-save-status", "note-text", "btn-add-note",
//                "btn-delete", "btn-restore", "lead-deleted-banner".
//   conflicts    "page-conflicts", "conflicts-list", "conflict-<id>" with "keep-local" / "keep-remote"
//                and "value-base" / "value-local" / "value-remote", "toggle-resolved",
//                "resolved-conflicts-table".
//   sync         "page-sync", "sync-runs-table" (rows data-run-id), "btn-refresh", "btn-force-refresh",
//                "btn-push".
//   outbox       "page-outbox", "outbox-state", "outbox-table" (rows data-lead-id),
//                "retry-<leadId>", "btn-retry-all".
//   backups      "page-backups", "backups-table", "btn-backup".
//   export       "page-export", "export-filter-summary", "export-count", "export-csv", "export-json"
//                (plus the same filter controls as the leads page).
import { h, replace, parseHash } from './util.js';
import { onTokenNeeded, setToken, getToken, LiveClient } from './graphql.js';
import { toast } from './ui.js';
import * as dashboard from './pages/dashboard.js';
import * as leads from './pages/leads.js';
import * as leadDetail from './pages/lead-detail.js';
import * as conflicts from './pages/conflicts.js';
import * as syncRuns from './pages/sync.js';
import * as outbox from './pages/outbox.js';
import * as backups from './pages/backups.js';
import * as exportPage from './pages/export.js';

const ROUTES = {
  dashboard: { title: 'Dashboard', page: dashboard },
  leads: { title: 'Leads', page: leads },
  conflicts: { title: 'Conflicts', page: conflicts },
  sync: { title: 'Sync runs', page: syncRuns },
  outbox: { title: 'Outbox', page: outbox },
  backups: { title: 'Backups', page: backups },
  export: { title: 'Export', page: exportPage },
};

/** Live events for the pages: 'leadChanged' (detail: LeadChange), 'syncProgress' (detail: SyncRun). */
export const bus = new EventTarget();

const LEAD_CHANGED = `subscription { leadChanged { kind changedFields actor
  lead { id fullName company status syncState updatedAt deletedAt } } }`;
const SYNC_PROGRESS = `subscription { syncProgress { id kind trigger startedAt finishedAt outcome phase
  fetched created updated deleted pushed failed conflicts requests retries error } }`;

// ---------- token dialog ----------

function tokenDialog() {
  const dialog = document.getElementById('token-dialog');
  const input = document.getElementById('token-input');
  const reasonEl = document.getElementById('token-reason');
  let resolveAsk = null;

  function open(reason) {
    reasonEl.textContent = reason === 'FORBIDDEN'
      ? 'Your token does not allow this action. Enter a token with a higher role (write or admin).'
      : reason === 'manual'
        ? 'Enter the API token to use for this browser. It is kept in this browser’s local storage.'
        : 'The server needs an API token. Enter one created with “leadcache token create”.';
    input.value = '';
    if (typeof dialog.showModal === 'function') { if (!dialog.open) dialog.showModal(); } else dialog.setAttribute('open', '');
    input.focus();
  }
  function close(result) {
    if (dialog.open && typeof dialog.close === 'function') dialog.close(); else dialog.removeAttribute('open');
    const r = resolveAsk;
    resolveAsk = null;
    if (r) r(result);
  }
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    if (!value) { input.focus(); return; }
    setToken(value);
    document.getElementById('btn-token').classList.add('has-token');
    toast('Token saved', 'ok');
    const manual = !resolveAsk;
    close(true);
    live.restart();
    if (manual) route(); // nothing was waiting: reload the page's data with the new token
  });
  document.getElementById('token-cancel').addEventListener('click', () => close(false));
  document.getElementById('token-clear').addEventListener('click', () => {
    setToken('');
    document.getElementById('btn-token').classList.remove('has-token');
    toast('Token removed from this browser', 'info');
    close(false);
    live.restart();
  });
  dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); close(false); });

  onTokenNeeded((reason) => new Promise((resolve) => { resolveAsk = resolve; open(reason); }));
  document.getElementById('btn-token').addEventListener('click', () => {
    resolveAsk = null;
    open('manual');
  });
}

// ---------- live connection ----------

function setLiveState(state, detail) {
  const el = document.getElementById('live-indicator');
  if (!el) return;
  el.dataset.state = state;
  const text = { live: 'Live', connecting: 'Connecting…', offline: 'Offline' }[state] || state;
  el.querySelector('.live-text').textContent = text;
  el.title = state === 'live' ? 'Receiving live updates' : `No live updates${detail ? `: ${detail}` : ''}`;
}

const live = new LiveClient({ onStatus: setLiveState });

// A refused subscription (e.g. not implemented yet, or not allowed) leaves the pages working
// without live updates; the indicator's tooltip says which one failed.
function subscriptionError(name) {
  return (errors) => {
    const msg = Array.isArray(errors) ? errors.map((e) => e && e.message).join('; ') : String(errors);
    console.warn(`subscription ${name} failed: ${msg}`);
    const el = document.getElementById('live-indicator');
    if (el) { el.dataset.partial = 'true'; el.title = `Live updates incomplete: ${name} failed (${msg})`; }
  };
}

function startLive() {
  live.subscribe(LEAD_CHANGED, {}, (data) => {
    if (data && data.leadChanged) bus.dispatchEvent(new CustomEvent('leadChanged', { detail: data.leadChanged }));
  }, subscriptionError('leadChanged'));
  live.subscribe(SYNC_PROGRESS, {}, (data) => {
    if (data && data.syncProgress) bus.dispatchEvent(new CustomEvent('syncProgress', { detail: data.syncProgress }));
  }, subscriptionError('syncProgress'));
  live.start();
}

// ---------- router ----------

let cleanup = null;

function route() {
  const { path, query } = parseHash(location.hash);
  const name = path[0] || 'dashboard';
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    history.replaceState(null, '', '#/dashboard');
  }
  if (typeof cleanup === 'function') { try { cleanup(); } catch (e) { console.error(e); } }
  cleanup = null;
  const root = document.getElementById('page');
  replace(root);
  root.dataset.route = name;

  for (const a of document.querySelectorAll('nav.main-nav a')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.body.classList.remove('nav-open');
  document.getElementById('nav-toggle').setAttribute('aria-expanded', 'false');

  const entry = ROUTES[name];
  if (!entry) {
    document.title = 'Not found · leadcache';
    root.appendChild(h('section', { class: 'card' }, h('h1', null, 'Page not found'),
      h('p', null, 'There is no page at this address. ', h('a', { href: '#/dashboard' }, 'Go to the dashboard'), '.')));
    return;
  }
  const ctx = { bus, query, navigate: (hash) => { location.hash = hash; } };
  let page = entry.page;
  let title = entry.title;
  if (name === 'leads' && path[1]) { page = leadDetail; title = 'Lead'; ctx.id = path[1]; }
  document.title = `${title} · leadcache`;
  try {
    cleanup = page.mount(root, ctx);
  } catch (err) {
    console.error(err);
    root.appendChild(h('div', { class: 'error-box', role: 'alert' }, `This page failed to start: ${err.message}`));
  }
  // Move focus to the page heading for keyboard and screen-reader users (not on first load).
  const heading = root.querySelector('h1');
  if (heading && routedOnce) { heading.setAttribute('tabindex', '-1'); heading.focus({ preventScroll: false }); }
  routedOnce = true;
}
let routedOnce = false;

function init() {
  tokenDialog();
  document.getElementById('nav-toggle').addEventListener('click', () => {
    const open = document.body.classList.toggle('nav-open');
    document.getElementById('nav-toggle').setAttribute('aria-expanded', String(open));
  });
  window.addEventListener('hashchange', route);
  route();
  startLive();
  if (getToken()) document.getElementById('btn-token').classList.add('has-token');
}

init();
