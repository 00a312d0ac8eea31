// A stand-in for the leadcache server, for trying the admin page without Rust:
//   node web/tests/mock-server.mjs [port]        (MOCK_TOKEN=secret to require a token,
//                                                  MOCK_FAIL=report,backups to make those queries fail)
// Serves web/ at /, answers POST /graphql by operation name with canned data (it does not parse
// GraphQL), speaks enough graphql-transport-ws on /graphql/ws to push live events every few
// seconds, and serves /export/leads.{csv,json}. Not served by leadcache; test tooling only.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PORT = Number(process.argv[2] || 8089);
const TOKEN = process.env.MOCK_TOKEN || '';
const FAIL = new Set((process.env.MOCK_FAIL || '').split(',').filter(Boolean));
const STATUSES = ['new', 'scraped', 'enriched', 'verified', 'contacted', 'replied', 'qualified', 'won', 'lost'];
const SYNC = ['SYNCED', 'SYNCED', 'SYNCED', 'PENDING', 'CONFLICT', 'ERROR', 'LOCAL'];
const now = Date.now();
const iso = (ms) => new Date(ms).toISOString();

const first = ['Ada', 'Grace', 'Linus', 'Margaret', 'Ken', 'Barbara', 'Edsger', 'Frances', 'Alan', 'Radia'];
const last = ['Lovelace', 'Hopper', 'Torvalds', 'Hamilton', 'Thompson', 'Liskov', 'Dijkstra', 'Allen', 'Kay', 'Perlman'];
const companies = ['Acme Inc', 'Globex GmbH', 'Initech', 'Umbrella Ltd', '<script>alert(1)</script> Corp', 'Hooli'];
const leads = Array.from({ length: 137 }, (_, i) => ({
  id: `lead-${String(i + 1).padStart(4, '0')}`,
  airtableId: i % 7 === 0 ? null : `rec${String(100000 + i)}`,
  fullName: `${first[i % 10]} ${last[(i * 3) % 10]}`,
  email: `user${i}@example.com`, company: companies[i % companies.length], title: i % 2 ? 'CTO' : 'Head of Sales',
  linkedinUrl: `https://www.linkedin.com/in/user${i}`, website: i % 5 === 0 ? 'javascript:alert(1)' : 'https://example.com',
  phone: '+1 555 0100', location: 'Berlin', industry: 'Software', companySize: '11-50',
  status: STATUSES[i % STATUSES.length], source: ['linkedin', 'apollo', 'manual', null][i % 4],
  score: i % 3 ? Math.round((i * 37) % 100) : null, verified: i % 2 === 0, enriched: i % 3 !== 0, needsEnrichment: i % 3 === 0,
  scrapedAt: iso(now - i * 3600e3), enrichedAt: null, contactedAt: null,
  createdAt: iso(now - i * 5 * 3600e3), updatedAt: iso(now - i * 3600e3), deletedAt: i === 5 ? iso(now) : null,
  version: 1 + (i % 4), extra: i % 2 ? { 'Lead Notes': 'likes <b>bold</b>', Tags: ['a', 'b'] } : {},
  remoteModifiedAt: iso(now - i * 3600e3), syncedAt: iso(now - i * 3000e3), syncState: SYNC[i % SYNC.length],
  pendingFields: i % 7 === 3 ? ['status', 'score'] : [],
}));
const events = (l) => [
  { id: `${l.id}-e3`, leadId: l.id, kind: 'note', actor: 'admin', changes: {}, message: 'Called, <i>no answer</i>.', at: iso(now - 1000) },
  { id: `${l.id}-e2`, leadId: l.id, kind: 'status_changed', actor: 'agent-1', changes: { status: ['new', l.status] }, message: null, at: iso(now - 5e6) },
  { id: `${l.id}-e1`, leadId: l.id, kind: 'created', actor: 'airtable', changes: { fullName: [null, l.fullName], score: [null, l.score] }, message: null, at: iso(now - 9e6) },
];
let conflicts = [1, 2, 3].map((n) => ({
  id: `c${n}`, leadId: leads[n * 4].id, field: n === 2 ? 'extra' : 'status', localValue: n === 2 ? { Tags: ['x'] } : 'contacted',
  remoteValue: n === 2 ? { Tags: ['y'] } : 'replied', baseValue: n === 2 ? null : 'enriched', resolution: 'remote', open: n !== 3,
  createdAt: iso(now - n * 6e5), resolvedAt: n === 3 ? iso(now) : null, resolvedBy: n === 3 ? 'admin' : null,
}));
const runs = Array.from({ length: 8 }, (_, i) => ({
  id: `run${8 - i}`, kind: ['push', 'incremental_pull', 'full_pull', 'sweep'][i % 4], trigger: i % 2 ? 'cron' : 'manual',
  startedAt: iso(now - i * 36e5), finishedAt: iso(now - i * 36e5 + 2500), outcome: i === 2 ? 'failed' : 'ok', phase: null,
  fetched: i * 10, created: i, updated: i * 2, deleted: 0, pushed: i % 4 === 0 ? 3 : 0, failed: i === 2 ? 1 : 0,
  conflicts: i === 1 ? 2 : 0, requests: i + 1, retries: 0, error: i === 2 ? 'Airtable answered 503 <html>' : null,
}));
let outbox = leads.filter((l) => l.syncState !== 'SYNCED' && l.syncState !== 'CONFLICT').slice(0, 9).map((l, i) => ({
  leadId: l.id, operation: l.airtableId ? 'update' : 'create', fields: ['status', 'score'], attempts: i,
  nextAttemptAt: iso(now + i * 6e4), lastError: i % 3 ? 'INVALID_VALUE_FOR_COLUMN: Field "Score" cannot accept "abc"' : null,
  state: ['PENDING', 'FAILED', 'DEAD'][i % 3], createdAt: iso(now - i * 6e4),
}));
const backups = [1, 2].map((n) => ({ file: `leads-2026112${n}T030000Z.db`, createdAt: iso(now - n * 864e5), sizeBytes: 1234567 * n,
  leadCount: 137, outcome: 'ok', reason: 'scheduled' }));

