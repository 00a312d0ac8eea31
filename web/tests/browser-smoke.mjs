// Browser smoke test of the admin page against the mock server, driven over the Chrome DevTools
// protocol (no npm packages):  node --experimental-websocket web/tests/browser-smoke.mjs
// Needs `chromium` on PATH. Prints one line per check and "N passed, N failed" at the end.
// The real end-to-end tests (WebDriver against the Rust server) live in the repo's tests/.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const procs = [];
let passed = 0;
let failed = 0;

function startMock(port, env = {}) {
  const p = spawn(process.execPath, [path.join(HERE, 'mock-server.mjs'), String(port)], { env: { ...process.env, ...env }, stdio: 'ignore' });
  procs.push(p);
  return p;
}

async function browser(port) {
  const p = spawn('chromium', ['--headless', '--no-sandbox', '--disable-gpu', `--remote-debugging-port=${port}`,
    '--window-size=1280,1000', `--user-data-dir=/tmp/leadcache-smoke-${port}`, 'about:blank'], { stdio: 'ignore' });
  procs.push(p);
  let targets = null;
  for (let i = 0; i < 50 && !targets; i++) {
    await sleep(200);
    try { targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json(); } catch { /* not up yet */ }
  }
  const page = targets.find((t) => t.type === 'page');
  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((r) => { ws.onopen = r; });
  let id = 0;
  const waiting = new Map();
  const problems = [];
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && waiting.has(msg.id)) { waiting.get(msg.id)(msg); waiting.delete(msg.id); }
    if (msg.method === 'Runtime.exceptionThrown') problems.push(msg.params.exceptionDetails.exception?.description || msg.params.exceptionDetails.text);
    if (msg.method === 'Log.entryAdded' && msg.params.entry.level === 'error') problems.push(`${msg.params.entry.source}: ${msg.params.entry.text}`);
    if (msg.method === 'Runtime.consoleAPICalled' && msg.params.type === 'error') problems.push(msg.params.args.map((a) => a.value ?? a.description).join(' '));
  };
  const send = (method, params = {}) => new Promise((r) => { const n = ++id; waiting.set(n, r); ws.send(JSON.stringify({ id: n, method, params })); });
  await send('Runtime.enable');
  await send('Page.enable');
  await send('Log.enable');
  const evaluate = async (expr) => {
    const res = await send('Runtime.evaluate', { expression: `(async () => { ${expr} })()`, awaitPromise: true, returnByValue: true });
    if (res.result.exceptionDetails) throw new Error(res.result.exceptionDetails.exception?.description || 'evaluate failed');
    return res.result.result.value;
  };
  return { send, evaluate, problems, close: () => ws.close() };
}

// Helpers injected into expressions.
const LIB = `
  const $ = (s) => document.querySelector(s);
  const $$ = (s) => [...document.querySelectorAll(s)];
  const t = (id) => $('[data-testid="' + id + '"]');
  const wait = async (fn, ms = 5000) => { const end = Date.now() + ms; while (Date.now() < end) { const v = fn(); if (v) return v; await new Promise((r) => setTimeout(r, 50)); } throw new Error('timeout waiting for ' + fn); };
  const go = async (hash) => { location.hash = hash; await new Promise((r) => setTimeout(r, 50)); };
  const type = (el, v) => { el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); };
`;

