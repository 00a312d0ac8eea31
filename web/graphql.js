// Network client of the admin page: GraphQL over HTTP, graphql-transport-ws
// subscriptions, authenticated downloads. The only ways the page talks to the server.

const TOKEN_KEY = 'leadcache.token';
const AUTH_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN']);

export function getToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function setToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: token lives for this call only */ }
}

function authHeaders() {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** An error from the server or the network. `code` is extensions.code when the server gave one
 * (NOT_FOUND, VALIDATION, CONFLICT, FORBIDDEN, UNAUTHENTICATED, LIMIT), 'NETWORK' or 'HTTP'. */
export class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    this.name = 'ApiError';
    this.code = code || null;
    this.status = status || null;
  }
}

// ---- token prompt: one dialog shared by every request that needs it ----

let askToken = null; // (reason: 'UNAUTHENTICATED'|'FORBIDDEN') => Promise<boolean> (true: retry)
let pendingAsk = null;

/** The app registers the function that shows the token dialog. */
export function onTokenNeeded(fn) { askToken = fn; }

async function needToken(reason) {
  if (!askToken) return false;
  if (!pendingAsk) {
    pendingAsk = Promise.resolve(askToken(reason)).finally(() => { pendingAsk = null; });
  }
  return pendingAsk;
}

function authProblem(status, body) {
  if (status === 401) return 'UNAUTHENTICATED';
  if (status === 403) return 'FORBIDDEN';
  const errs = body && Array.isArray(body.errors) ? body.errors : [];
  const hit = errs.find((e) => AUTH_CODES.has(e && e.extensions && e.extensions.code));
  return hit ? hit.extensions.code : null;
}

/** POSTs one operation: { res, body } (body null when it is not JSON). */
async function post(query, variables) {
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', ...authHeaders() },
      body: JSON.stringify({ query, variables }),
    });
  } catch (e) {
    throw new ApiError(`Server unreachable: ${e.message}`, 'NETWORK');
  }
  let body = null;
  try { body = await res.json(); } catch { body = null; }
  return { res, body };
}

/** Run a GraphQL operation; resolves to `data`, throws ApiError on any error. */
export async function gql(query, variables = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const { res, body } = await post(query, variables);
    const problem = authProblem(res.status, body);
    if (problem && attempt < 3 && (await needToken(problem))) continue;
    if (body && Array.isArray(body.errors) && body.errors.length) {
      const first = body.errors[0] || {};
      const code = (first.extensions && first.extensions.code) || null;
      const msg = body.errors.map((e) => e && e.message).filter(Boolean).join('; ') || 'Unknown error';
      throw new ApiError(msg, code, res.status);
    }
    if (!res.ok) throw new ApiError(`HTTP ${res.status} ${res.statusText}`, problem || 'HTTP', res.status);
    if (!body || typeof body !== 'object' || !('data' in body)) {
      throw new ApiError('The server sent an answer that is not GraphQL', 'HTTP', res.status);
    }
    return body.data;
  }
}

/** Like `gql` for a part of a page that some roles may not see: resolves to `null` when the
 * server refuses it (FORBIDDEN), without asking for another token. */
export async function gqlOptional(query, variables = {}) {
  const { res, body } = await post(query, variables);
  const errs = body && Array.isArray(body.errors) ? body.errors : [];
  if (errs.some((e) => e && e.extensions && e.extensions.code === 'FORBIDDEN')) return null;
  if (errs.length) throw new ApiError(errs.map((e) => e && e.message).join('; '), (errs[0].extensions || {}).code, res.status);
  return body ? body.data : null;
}

/** GET a URL with the Authorization header and save the answer as a file. */
export async function download(url, filename) {
  for (let attempt = 0; ; attempt += 1) {
    let res;
    try {
      res = await fetch(url, { headers: authHeaders() });
    } catch (e) {
      throw new ApiError(`Server unreachable: ${e.message}`, 'NETWORK');
    }
    const problem = authProblem(res.status, null);
    if (problem && attempt < 3 && (await needToken(problem))) continue;
    if (!res.ok) {
      let text = '';
      try { text = (await res.text()).slice(0, 300); } catch { /* ignore */ }
      throw new ApiError(`Export failed: HTTP ${res.status}${text ? ` — ${text}` : ''}`, problem || 'HTTP', res.status);
    }
    const blob = await res.blob();
    const href = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = href;
    a.download = filename;
    a.style.display = 'none';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
    return blob.size;
  }
}

// ---- subscriptions (graphql-transport-ws) ----

/** 'UNAUTHENTICATED' | 'FORBIDDEN' when a list of GraphQL errors is about the token. */
export function authErrorCode(errors) {
  const list = Array.isArray(errors) ? errors : [];
  const hit = list.find((e) => e && e.extensions && AUTH_CODES.has(e.extensions.code));
  return hit ? hit.extensions.code : null;
}

/** Whether a WebSocket close is the server refusing the token. leadcache closes a refused
 * `connection_init` with 4403 (as graphql-transport-ws asks) and a reason that starts with the
 * error code: "UNAUTHENTICATED: unknown or revoked token" or "FORBIDDEN: ...". 4401 is the
 * protocol's "Unauthorized". Older servers (async-graphql's own loop) close with 1002 and the
 * message as reason, so for 1002 and other 44xx codes the reason decides. */