function filtered(v) {
  const f = v.filter || {};
  let list = leads.filter((l) => (f.includeDeleted ? true : !l.deletedAt));
  if (f.status) list = list.filter((l) => f.status.includes(l.status));
  if (f.source) list = list.filter((l) => l.source === f.source);
  if (f.company) list = list.filter((l) => (l.company || '').toLowerCase().includes(f.company.toLowerCase()));
  if (f.syncState) list = list.filter((l) => f.syncState.includes(l.syncState));
  if (f.enriched !== undefined) list = list.filter((l) => l.enriched === f.enriched);
  if (v.search) list = list.filter((l) => JSON.stringify(l).toLowerCase().includes(v.search.toLowerCase()));
  const order = (v.orderBy && v.orderBy[0]) || { field: 'CREATED_AT', direction: 'ASC' };
  const key = { CREATED_AT: 'createdAt', UPDATED_AT: 'updatedAt', FULL_NAME: 'fullName', COMPANY: 'company', STATUS: 'status', SCORE: 'score' }[order.field];
  list = [...list].sort((a, b) => ((a[key] ?? '') < (b[key] ?? '') ? -1 : (a[key] ?? '') > (b[key] ?? '') ? 1 : 0));
  if (order.direction === 'DESC') list.reverse();
  return list;
}

