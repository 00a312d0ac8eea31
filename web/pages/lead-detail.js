// One lead: every field, extra JSON, sync state, history, enrichments, campaigns; edit status,
// add a note, delete or restore.
import { h, replace, debounce, fmtDate, fmtValue, changeList } from '../util.js';
import { gql } from '../graphql.js';
import { section, table, badge, yesNo, emptyState, errorBox, runAction, toast } from '../ui.js';
import { loadStatuses } from './lead-filters.js';

const LEAD_FIELDS = `id airtableId fullName email company title linkedinUrl website phone location industry
  companySize status source score verified enriched needsEnrichment scrapedAt enrichedAt contactedAt
  createdAt updatedAt deletedAt version extra remoteModifiedAt syncedAt syncState pendingFields deletePushedAfter`;
export const LEAD_Q = `query Lead($id: ID!) { lead(id: $id) { ${LEAD_FIELDS} } }`;
export const HISTORY_Q = `query LeadHistory($id: ID!) { lead(id: $id) { id
  events(first: 100) { id kind actor changes message at } } }`;
export const ENRICH_Q = `query LeadEnrichments($id: ID!) { lead(id: $id) { id
  enrichments { id provider data confidence at } } }`;
export const CAMPAIGNS_Q = `query LeadCampaigns($id: ID!) { lead(id: $id) { id
  campaigns { campaignId campaignName status subject sentAt repliedAt } } }`;
const UPDATE_M = `mutation UpdateLead($id: ID!, $patch: LeadPatch!, $expectedVersion: Int) {
  updateLead(id: $id, patch: $patch, expectedVersion: $expectedVersion) { id status version syncState } }`;
const NOTE_M = 'mutation AddNote($leadId: ID!, $text: String!) { addNote(leadId: $leadId, text: $text) { id kind at } }';
const DELETE_M = 'mutation DeleteLead($id: ID!) { deleteLead(id: $id) { id deletedAt } }';
const RESTORE_M = 'mutation RestoreLead($id: ID!) { restoreLead(id: $id) { id deletedAt events(first: 1) { message } } }';

const link = (url) => {
  if (!url) return '—';
  const safe = /^https?:\/\//i.test(url) ? url : null; // never turn javascript: or data: into a link
  return safe ? h('a', { href: safe, target: '_blank', rel: 'noopener noreferrer' }, url) : url;
};
const mail = (v) => (v ? h('a', { href: `mailto:${v}` }, v) : '—');
const text = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

const FIELD_ROWS = [
  ['Full name', (l) => text(l.fullName)], ['Email', (l) => mail(l.email)], ['Company', (l) => text(l.company)],
  ['Title', (l) => text(l.title)], ['LinkedIn', (l) => link(l.linkedinUrl)], ['Website', (l) => link(l.website)],
  ['Phone', (l) => text(l.phone)], ['Location', (l) => text(l.location)], ['Industry', (l) => text(l.industry)],
  ['Company size', (l) => text(l.companySize)], ['Status', (l) => badge(l.status, 'status')], ['Source', (l) => text(l.source)],
  ['Score', (l) => text(l.score)], ['Verified', (l) => yesNo(l.verified)], ['Enriched', (l) => yesNo(l.enriched)],
  ['Needs enrichment', (l) => yesNo(l.needsEnrichment)], ['Scraped at', (l) => fmtDate(l.scrapedAt)],
  ['Enriched at', (l) => fmtDate(l.enrichedAt)], ['Contacted at', (l) => fmtDate(l.contactedAt)],
  ['Created at', (l) => fmtDate(l.createdAt)], ['Updated at', (l) => fmtDate(l.updatedAt)],
  ['Deleted at', (l) => fmtDate(l.deletedAt)], ['Local id', (l) => h('code', null, l.id)],
  ['Airtable id', (l) => (l.airtableId ? h('code', null, l.airtableId) : 'not pushed yet')], ['Version', (l) => text(l.version)],
];

function dl(rows, lead, testid) {
  return h('dl', { class: 'fields', 'data-testid': testid }, rows.map(([label, fn]) => [h('dt', null, label), h('dd', null, fn(lead))]));
}

function jsonBlock(value, testid) {
  let v = value;
  if (typeof v === 'string') { try { v = JSON.parse(v); } catch { /* show as is */ } }
  const empty = v === null || v === undefined || (typeof v === 'object' && Object.keys(v).length === 0);
  if (empty) return h('p', { class: 'muted', 'data-testid': testid }, 'None.');
  return h('pre', { class: 'json', 'data-testid': testid }, JSON.stringify(v, null, 2));
}

export function renderChanges(changes) {
  const list = changeList(changes);
  if (!list.length) return null;
  return h('ul', { class: 'changes' }, list.map((c) => h('li', null,
    h('span', { class: 'change-field' }, c.field), ': ',
    c.old === undefined ? null : [h('del', { class: 'change-old' }, fmtValue(c.old)), ' → '],
    h('ins', { class: 'change-new' }, fmtValue(c.new)))));
}

