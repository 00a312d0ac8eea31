// Unit tests of the chart geometry (the SVG drawing itself is checked in the browser).
import test from 'node:test';
import assert from 'node:assert/strict';
import { funnelGeometry, perDayGeometry, niceMax } from '../charts.js';

test('funnel bars are centred and proportional to share', () => {
  const g = funnelGeometry([
    { status: 'new', reached: 100, share: 1 },
    { status: 'won', reached: 25, share: 0.25 },
    { status: 'lost', reached: 0, share: 0 },
  ], { width: 500, labelWidth: 100, rowHeight: 20, gap: 5 });
  const plot = 300;
  assert.equal(g.bars.length, 3);
  assert.equal(g.bars[0].w, plot);
  assert.equal(g.bars[0].x, 100);
  assert.equal(g.bars[1].w, plot / 4);
  assert.equal(g.bars[1].x + g.bars[1].w / 2, 100 + plot / 2, 'centred');
  assert.equal(g.bars[2].w, 0, 'nobody reached: no bar');
  assert.equal(g.bars[2].y, 50);
  assert.equal(g.height, 3 * 25 - 5);
});

test('funnel keeps a visible sliver for tiny shares and clamps bad input', () => {
  const g = funnelGeometry([{ status: 'x', reached: 1, share: 0.0001 }, { status: 'y', reached: 5, share: 7 }]);
  assert.ok(g.bars[0].w >= 2);
  assert.equal(g.bars[1].share, 1);
  assert.deepEqual(funnelGeometry(null).bars, []);
});

test('niceMax rounds up to 1/2/5 steps', () => {
  assert.equal(niceMax(0), 1);
  assert.equal(niceMax(1), 1);
  assert.equal(niceMax(3), 5);
  assert.equal(niceMax(7), 10);
  assert.equal(niceMax(11), 20);
  assert.equal(niceMax(250), 500);
});

test('per-day bars fill the plot and scale to the nice max', () => {
  const days = Array.from({ length: 30 }, (_, i) => ({ day: `2026-11-${String(i + 1).padStart(2, '0')}`, count: i === 29 ? 8 : 2 }));
  const g = perDayGeometry(days, { width: 330, height: 120, left: 30, right: 0, top: 10, bottom: 10, gap: 2 });
  assert.equal(g.bars.length, 30);
  assert.equal(g.max, 10);
  const last = g.bars[29];
  assert.equal(last.h, 80, '8 of 10 over a 100px plot');
  assert.equal(last.y + last.h, 110, 'bars stand on the baseline');
  assert.ok(Math.abs(last.x + last.w + 1 - 330) < 1e-9, 'last bar ends at the right edge');
  assert.equal(g.ticks[2].y, 10);
});

test('per-day handles no data', () => {
  const g = perDayGeometry([]);
  assert.equal(g.bars.length, 0);
  assert.equal(g.max, 1);
});
