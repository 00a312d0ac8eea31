// Unit tests of the page's pure helpers: node --test web/tests/
import test from 'node:test';
import assert from 'node:assert/strict';
import {
  escapeHtml, CursorStack, toLeadFilter, toExportQuery, describeFilter, emptyFilter, changeList,
  fmtAge, fmtBytes, fmtPct, fmtValue, parseHash,
} from '../util.js';

test('escapeHtml escapes markup and quotes', () => {
  assert.equal(escapeHtml('<script>alert("x")</script> & \'y\''),
    '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;');
  assert.equal(escapeHtml(null), '');
});

test('cursor stack walks forward and back', () => {
  const c = new CursorStack();
  assert.equal(c.after, null);
  assert.equal(c.page, 1);
  assert.equal(c.hasPrevious, false);
  c.next('c50');
  c.next('c100');
  assert.equal(c.after, 'c100');
  assert.equal(c.page, 3);
  assert.equal(c.previous(), 'c50');
  assert.equal(c.previous(), null);
  assert.equal(c.previous(), null, 'cannot go before page 1');
  c.next(null);
  assert.equal(c.page, 1, 'a missing endCursor does not add a page');
  c.next('x');
  c.reset();
  assert.equal(c.page, 1);
});

test('empty filter means no LeadFilter and no search', () => {
  assert.deepEqual(toLeadFilter(emptyFilter()), { filter: null, search: null });
  assert.equal(toExportQuery(emptyFilter()), '');
  assert.equal(describeFilter(emptyFilter()), 'all leads');
});

test('filter converts to GraphQL input and export query string alike', () => {
  const f = { ...emptyFilter(), status: ['new', 'won'], source: ' linkedin ', company: 'Acme', syncState: 'PENDING',
    enriched: 'false', includeDeleted: true, search: ' ada ' };
  assert.deepEqual(toLeadFilter(f), {
    filter: { status: ['new', 'won'], source: 'linkedin', company: 'Acme', syncState: ['PENDING'], enriched: false, includeDeleted: true },
    search: 'ada',
  });
  const q = new URLSearchParams(toExportQuery(f));
  assert.deepEqual(q.getAll('status'), ['new', 'won']);
  assert.equal(q.get('source'), 'linkedin');
  assert.equal(q.get('company'), 'Acme');
  assert.equal(q.get('syncState'), 'PENDING');
  assert.equal(q.get('enriched'), 'false');
  assert.equal(q.get('includeDeleted'), 'true');
  assert.equal(q.get('search'), 'ada');
  assert.match(describeFilter(f), /status: new, won/);
});

test('export query string encodes special characters', () => {
  const qs = toExportQuery({ ...emptyFilter(), search: 'a&b=c #1' });
  assert.equal(new URLSearchParams(qs).get('search'), 'a&b=c #1');
  assert.ok(!qs.includes('#'));
});

test('enriched true is kept, any is dropped', () => {
  assert.deepEqual(toLeadFilter({ ...emptyFilter(), enriched: 'true' }).filter, { enriched: true });
  assert.equal(toLeadFilter({ ...emptyFilter(), enriched: '' }).filter, null);
});

test('event changes become field/old/new rows', () => {
  assert.deepEqual(changeList({ status: ['new', 'won'], score: [null, 3] }), [
    { field: 'status', old: 'new', new: 'won' }, { field: 'score', old: null, new: 3 },
  ]);
  assert.deepEqual(changeList('{"a":[1,2]}'), [{ field: 'a', old: 1, new: 2 }]);
  assert.deepEqual(changeList({ note: 'x' }), [{ field: 'note', old: undefined, new: 'x' }]);
  assert.deepEqual(changeList(null), []);
  assert.deepEqual(changeList('not json'), []);
  assert.deepEqual(changeList([1, 2]), []);
});

test('formatters', () => {
  assert.equal(fmtAge(null), '—');
  assert.equal(fmtAge(42), '42s');
  assert.equal(fmtAge(754), '12m');
  assert.equal(fmtAge(3 * 3600 + 120), '3h 2m');
  assert.equal(fmtAge(2 * 86400 + 3600), '2d 1h');
  assert.equal(fmtBytes(512), '512 B');
  assert.equal(fmtBytes(1536), '1.5 KB');
  assert.equal(fmtPct(0.5), '50%');
  assert.equal(fmtPct(0.016), '1.6%');
  assert.equal(fmtPct(0), '0%');
  assert.equal(fmtValue(null), '∅');
  assert.equal(fmtValue(''), '""');
  assert.equal(fmtValue({ a: 1 }), '{"a":1}');
  assert.equal(fmtValue(false), 'false');
});

test('hash parsing', () => {
  assert.deepEqual(parseHash('#/leads/abc%2Fdef').path, ['leads', 'abc/def']);
  assert.deepEqual(parseHash('').path, []);
  const { path, query } = parseHash('#/outbox?state=DEAD');
  assert.deepEqual(path, ['outbox']);
  assert.equal(query.get('state'), 'DEAD');
});

test('debounce waits for quiet, maxWait bounds the delay under a steady stream', async () => {
  const { debounce } = await import('../util.js');
  let calls = 0;
  const d = debounce(() => { calls += 1; }, 40);
  d(); d(); d();
  await new Promise((r) => setTimeout(r, 80));
  assert.equal(calls, 1);
  let hits = 0;
  const m = debounce(() => { hits += 1; }, 50, 120);
  const start = Date.now();
  while (Date.now() - start < 300) { m(); await new Promise((r) => setTimeout(r, 10)); }
  assert.ok(hits >= 2, `fired ${hits} times during a 300 ms stream`);
  m.cancel();
  const c = debounce(() => { calls += 100; }, 10);
  c(); c.cancel();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(calls, 1, 'cancel drops the pending call');
});

test('websocket auth failures are recognised', async () => {
  globalThis.localStorage = undefined;
  const { authCloseReason, authErrorCode } = await import('../graphql.js');
  assert.equal(authCloseReason(4401, ''), 'UNAUTHENTICATED');
  assert.equal(authCloseReason(4403, ''), 'FORBIDDEN');
  assert.equal(authCloseReason(4403, 'UNAUTHENTICATED: unknown or revoked token'), 'UNAUTHENTICATED', 'leadcache: 4403 + code prefix');
  assert.equal(authCloseReason(1002, 'UNAUTHENTICATED: a valid token is required'), 'UNAUTHENTICATED');
  assert.equal(authCloseReason(1002, 'Forbidden: read tokens cannot subscribe'), 'FORBIDDEN');
  assert.equal(authCloseReason(1002, 'invalid message'), null);
  assert.equal(authCloseReason(1006, 'token'), null, 'abnormal closure is a network problem');
  assert.equal(authCloseReason(1000, ''), null);
  assert.equal(authErrorCode([{ message: 'x', extensions: { code: 'FORBIDDEN' } }]), 'FORBIDDEN');
  assert.equal(authErrorCode([{ message: 'x', extensions: { code: 'LIMIT' } }]), null);
  assert.equal(authErrorCode(undefined), null);
});
