// Conflicts: open ones side by side (base / local / remote) with Keep local / Keep remote;
// resolved ones below behind a toggle.
import { h, debounce, fmtDate } from '../util.js';
import { gql } from '../graphql.js';
import { section, table, badge, emptyState, runAction } from '../ui.js';

export const CONFLICTS_Q = `query Conflicts($open: Boolean) { conflicts(open: $open) {
  id leadId field localValue remoteValue baseValue resolution open createdAt resolvedAt resolvedBy
  lead { id fullName company } } }`;
const RESOLVE_M = `mutation Resolve($id: ID!, $keep: ConflictSide!) { resolveConflict(id: $id, keep: $keep) {
  id open resolution resolvedAt resolvedBy } }`;

function valueBox(label, value, testid, extraClass) {
  const shown = value === null || value === undefined ? h('span', { class: 'muted' }, 'empty')
    : typeof value === 'string' ? value : JSON.stringify(value, null, 2);
  return h('div', { class: ['conflict-value', extraClass] },
    h('div', { class: 'conflict-value-label' }, label),
    h('pre', { 'data-testid': testid }, shown));
}

function leadLink(c) {
  const name = c.lead ? c.lead.fullName : c.leadId;
  return h('a', { href: `#/leads/${encodeURIComponent(c.leadId)}`, 'data-testid': 'conflict-lead' }, name || c.leadId);
}

const same = (a, b) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

export function mount(root, { bus }) {
  let showResolved = false;

  const resolve = (c, keep, btn) => runAction(btn, () => gql(RESOLVE_M, { id: c.id, keep }),
    `Conflict on ${c.field} resolved: kept ${keep === 'LOCAL' ? 'the local value (a push is queued)' : 'Airtable’s value'}`)
    .then((d) => { if (d) { open.reload(true); if (showResolved) resolved.reload(true); } });

  function renderOpen(d) {
    const list = d.conflicts;
    if (!list.length) return emptyState('No open conflicts. Every field agrees with Airtable or merged cleanly.');
    return h('div', { class: 'conflicts', 'data-testid': 'conflicts-list' }, list.map((c) => {
      const keepLocal = h('button', { type: 'button', class: 'btn', 'data-testid': 'keep-local',
        onclick: () => resolve(c, 'LOCAL', keepLocal) }, 'Keep local');
      const keepRemote = h('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'keep-remote',
        onclick: () => resolve(c, 'REMOTE', keepRemote) }, 'Keep remote');
      return h('article', { class: 'conflict', 'data-testid': `conflict-${c.id}`, 'data-conflict-id': c.id, 'aria-label': `Conflict on ${c.field}` },
        h('header', { class: 'conflict-head' },
          h('h3', null, leadLink(c), c.lead && c.lead.company ? h('span', { class: 'muted' }, ` · ${c.lead.company}`) : null),
          h('span', null, 'field ', h('code', null, c.field), ' · ', fmtDate(c.createdAt), ' · policy kept: ', badge(c.resolution, c.resolution))),
        h('div', { class: 'conflict-values' },
          valueBox('Base (last synced)', c.baseValue, 'value-base'),
          valueBox('Local', c.localValue, 'value-local', same(c.localValue, c.baseValue) ? null : 'changed'),
          valueBox('Remote (Airtable)', c.remoteValue, 'value-remote', same(c.remoteValue, c.baseValue) ? null : 'changed')),
        h('div', { class: 'actions' }, keepLocal, keepRemote));
    }));
  }

  const open = section({ title: 'Open conflicts', testid: 'section-open-conflicts',
    load: () => gql(CONFLICTS_Q, { open: true }), render: renderOpen });
  const resolved = section({ title: 'Resolved conflicts', testid: 'section-resolved-conflicts',
    load: () => gql(CONFLICTS_Q, { open: false }),
    render: (d) => (d.conflicts.length ? table([
      { label: 'Lead', cell: leadLink },
      { label: 'Field', cell: (c) => h('code', null, c.field) },
      { label: 'Base', cell: (c) => JSON.stringify(c.baseValue ?? null) },
      { label: 'Local', cell: (c) => JSON.stringify(c.localValue ?? null) },
      { label: 'Remote', cell: (c) => JSON.stringify(c.remoteValue ?? null) },
      { label: 'Kept', cell: (c) => badge(c.resolution, c.resolution) },
      { label: 'Resolved', cell: (c) => fmtDate(c.resolvedAt) },
      { label: 'By', cell: (c) => c.resolvedBy || '—' },
    ], d.conflicts, { testid: 'resolved-conflicts-table', rowAttrs: (c) => ({ 'data-conflict-id': c.id }) }) : emptyState('No resolved conflicts.')) });
  resolved.el.hidden = true;

  const toggle = h('button', { type: 'button', class: 'btn btn-ghost', 'data-testid': 'toggle-resolved', 'aria-expanded': 'false',
    onclick: () => {
      showResolved = !showResolved;
      resolved.el.hidden = !showResolved;
      toggle.setAttribute('aria-expanded', String(showResolved));
      toggle.textContent = showResolved ? 'Hide resolved' : 'Show resolved';
      if (showResolved) resolved.reload(false);
    } }, 'Show resolved');

  root.appendChild(h('div', { 'data-testid': 'page-conflicts' },
    h('div', { class: 'page-head' }, h('h1', null, 'Conflicts'), toggle),
    h('p', { class: 'muted' }, 'A conflict is a field changed both here and in Airtable since the last sync. ',
      'The configured policy already picked a side; keep local to override it (queues a push).'),
    open.el, resolved.el));
  open.reload(false);

  const refresh = debounce(() => { open.reload(true); if (showResolved) resolved.reload(true); }, 800, 4000);
  const onSync = (ev) => { if (ev.detail && (ev.detail.finishedAt || ev.detail.conflicts)) refresh(); };
  const onLead = (ev) => { if (ev.detail && ev.detail.lead && ev.detail.lead.syncState === 'CONFLICT') refresh(); };
  bus.addEventListener('syncProgress', onSync);
  bus.addEventListener('leadChanged', onLead);
  return () => { bus.removeEventListener('syncProgress', onSync); bus.removeEventListener('leadChanged', onLead); refresh.cancel(); };
}