function resolve(op, v) {
  const name = op.replace(/^Dashboard_/, '').toLowerCase();
  if (FAIL.has(name)) throw Object.assign(new Error(`Unknown field "${name}" (mock failure)`), { code: 'VALIDATION' });
  const byStatus = STATUSES.map((s) => ({ status: s, count: leads.filter((l) => l.status === s).length }));
  switch (op) {
    case 'Dashboard_cacheStatus': return { cacheStatus: { totalLeads: leads.length, fresh: true, ageSeconds: 754, lastFullPull: iso(now - 864e5),
      lastIncrementalPull: iso(now - 754e3), pendingChanges: outbox.filter((o) => o.state === 'PENDING').length,
      failedChanges: outbox.filter((o) => o.state === 'FAILED').length, deadChanges: outbox.filter((o) => o.state === 'DEAD').length,
      openConflicts: conflicts.filter((c) => c.open).length, airtableReachable: true, mode: 'demo', lastBackup: backups[0],
      requestsToday: 42, requestsThisMonth: 1234 } };
    case 'Dashboard_cacheStatusMin': {
      const had = FAIL.delete('cachestatus');
      const { deadChanges, lastBackup, requestsToday, requestsThisMonth, ...rest } = resolve('Dashboard_cacheStatus', v).cacheStatus;
      if (had) FAIL.add('cachestatus');
      return { cacheStatus: rest };
    }
    case 'Dashboard_report': {
      let reached = leads.length;
      const funnel = STATUSES.filter((s) => s !== 'lost').map((s, i) => { const r = i === 0 ? reached : Math.round(reached * 0.8); reached = r; return { status: s, reached: r, share: r / leads.length }; });
      return { report: { totalLeads: leads.length, enrichmentRate: 0.66, byStatus, funnel,
        bySource: [{ source: 'linkedin', count: 40 }, { source: null, count: 12 }],
        createdPerDay: Array.from({ length: 30 }, (_, i) => ({ day: iso(now - (29 - i) * 864e5).slice(0, 10), count: (i * 7) % 11 })),
        medianDaysInStage: STATUSES.map((s, i) => ({ status: s, medianDays: i % 3 ? i * 1.5 : null })),
        campaigns: [{ campaignId: 'k1', name: 'Q4 outreach', leads: 30, sent: 25, replied: 4, replyRate: 0.16 }] } };
    }
    case 'Dashboard_syncRuns': case 'SyncRuns': return { syncRuns: runs.slice(0, v.first || 5) };
    case 'Statuses': return { statuses: STATUSES };
    case 'Leads': case 'ExportCount': {
      const list = filtered(v);
      const start = v.after ? Number(v.after) : 0;
      const page = list.slice(start, start + (v.first || 50));
      return { leads: { totalCount: list.length, pageInfo: { hasNextPage: start + page.length < list.length, endCursor: String(start + page.length) },
        edges: page.map((node, i) => ({ cursor: String(start + i + 1), node })) } };
    }
    case 'Lead': case 'LeadHistory': case 'LeadEnrichments': case 'LeadCampaigns': {
      const l = leads.find((x) => x.id === v.id || x.airtableId === v.id);
      if (!l) return { lead: null };
      return { lead: { ...l, events: events(l), enrichments: [{ id: 'en1', leadId: l.id, provider: 'website', data: { traits: ['b2b'], summary: 'Sells <widgets>' }, confidence: 0.8, at: iso(now) }],
        campaigns: [{ campaignId: 'k1', campaignName: 'Q4 outreach', status: 'sent', subject: 'Hello', sentAt: iso(now), repliedAt: null }] } };
    }
    case 'UpdateLead': {
      const l = leads.find((x) => x.id === v.id);
      if (v.expectedVersion && v.expectedVersion !== l.version) throw Object.assign(new Error('version mismatch'), { code: 'CONFLICT' });
      Object.assign(l, v.patch, { version: l.version + 1, updatedAt: iso(Date.now()), syncState: 'PENDING' });
      broadcastLead(l, 'UPDATED', Object.keys(v.patch));
      return { updateLead: l };
    }
    case 'AddNote': return { addNote: { id: 'n1', kind: 'note', at: iso(Date.now()) } };
    case 'DeleteLead': { const l = leads.find((x) => x.id === v.id); l.deletedAt = iso(Date.now()); broadcastLead(l, 'DELETED', []); return { deleteLead: l }; }
    case 'RestoreLead': { const l = leads.find((x) => x.id === v.id); l.deletedAt = null; broadcastLead(l, 'UPDATED', ['deletedAt']); return { restoreLead: l }; }
    case 'Conflicts': return { conflicts: conflicts.filter((c) => c.open === (v.open !== false)).map((c) => ({ ...c, lead: leads.find((l) => l.id === c.leadId) })) };
    case 'Resolve': { const c = conflicts.find((x) => x.id === v.id); Object.assign(c, { open: false, resolution: v.keep.toLowerCase(), resolvedAt: iso(Date.now()), resolvedBy: 'admin' }); return { resolveConflict: c }; }
    case 'Outbox': return { outbox: outbox.filter((o) => !v.state || o.state === v.state).map((o) => ({ ...o, lead: leads.find((l) => l.id === o.leadId) })) };
    case 'Retry': { const hit = outbox.filter((o) => (!v.leadId || o.leadId === v.leadId) && o.state !== 'PENDING'); hit.forEach((o) => { o.state = 'PENDING'; o.attempts = 0; }); return { retryOutbox: hit.length }; }
    case 'Backups': return { backups };
    case 'Backup': { const b = { file: `leads-${Date.now()}.db`, createdAt: iso(Date.now()), sizeBytes: 2345678, leadCount: leads.length, outcome: 'ok', reason: 'manual' }; backups.unshift(b); return { backupNow: b }; }
    case 'Refresh': case 'Push': {
      const run = { ...runs[0], id: `run${runs.length + 1}`, kind: op === 'Push' ? 'push' : 'incremental_pull', startedAt: iso(Date.now()), finishedAt: iso(Date.now() + 900), outcome: 'ok' };
      runs.unshift(run);
      broadcast('syncProgress', { ...run, finishedAt: null, outcome: 'running', phase: 'fetching' });
      setTimeout(() => broadcast('syncProgress', run), 1000);
      return op === 'Push' ? { syncPendingChanges: { run, plan: null } } : { refreshCache: run };
    }
    default: throw Object.assign(new Error(`mock: unknown operation ${op}`), { code: 'VALIDATION' });
  }
}