function renderHistory(events) {
  if (!events.length) return emptyState('No history yet.');
  return h('ol', { class: 'timeline', 'data-testid': 'lead-history-list' }, events.map((e) => h('li', { 'data-event-kind': e.kind, 'data-event-id': e.id },
    h('div', { class: 'timeline-head' }, badge(e.kind, e.kind), ' ', h('span', { class: 'muted' }, `${fmtDate(e.at)} · ${e.actor}`)),
    e.message ? h('p', { class: 'event-message' }, e.message) : null,
    renderChanges(e.changes))));
}

export function mount(root, { id, bus, navigate }) {
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Lead'), h('a', { href: '#/leads' }, '← All leads'));
  const main = h('div', { 'data-testid': 'lead-detail', 'data-lead-id': id }, h('p', { class: 'loading' }, 'Loading…'));
  const history = section({ title: 'History', testid: 'lead-history', load: () => gql(HISTORY_Q, { id }),
    render: (d) => (d.lead ? renderHistory(d.lead.events) : emptyState('Lead not found.')) });
  const enrich = section({ title: 'Enrichments', testid: 'lead-enrichments', load: () => gql(ENRICH_Q, { id }),
    render: (d) => (d.lead && d.lead.enrichments.length ? d.lead.enrichments.map((e) => h('div', { class: 'enrichment' },
      h('div', null, h('strong', null, e.provider), ' ', h('span', { class: 'muted' },
        `${fmtDate(e.at)}${e.confidence === null || e.confidence === undefined ? '' : ` · confidence ${e.confidence}`}`)),
      jsonBlock(e.data))) : emptyState('No enrichments.')) });
  const campaigns = section({ title: 'Campaigns', testid: 'lead-campaigns', load: () => gql(CAMPAIGNS_Q, { id }),
    render: (d) => (d.lead && d.lead.campaigns.length ? table([
      { label: 'Campaign', cell: (c) => c.campaignName },
      { label: 'Status', cell: (c) => badge(c.status, c.status) },
      { label: 'Subject', cell: (c) => c.subject || '—' },
      { label: 'Sent', cell: (c) => fmtDate(c.sentAt) },
      { label: 'Replied', cell: (c) => fmtDate(c.repliedAt) },
    ], d.lead.campaigns) : emptyState('Not in any campaign.')) });

  root.appendChild(h('div', { 'data-testid': 'page-lead' }, head, main,
    h('div', { class: 'grid-2' }, history.el, h('div', null, enrich.el, campaigns.el))));

  let lead = null;
  let seq = 0;

  function actions(l) {
    const select = h('select', { id: 'status-select', 'data-testid': 'status-select' }, h('option', { value: l.status, selected: true }, l.status));
    loadStatuses().then((r) => {
      const all = r.list.includes(l.status) ? r.list : [l.status, ...r.list];
      const want = select.dataset.picked || l.status;
      replace(select, all.map((st) => h('option', { value: st, selected: st === want }, st)));
    });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'btn-save-status' }, 'Save status');
    const statusForm = h('form', { class: 'inline-form', onsubmit: (e) => {
      e.preventDefault();
      if (select.value === l.status) { toast('Status unchanged', 'info'); return; }
      runAction(save, async () => {
        try {
          return await gql(UPDATE_M, { id: l.id, patch: { status: select.value }, expectedVersion: l.version });
        } catch (err) {
          if (err.code === 'CONFLICT') { reloadAll(); err.message = `The lead changed meanwhile and was reloaded; check and try again. (${err.message})`; }
          throw err;
        }
      }, (d) => `Status set to ${d.updateLead.status}`).then((d) => { if (d) reloadAll(); });
    } }, h('label', { for: 'status-select' }, 'Status'), select, save);

    const note = h('textarea', { id: 'note-text', 'data-testid': 'note-text', rows: 2, placeholder: 'Write a note…' });
    const addNote = h('button', { type: 'submit', class: 'btn', 'data-testid': 'btn-add-note' }, 'Add note');
    const noteForm = h('form', { class: 'inline-form', onsubmit: (e) => {
      e.preventDefault();
      const t = note.value.trim();
      if (!t) { note.focus(); return; }
      runAction(addNote, () => gql(NOTE_M, { leadId: l.id, text: t }), 'Note added').then((d) => {
        if (d) { note.value = ''; history.reload(true); }
      });
    } }, h('label', { for: 'note-text' }, 'Note'), note, addNote);

    const del = l.deletedAt
      ? h('button', { type: 'button', class: 'btn', 'data-testid': 'btn-restore', onclick: (e) => runAction(e.currentTarget,
        () => gql(RESTORE_M, { id: l.id }), (d) => `Lead restored: ${(d && d.restoreLead.events[0] && d.restoreLead.events[0].message) || 'done'}`).then((d) => { if (d) reloadAll(); }) }, 'Restore')
      : h('button', { type: 'button', class: 'btn btn-danger', 'data-testid': 'btn-delete', onclick: (e) => {
        const btn = e.currentTarget;
        if (!window.confirm(`Delete “${l.fullName}”? Its Airtable record is deleted after a grace period (SYNC_DELETE_GRACE, 10 minutes by default); restoring it before then undoes the delete everywhere, restoring it later creates a new Airtable record.`)) return;
        runAction(btn, () => gql(DELETE_M, { id: l.id }), 'Lead deleted').then((d) => { if (d) reloadAll(); });
      } }, 'Delete');
    return h('div', { class: 'card lead-actions' }, h('h2', null, 'Actions'), statusForm, noteForm, h('div', { class: 'actions' }, del));
  }

  function renderLead(l) {
    const pending = l.pendingFields || [];
    return [
      l.deletedAt ? h('div', { class: 'banner banner-warn', role: 'status', 'data-testid': 'lead-deleted-banner' },
        `This lead was deleted on ${fmtDate(l.deletedAt)}. ` + (l.deletePushedAfter
          ? `Its Airtable record will be deleted after ${fmtDate(l.deletePushedAfter)}; restoring it before then undoes the delete, and Airtable never sees it.`
          : (l.syncedAt && !l.airtableId ? 'Its Airtable record was deleted: restoring it creates a new one.' : ''))) : null,
      h('div', { class: 'grid-2' },
        h('section', { class: 'card' }, h('h2', null, 'Fields'), dl(FIELD_ROWS, l, 'lead-fields')),
        h('div', null,
          h('section', { class: 'card', 'data-testid': 'lead-sync' }, h('h2', null, 'Sync'),
            h('p', null, badge(l.syncState.toLowerCase(), l.syncState), ' ',
              l.syncState === 'CONFLICT' ? h('a', { href: '#/conflicts' }, 'See conflicts') : null),
            h('dl', { class: 'fields' },
              h('dt', null, 'Pending fields'),
              h('dd', { 'data-testid': 'lead-pending-fields' }, pending.length ? pending.join(', ') : 'none'),
              h('dt', null, 'Synced at'), h('dd', null, fmtDate(l.syncedAt)),
              h('dt', null, 'Airtable modified'), h('dd', null, fmtDate(l.remoteModifiedAt)))),
          actions(l),
          h('section', { class: 'card' }, h('h2', null, 'Extra fields (Airtable, unmapped)'), jsonBlock(l.extra, 'lead-extra')))),
    ];
  }

  async function loadLead(quiet) {
    const my = ++seq;
    if (!quiet) main.setAttribute('aria-busy', 'true');
    try {
      let d;
      try {
        d = await gql(LEAD_Q, { id });
      } catch (err) {
        if (err.code !== 'NOT_FOUND') throw err;
        d = { lead: null };
      }
      if (my !== seq) return;
      const before = lead;
      lead = d.lead;
      if (!lead) {
        replace(main, h('div', { class: 'card' }, h('p', { class: 'empty', 'data-testid': 'empty-state' }, `No lead with id “${id}”.`),
          h('a', { href: '#/leads' }, 'Back to the leads')));
        return;
      }
      replace(head.querySelector('h1'), lead.fullName || '(no name)',
        lead.company ? h('span', { class: 'muted h1-sub' }, ` · ${lead.company}`) : null);
      document.title = `${lead.fullName} · leadcache`;
      // Keep the note being typed and a status picked but not saved across live reloads.
      const typing = main.querySelector('#note-text');
      const draft = typing ? typing.value : '';
      const picking = main.querySelector('#status-select');
      const picked = picking && before && picking.value !== before.status && before.status === lead.status ? picking.value : null;
      replace(main, renderLead(lead));
      if (draft) main.querySelector('#note-text').value = draft;
      if (picked) main.querySelector('#status-select').dataset.picked = picked;
    } catch (err) {
      if (my !== seq) return;
      replace(main, errorBox(err, () => loadLead(false)));
    } finally {
      if (my === seq) main.setAttribute('aria-busy', 'false');
    }
  }

  function reloadAll(quiet = true) { loadLead(quiet); history.reload(quiet); enrich.reload(quiet); campaigns.reload(quiet); }
  reloadAll(false);

  const liveReload = debounce(() => { reloadAll(true); }, 600, 3000);
  const onLead = (ev) => {
    const c = ev.detail;
    if (c && c.lead && (c.lead.id === id || (lead && c.lead.id === lead.id))) {
      liveReload();
      if (c.actor && c.kind) toast(`This lead was ${c.kind.toLowerCase()} by ${c.actor}`, 'info', 3000);
    }
  };
  bus.addEventListener('leadChanged', onLead);
  void navigate;
  return () => { bus.removeEventListener('leadChanged', onLead); liveReload.cancel(); };
}