export function authCloseReason(code, reason) {
  const r = String(reason || '');
  if (/^UNAUTHENTICATED\b/.test(r)) return 'UNAUTHENTICATED';
  if (/^FORBIDDEN\b/.test(r)) return 'FORBIDDEN';
  if (code === 4401) return 'UNAUTHENTICATED';
  if (code === 4403) return /unauthenticated|unauthori[sz]ed|token/i.test(r) ? 'UNAUTHENTICATED' : 'FORBIDDEN';
  if ((code === 1002 || (code >= 4400 && code < 4500)) && /unauthenticated|unauthori[sz]ed|token|forbidden|permission/i.test(r)) {
    return /forbidden|permission/i.test(r) ? 'FORBIDDEN' : 'UNAUTHENTICATED';
  }
  return null;
}

/** One WebSocket that carries every subscription; reconnects with backoff and
 * re-subscribes. `onStatus(state, detail)` gets 'connecting' | 'live' | 'offline'. */
export class LiveClient {
  constructor({ url, onStatus } = {}) {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = url || `${proto}//${location.host}/graphql/ws`;
    this.onStatus = onStatus || (() => {});
    this.subs = new Map(); // id -> {query, variables, onNext, onError}
    this.nextId = 1;
    this.ws = null;
    this.acked = false;
    this.retry = 0;
    this.timer = null;
    this.closed = false;
    this.askedFor = null;
  }

  start() { this.closed = false; this.connect(); }

  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'bye');
  }

  /** Restart the connection (after the token changed). */
  restart() {
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000, 'token changed'); this.ws = null; }
    clearTimeout(this.timer);
    this.retry = 0;
    this.connect();
  }

  subscribe(query, variables, onNext, onError) {
    const id = String(this.nextId++);
    this.subs.set(id, { query, variables, onNext, onError });
    if (this.acked) this.sendSubscribe(id);
    return () => {
      this.subs.delete(id);
      if (this.acked) this.send({ id, type: 'complete' });
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  sendSubscribe(id) {
    const sub = this.subs.get(id);
    if (sub) this.send({ id, type: 'subscribe', payload: { query: sub.query, variables: sub.variables || {} } });
  }

  connect() {
    if (this.closed) return;
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000, 'reconnect'); this.ws = null; }
    clearTimeout(this.timer);
    this.acked = false;
    this.onStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, 'graphql-transport-ws');
    } catch (e) {
      this.scheduleReconnect(e.message);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const token = getToken();
      ws.send(JSON.stringify({ type: 'connection_init', payload: token ? { Authorization: `Bearer ${token}` } : {} }));
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.handle(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.acked = false;
      const auth = authCloseReason(ev.code, ev.reason);
      if (auth) { this.authFailed(auth); return; }
      this.scheduleReconnect(ev.reason || `closed (${ev.code})`);
    };
    ws.onerror = () => { /* onclose follows and reconnects */ };
  }

  /** The server refused the token: ask for one once per token value, then stay offline and
   * retry slowly (a token saved later restarts the socket). */
  authFailed(reason) {
    if (this.ws) { this.ws.onclose = null; this.ws.close(1000, 'auth'); this.ws = null; }
    this.acked = false;
    const token = getToken();
    if (this.askedFor !== token) {
      this.askedFor = token;
      this.onStatus('offline', 'not authorized');
      needToken(reason).then((retry) => {
        if (retry) { this.retry = 0; this.connect(); } else this.scheduleReconnect('not authorized');
      });
      return;
    }
    this.retry = Math.max(this.retry, 5);
    this.scheduleReconnect('not authorized');
  }

  scheduleReconnect(detail) {
    if (this.closed) return;
    this.onStatus('offline', detail);
    const delay = Math.min(30000, 1000 * 2 ** Math.min(this.retry, 5)) + Math.floor(Math.random() * 500);
    this.retry += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  handle(msg) {
    switch (msg.type) {
      case 'connection_ack':
        this.acked = true;
        this.retry = 0;
        this.onStatus('live');
        for (const id of this.subs.keys()) this.sendSubscribe(id);
        break;
      case 'ping':
        this.send({ type: 'pong', payload: msg.payload });
        break;
      case 'next': {
        const sub = this.subs.get(msg.id);
        if (!sub) break;
        const payload = msg.payload || {};
        const auth = authErrorCode(payload.errors);
        if (auth) { this.authFailed(auth); break; }
        if (payload.errors && payload.errors.length && sub.onError) sub.onError(payload.errors);
        if (payload.data) sub.onNext(payload.data);
        break;
      }
      case 'error': {
        const auth = authErrorCode(msg.payload);
        if (auth) { this.authFailed(auth); break; }
        const sub = this.subs.get(msg.id);
        if (sub && sub.onError) sub.onError(msg.payload);
        break;
      }
      case 'complete':
        // The server ended a subscription (e.g. restart); subscribe again shortly.
        if (this.subs.has(msg.id)) setTimeout(() => { if (this.acked) this.sendSubscribe(msg.id); }, 2000);
        break;
      default:
        break;
    }
  }
}