// ---- minimal WebSocket (text frames only) ----
const sockets = new Set();
function wsSend(sock, obj) {
  const data = Buffer.from(JSON.stringify(obj));
  const len = data.length;
  const head = len < 126 ? Buffer.from([0x81, len]) : len < 65536 ? Buffer.from([0x81, 126, len >> 8, len & 255])
    : Buffer.concat([Buffer.from([0x81, 127]), (() => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(len)); return b; })()]);
  sock.write(Buffer.concat([head, data]));
}
function wsFrames(sock, onText) {
  let buf = Buffer.alloc(0);
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 2) {
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) { len = buf.readUInt16BE(2); off = 4; } else if (len === 127) { len = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = buf[1] & 128;
      const need = off + (masked ? 4 : 0) + len;
      if (buf.length < need) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      const payload = Buffer.from(buf.subarray(off + (masked ? 4 : 0), need));
      if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(need);
      if (op === 8) { sock.end(); return; }
      if (op === 1) onText(payload.toString('utf8'));
    }
  });
}
function broadcast(field, data) {
  for (const s of sockets) for (const [id, f] of s.subs) if (f === field) wsSend(s.sock, { id, type: 'next', payload: { data: { [field]: data } } });
}
function broadcastLead(lead, kind, changedFields) { broadcast('leadChanged', { kind, lead, changedFields, actor: 'admin' }); }

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  const authed = !TOKEN || req.headers.authorization === `Bearer ${TOKEN}`;
  if (req.method === 'POST' && url.pathname === '/graphql') {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      res.setHeader('Content-Type', 'application/json');
      if (!authed) { res.end(JSON.stringify({ data: null, errors: [{ message: 'a token is required', extensions: { code: 'UNAUTHENTICATED' } }] })); return; }
      const { query, variables } = JSON.parse(body);
      const op = (query.match(/^\s*(?:query|mutation)\s+(\w+)/) || [])[1] || '';
      setTimeout(() => {
        try { res.end(JSON.stringify({ data: resolve(op, variables || {}) })); } catch (e) { res.end(JSON.stringify({ data: null, errors: [{ message: e.message, extensions: { code: e.code } }] })); }
      }, 60);
    });
    return;
  }
  if (url.pathname.startsWith('/export/leads.')) {
    if (!authed) { res.writeHead(401); res.end('token required'); return; }
    const v = { filter: { status: url.searchParams.getAll('status').length ? url.searchParams.getAll('status') : undefined,
      source: url.searchParams.get('source') || undefined, includeDeleted: url.searchParams.get('includeDeleted') === 'true' },
    search: url.searchParams.get('search') };
    const list = filtered(v);
    if (url.pathname.endsWith('.json')) { res.setHeader('Content-Type', 'application/json'); res.end(JSON.stringify({ version: 1, leads: list })); return; }
    res.setHeader('Content-Type', 'text/csv');
    res.end(`id,fullName,status\n${list.map((l) => `${l.id},${l.fullName},${l.status}`).join('\n')}\n`);
    return;
  }
  const file = path.join(WEB, url.pathname === '/' ? 'index.html' : path.normalize(url.pathname));
  if (!file.startsWith(WEB) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); res.end('not found'); return; }
  const type = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.mjs': 'text/javascript' }[path.extname(file)] || 'application/octet-stream';
  // The policy README.md promises the page works under.
  res.writeHead(200, { 'Content-Type': `${type}; charset=utf-8`,
    'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; connect-src 'self'" });
  fs.createReadStream(file).pipe(res);
});

server.on('upgrade', (req, sock) => {
  const key = req.headers['sec-websocket-key'];
  const accept = crypto.createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`);
  const state = { sock, subs: new Map() };
  sockets.add(state);
  sock.on('close', () => sockets.delete(state));
  sock.on('error', () => sockets.delete(state));
  wsFrames(sock, (text) => {
    const msg = JSON.parse(text);
    if (msg.type === 'connection_init') {
      if (TOKEN && !(msg.payload && msg.payload.Authorization === `Bearer ${TOKEN}`)) {
        // As async-graphql does when on_connection_init fails: close 1002 with the error as reason.
        const reason = Buffer.from('UNAUTHENTICATED: a valid token is required');
        sock.end(Buffer.concat([Buffer.from([0x88, 2 + reason.length, 0x03, 0xea]), reason]));
        return;
      }
      wsSend(sock, { type: 'connection_ack' });
    } else if (msg.type === 'subscribe') {
      state.subs.set(msg.id, /leadChanged/.test(msg.payload.query) ? 'leadChanged' : 'syncProgress');
    } else if (msg.type === 'complete') state.subs.delete(msg.id);
    else if (msg.type === 'ping') wsSend(sock, { type: 'pong' });
  });
});

// A lead changes every 5 s, as an agent would change it.
let tick = 0;
setInterval(() => {
  tick += 1;
  const l = leads[(tick * 13) % leads.length];
  l.score = (l.score || 0) + 1;
  l.updatedAt = iso(Date.now());
  broadcastLead(l, 'UPDATED', ['score']);
}, 5000).unref();

server.listen(PORT, '127.0.0.1', () => console.log(`mock leadcache on http://127.0.0.1:${PORT}/ (token ${TOKEN ? 'required' : 'not required'})`));