async function check(b, name, expr) {
  try {
    const v = await b.evaluate(LIB + expr);
    if (v === true) { passed += 1; console.log(`ok   ${name}`); } else { failed += 1; console.log(`FAIL ${name}: ${JSON.stringify(v)}`); }
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e.message.split('\n')[0]}`);
  }
}

async function main() {
  startMock(8191);
  startMock(8192, { MOCK_FAIL: 'report,cachestatus' });
  startMock(8193, { MOCK_TOKEN: 'secret' });
  await sleep(500);
  const b = await browser(9331);
  await b.send('Page.navigate', { url: 'http://127.0.0.1:8191/' });
  await sleep(1000);

  await check(b, 'dashboard counts', `await wait(() => t('total-leads')); return t('total-leads').textContent === '137' && t('open-conflicts').textContent === '2' && location.hash === '#/dashboard';`);
  await check(b, 'funnel chart drawn as svg', `await wait(() => t('funnel-chart')); return t('funnel-chart').querySelectorAll('svg rect').length === 8;`);
  await check(b, 'per-day chart has 30 bars', `return t('per-day-chart').querySelectorAll('svg rect').length === 30;`);
  await check(b, 'live indicator goes live', `await wait(() => t('live-indicator').dataset.state === 'live'); return true;`);
  await check(b, 'refresh button toasts', `t('btn-refresh').click(); await wait(() => t('toast-ok')); return /Refresh/.test(t('toast-ok').textContent);`);
  await check(b, 'sync progress shown live', `await wait(() => t('sync-progress').textContent.length > 0); return true;`);
  await check(b, 'backup button toasts', `$$('.toast').forEach((x) => x.remove()); t('btn-backup').click(); await wait(() => t('toast-ok')); return /Backup ok/.test(t('toast-ok').textContent);`);

  await check(b, 'leads table first page', `await go('#/leads'); await wait(() => $$('[data-testid="leads-table"] tbody tr').length === 50); return /136 leads/.test(t('leads-total').textContent) && t('page-prev').disabled;`);
  await check(b, 'server strings are text, not markup', `return $$('td').some((td) => td.textContent.includes('<script>alert(1)</script>')) && !$('main script');`);
  await check(b, 'next and previous page', `const first = $('[data-lead-id]').dataset.leadId; t('page-next').click();
    await wait(() => t('page-number').textContent.startsWith('Page 2 of')); const second = $('[data-lead-id]').dataset.leadId;
    t('page-prev').click(); await wait(() => t('page-number').textContent.startsWith('Page 1 of'));
    return first !== second && $('[data-lead-id]').dataset.leadId === first;`);
  await check(b, 'sort by name', `t('sort-FULL_NAME').click(); await wait(() => t('sort-FULL_NAME') && t('sort-FULL_NAME').closest('th').getAttribute('aria-sort') === 'ascending');
    const names = $$('[data-lead-id] td:first-child').map((td) => td.textContent); return names.join() === [...names].sort().join();`);
  await check(b, 'sort toggles to descending', `t('sort-FULL_NAME').click(); await wait(() => t('sort-FULL_NAME').closest('th').getAttribute('aria-sort') === 'descending'); return true;`);
  await check(b, 'search', `type(t('lead-search'), 'Ada'); await wait(() => /Ada/.test(t('leads-total').textContent)); return $$('[data-lead-id] td:first-child').every((td) => td.textContent.includes('Ada'));`);
  await check(b, 'status filter', `type(t('lead-search'), ''); $('summary', t('filter-status')); t('filter-status').open = true; await wait(() => t('filter-status-won')); t('filter-status-won').click();
    await wait(() => /status: won/.test(t('leads-total').textContent)); return $$('[data-lead-id] .badge-status').every((x) => x.textContent === 'won');`);
  await check(b, 'export csv of the filter', `$$('.toast').forEach((x) => x.remove()); t('export-csv').click(); await wait(() => t('toast-ok') || t('toast-error')); return !!t('toast-ok');`);
  await check(b, 'export page shows the same filter', `await go('#/export'); await wait(() => /leads will be exported/.test(t('export-count').textContent)); return /status: won/.test(t('export-filter-summary').textContent);`);
  await check(b, 'clear filters', `t('filter-clear').click(); await wait(() => /all leads/.test(t('export-filter-summary').textContent)); return true;`);
  await check(b, 'row click opens detail', `await go('#/leads'); await wait(() => $('[data-lead-id="lead-0004"]') || (t('sort-FULL_NAME') && $$('[data-lead-id]').length));
    const row = $('[data-lead-id]'); const id = row.dataset.leadId; row.querySelector('td:nth-child(2)').click();
    await wait(() => t('lead-detail') && t('lead-fields')); return t('lead-detail').dataset.leadId === id && location.hash === '#/leads/' + id;`);
  await check(b, 'detail shows history with changes', `await go('#/leads/lead-0004'); await wait(() => $$('[data-testid="lead-history"] li[data-event-kind]').length && t('lead-fields') && t('lead-detail').dataset.leadId === 'lead-0004');
    return $$('[data-testid="lead-history"] li[data-event-kind]').length === 3 && /status: new → /.test(t('lead-history').textContent.replace(/\\s+/g, ' '));`);
  await check(b, 'detail unsafe link not linked', `return !$$('a').some((a) => a.getAttribute('href').startsWith('javascript:'));`);
  await check(b, 'edit status', `$$('.toast').forEach((x) => x.remove()); await wait(() => t('status-select').options.length > 1); t('status-select').value = 'won'; t('btn-save-status').click();
    await wait(() => t('toast-ok')); await wait(() => /won/.test(t('lead-fields').textContent) && t('status-select').value === 'won'); return true;`);
  await check(b, 'add note', `$$('.toast').forEach((x) => x.remove()); t('note-text').value = 'hello'; t('btn-add-note').click(); await wait(() => t('toast-ok')); return /Note added/.test(t('toast-ok').textContent) && t('note-text').value === '';`);
  await check(b, 'delete then restore', `window.confirm = () => true; t('btn-delete').click(); await wait(() => t('lead-deleted-banner') && t('btn-restore'));
    t('btn-restore').click(); await wait(() => !t('lead-deleted-banner') && t('btn-delete')); return true;`);
  await check(b, 'unknown lead', `await go('#/leads/nope'); await wait(() => t('empty-state')); return /No lead/.test(t('empty-state').textContent);`);

  await check(b, 'conflicts side by side, keep local', `await go('#/conflicts'); await wait(() => t('conflict-c1'));
    const c = t('conflict-c1'); const ok = c.querySelector('[data-testid="value-local"]').textContent === 'contacted' && c.querySelector('[data-testid="value-remote"]').textContent === 'replied';
    c.querySelector('[data-testid="keep-local"]').click(); await wait(() => !t('conflict-c1')); return ok && !!t('conflict-c2');`);
  await check(b, 'resolved conflicts toggle', `t('toggle-resolved').click(); await wait(() => t('resolved-conflicts-table')); return !!t('resolved-conflicts-table').querySelector('[data-conflict-id="c1"]');`);
  await check(b, 'outbox filter dead and retry', `await go('#/outbox'); await wait(() => t('outbox-table')); t('outbox-state').value = 'DEAD'; t('outbox-state').dispatchEvent(new Event('change'));
    await wait(() => $$('[data-testid="outbox-table"] tbody tr').length === 3); const id = $('[data-testid="outbox-table"] tbody tr').dataset.leadId;
    t('retry-' + id).click(); await wait(() => $$('[data-testid="outbox-table"] tbody tr').length === 2); return true;`);
  await check(b, 'outbox retry all', `$$('.toast').forEach((x) => x.remove()); t('btn-retry-all').click(); await wait(() => t('toast-ok')); await wait(() => t('empty-state')); return true;`);
  await check(b, 'sync runs page', `await go('#/sync'); await wait(() => t('sync-runs-table')); return $$('[data-testid="sync-runs-table"] tbody tr').length >= 8;`);
  await check(b, 'backups page', `await go('#/backups'); await wait(() => t('backups-table')); return $$('[data-testid="backups-table"] tbody tr').length >= 2;`);
  await check(b, 'live change highlights a row', `await go('#/leads'); await wait(() => t('sort-UPDATED_AT'));
    if (t('sort-UPDATED_AT').closest('th').getAttribute('aria-sort') !== 'descending') { t('sort-UPDATED_AT').click(); await wait(() => t('sort-UPDATED_AT').closest('th').getAttribute('aria-sort') === 'ascending'); t('sort-UPDATED_AT').click(); await wait(() => t('sort-UPDATED_AT').closest('th').getAttribute('aria-sort') === 'descending'); }
    try { await wait(() => $('.row-changed'), 9000); return true; } catch (e) { return [t('live-indicator').dataset.state, t('leads-total').textContent, $$('[data-lead-id]').slice(0, 3).map((r) => r.dataset.leadId).join()]; }`);
  await check(b, 'not found page', `await go('#/nowhere'); return /Page not found/.test($('main').textContent);`);

  // A failing section stays inline.
  await b.send('Page.navigate', { url: 'http://127.0.0.1:8192/#/dashboard' });
  await sleep(800);
  await check(b, 'failing report query is an inline error', `await wait(() => t('section-error')); await wait(() => t('total-leads'));
    return t('section-report').contains(t('section-error')) && t('total-leads').textContent === '137' && !!t('sync-runs-table');`);
  await check(b, 'older server without the newer cacheStatus fields', `await wait(() => t('cache-status-partial'));
    return t('dead-changes').textContent === 'n/a' && t('pending-changes').textContent === '3';`);

  // Token prompt.
  await b.send('Page.navigate', { url: 'http://127.0.0.1:8193/#/dashboard' });
  await sleep(800);
  await check(b, 'token dialog when the server needs one', `await wait(() => t('token-dialog').open); return !t('total-leads');`);
  await check(b, 'token saved and request retried', `t('token-input').value = 'secret'; t('token-save').click();
    await wait(() => t('total-leads')); await wait(() => t('live-indicator').dataset.state === 'live'); return localStorage.getItem('leadcache.token') === 'secret' && !t('token-dialog').open;`);
  await check(b, 'token used for exports', `await go('#/leads'); await wait(() => t('leads-table')); $$('.toast').forEach((x) => x.remove()); t('export-json').click(); await wait(() => t('toast-ok') || t('toast-error')); return !!t('toast-ok');`);
  await check(b, 'forget token', `t('btn-token').click(); t('token-clear').click(); return localStorage.getItem('leadcache.token') === null;`);

  // Phone width: the leads table scrolls inside its box, the page does not.
  await b.send('Emulation.setDeviceMetricsOverride', { width: 390, height: 800, deviceScaleFactor: 1, mobile: true });
  await b.send('Page.navigate', { url: 'http://127.0.0.1:8191/#/leads' });
  await sleep(800);
  await check(b, 'phone: no page-wide horizontal scroll', `await wait(() => t('leads-table')); return document.documentElement.scrollWidth <= 392 && $('.table-wrap').scrollWidth > $('.table-wrap').clientWidth;`);
  await check(b, 'phone: menu button opens nav', `const nav = $('#main-nav'); const hidden = getComputedStyle(nav).display === 'none'; $('#nav-toggle').click(); return hidden && getComputedStyle(nav).display !== 'none';`);

  const problems = b.problems.filter((p) => !/401|Unauthorized|WebSocket/i.test(p));
  if (process.env.SMOKE_VERBOSE) console.log(b.problems);
  if (problems.length) { failed += 1; console.log(`FAIL no console errors: ${problems.slice(0, 5).join(' | ')}`); } else { passed += 1; console.log('ok   no console errors'); }
  b.close();
}

main().catch((e) => { failed += 1; console.error(e); }).finally(() => {
  for (const p of procs) p.kill();
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
  setTimeout(() => process.exit(process.exitCode), 300);
});
