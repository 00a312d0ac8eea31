// Pure helpers shared by the admin page: safe DOM building, formatting,
// cursor paging, filter conversion. No network, no globals beyond `document`
// (only touched when h()/s() are called), so the pure parts run under node --test.

/** Escape a string for HTML text or attribute context. The page builds DOM
 * with textContent (see h()), so this is only used where a string is needed. */
export function escapeHtml(value) {
  return String(value ?? '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function appendChildren(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) appendChildren(el, child);
    else if (typeof child === 'object' && 'nodeType' in child) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

function applyAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'selected' || key === 'disabled' || key === 'multiple') {
      el[key] = Boolean(value);
      if (value) el.setAttribute(key, '');
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** Build an HTML element. Strings become text nodes, so server data is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  appendChildren(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
/** Build an SVG element (same rules as h()). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  appendChildren(el, children);
  return el;
}

/** Replace all children of `el`. */
export function replace(el, ...children) {
  while (el.firstChild) el.removeChild(el.firstChild);
  appendChildren(el, children);
  return el;
}

/** Debounce: run `fn` `ms` after the last call. With `maxWait`, a steady stream of calls
 * still runs it at least every `maxWait` ms (live events can arrive faster than `ms`). */
export function debounce(fn, ms, maxWait = 0) {
  let timer = null;
  let first = 0;
  const fire = (args) => { clearTimeout(timer); timer = null; first = 0; fn(...args); };
  const wrapped = (...args) => {
    const now = Date.now();
    if (!first) first = now;
    clearTimeout(timer);
    const wait = maxWait ? Math.min(ms, Math.max(0, first + maxWait - now)) : ms;
    timer = setTimeout(() => fire(args), wait);
  };
  wrapped.cancel = () => { clearTimeout(timer); timer = null; first = 0; };
  return wrapped;
}

// ---------- formatting ----------

export function fmtDate(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}\u00a0${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const sec = Math.max(0, Math.round(seconds));
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ${Math.floor((sec % 3600) / 60)}m`;
  return `${Math.floor(sec / 86400)}d ${Math.floor((sec % 86400) / 3600)}h`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function fmtPct(share) {
  if (share === null || share === undefined || Number.isNaN(share)) return '—';
  return `${(share * 100).toFixed(share >= 0.1 || share === 0 ? 0 : 1)}%`;
}

export function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString('en-US');
}

/** Render any JSON value as a short string for a table cell or a diff. */
export function fmtValue(v) {
  if (v === null || v === undefined) return '∅';
  if (typeof v === 'string') return v === '' ? '""' : v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** The `changes` JSON of an event ({field: [old, new]}) as a list of {field, old, new}. */
export function changeList(changes) {
  let obj = changes;
  if (typeof obj === 'string') {
    try { obj = JSON.parse(obj); } catch { return []; }
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return [];
  return Object.entries(obj).map(([field, pair]) => {
    if (Array.isArray(pair) && pair.length === 2) return { field, old: pair[0], new: pair[1] };
    return { field, old: undefined, new: pair };
  });
}

// ---------- paging ----------

/** Cursor stack for Relay paging: the `after` cursor of every page visited so far.
 * Page 1 has `after = null`; next() pushes the current page's endCursor. */
export class CursorStack {
  constructor() { this.stack = [null]; }
  get after() { return this.stack[this.stack.length - 1]; }
  get page() { return this.stack.length; }
  get hasPrevious() { return this.stack.length > 1; }
  next(endCursor) { if (endCursor) this.stack.push(endCursor); return this.after; }
  previous() { if (this.stack.length > 1) this.stack.pop(); return this.after; }
  reset() { this.stack = [null]; return null; }
}

// ---------- filters ----------

/** The leads filter as kept by the page (all optional):
 * { status: string[], source, company, syncState, enriched: 'true'|'false'|'',
 *   includeDeleted: bool, search } */
export function emptyFilter() {
  return { status: [], source: '', company: '', syncState: '', enriched: '', includeDeleted: false, search: '' };
}

/** Page filter -> GraphQL `LeadFilter` input (null when empty) and `search` argument. */
export function toLeadFilter(f) {
  const filter = {};
  if (f.status && f.status.length) filter.status = [...f.status];
  if (f.source && f.source.trim()) filter.source = f.source.trim();
  if (f.company && f.company.trim()) filter.company = f.company.trim();
  if (f.syncState) filter.syncState = [f.syncState];
  if (f.enriched === 'true' || f.enriched === true) filter.enriched = true;
  if (f.enriched === 'false' || f.enriched === false) filter.enriched = false;
  if (f.includeDeleted) filter.includeDeleted = true;
  const search = f.search && f.search.trim() ? f.search.trim() : null;
  return { filter: Object.keys(filter).length ? filter : null, search };
}

/** Page filter -> query string for /export/leads.{csv,json} (without the leading '?'). */
export function toExportQuery(f) {
  const p = new URLSearchParams();
  for (const st of f.status || []) p.append('status', st);
  if (f.source && f.source.trim()) p.set('source', f.source.trim());
  if (f.syncState) p.set('syncState', f.syncState);
  if (f.enriched === 'true' || f.enriched === 'false') p.set('enriched', f.enriched);
  if (f.search && f.search.trim()) p.set('search', f.search.trim());
  if (f.company && f.company.trim()) p.set('company', f.company.trim());
  if (f.includeDeleted) p.set('includeDeleted', 'true');
  return p.toString();
}

/** Human summary of a filter, e.g. "status: new, won · enriched: yes". */
export function describeFilter(f) {
  const parts = [];
  if (f.search && f.search.trim()) parts.push(`search: “${f.search.trim()}”`);
  if (f.status && f.status.length) parts.push(`status: ${f.status.join(', ')}`);
  if (f.source && f.source.trim()) parts.push(`source: ${f.source.trim()}`);
  if (f.company && f.company.trim()) parts.push(`company: ${f.company.trim()}`);
  if (f.syncState) parts.push(`sync: ${f.syncState.toLowerCase()}`);
  if (f.enriched === 'true') parts.push('enriched: yes');
  if (f.enriched === 'false') parts.push('enriched: no');
  if (f.includeDeleted) parts.push('including deleted');
  return parts.length ? parts.join(' · ') : 'all leads';
}

/** Parse a location hash like "#/leads/abc?x=1" into {path: ['leads','abc'], query}. */
export function parseHash(hash) {
  const raw = (hash || '').replace(/^#\/?/, '');
  const [pathPart, queryPart = ''] = raw.split('?');
  const path = pathPart.split('/').filter(Boolean).map((p) => decodeURIComponent(p));
  return { path, query: new URLSearchParams(queryPart) };
}
