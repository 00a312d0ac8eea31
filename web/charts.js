// Inline SVG charts drawn by the page (no chart library).
// The *Geometry functions are pure (unit-tested); render* turn them into SVG elements.
import { s, fmtPct, fmtNum } from './util.js';

/** Funnel: one centred bar per stage, width proportional to `share` (0..1).
 * Returns {width, height, bars: [{x, y, w, h, status, reached, share}]}. */
export function funnelGeometry(stages, { width = 560, rowHeight = 30, gap = 6, labelWidth = 110, minBar = 2 } = {}) {
  const list = Array.isArray(stages) ? stages : [];
  const plot = Math.max(10, width - labelWidth * 2);
  const bars = list.map((st, i) => {
    const share = Math.min(1, Math.max(0, Number(st.share) || 0));
    const w = Math.max(st.reached > 0 ? minBar : 0, share * plot);
    return {
      x: labelWidth + (plot - w) / 2,
      y: i * (rowHeight + gap),
      w,
      h: rowHeight,
      status: String(st.status ?? ''),
      reached: Number(st.reached) || 0,
      share,
    };
  });
  const height = list.length ? list.length * (rowHeight + gap) - gap : rowHeight;
  return { width, height, labelWidth, bars };
}

export function renderFunnel(stages, opts = {}) {
  const g = funnelGeometry(stages, opts);
  const label = g.bars.length
    ? `Pipeline funnel: ${g.bars.map((b) => `${b.status} ${b.reached} (${fmtPct(b.share)})`).join(', ')}`
    : 'Pipeline funnel: no data';
  const svg = s('svg', {
    viewBox: `0 0 ${g.width} ${g.height}`, class: 'chart funnel', role: 'img', 'aria-label': label,
    preserveAspectRatio: 'xMidYMid meet',
  }, s('title', null, label));
  if (!g.bars.length) {
    svg.appendChild(s('text', { x: g.width / 2, y: g.height / 2 + 5, 'text-anchor': 'middle', class: 'chart-empty' }, 'No leads yet'));
    return svg;
  }
  g.bars.forEach((b, i) => {
    const mid = b.y + b.h / 2 + 4;
    svg.appendChild(s('g', { class: 'funnel-stage', 'data-status': b.status },
      s('title', null, `${b.status}: ${fmtNum(b.reached)} reached (${fmtPct(b.share)})`),
      s('rect', { x: b.x.toFixed(1), y: b.y, width: b.w.toFixed(1), height: b.h, rx: 3, class: `bar bar-${i % 6}` }),
      s('text', { x: g.labelWidth - 8, y: mid, 'text-anchor': 'end', class: 'chart-label' }, b.status),
      s('text', { x: g.width - g.labelWidth + 8, y: mid, 'text-anchor': 'start', class: 'chart-value' },
        `${fmtNum(b.reached)} · ${fmtPct(b.share)}`)));
  });
  return svg;
}

/** Nice upper bound for an axis: 1, 2, 5 × 10^k at or above `max`. */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * exp >= max) return m * exp;
  return 10 * exp;
}

/** Bar chart of counts per day. Returns {width, height, top, bars: [{x, y, w, h, day, count}], ticks}. */
export function perDayGeometry(days, { width = 560, height = 180, left = 34, bottom = 22, top = 8, right = 6, gap = 2 } = {}) {
  const list = Array.isArray(days) ? days : [];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...list.map((d) => Number(d.count) || 0)));
  const slot = list.length ? plotW / list.length : plotW;
  const bars = list.map((d, i) => {
    const count = Number(d.count) || 0;
    const h = (count / max) * plotH;
    return { x: left + i * slot + gap / 2, y: top + plotH - h, w: Math.max(1, slot - gap), h, day: String(d.day ?? ''), count };
  });
  const ticks = [0, max / 2, max].map((v) => ({ value: v, y: top + plotH - (v / max) * plotH }));
  return { width, height, left, top, plotW, plotH, max, bars, ticks };
}

export function renderPerDay(days, opts = {}) {
  const g = perDayGeometry(days, opts);
  const total = g.bars.reduce((a, b) => a + b.count, 0);
  const label = g.bars.length
    ? `Leads created per day, ${g.bars[0].day} to ${g.bars[g.bars.length - 1].day}: ${total} in total`
    : 'Leads created per day: no data';
  const svg = s('svg', {
    viewBox: `0 0 ${g.width} ${g.height}`, class: 'chart per-day', role: 'img', 'aria-label': label,
    preserveAspectRatio: 'xMidYMid meet',
  }, s('title', null, label));
  for (const t of g.ticks) {
    svg.appendChild(s('line', { x1: g.left, x2: g.left + g.plotW, y1: t.y.toFixed(1), y2: t.y.toFixed(1), class: 'grid' }));
    svg.appendChild(s('text', { x: g.left - 4, y: (t.y + 4).toFixed(1), 'text-anchor': 'end', class: 'chart-axis' },
      Number.isInteger(t.value) ? String(t.value) : t.value.toFixed(1)));
  }
  for (const b of g.bars) {
    svg.appendChild(s('rect', {
      x: b.x.toFixed(1), y: b.y.toFixed(1), width: b.w.toFixed(1), height: b.h.toFixed(1),
      class: 'bar bar-0', 'data-day': b.day, 'data-count': b.count,
    }, s('title', null, `${b.day}: ${b.count}`)));
  }
  if (g.bars.length) {
    const labelAt = [0, Math.floor((g.bars.length - 1) / 2), g.bars.length - 1];
    for (const i of [...new Set(labelAt)]) {
      const b = g.bars[i];
      const anchor = i === 0 ? 'start' : i === g.bars.length - 1 ? 'end' : 'middle';
      const x = anchor === 'start' ? b.x : anchor === 'end' ? b.x + b.w : b.x + b.w / 2;
      svg.appendChild(s('text', { x: x.toFixed(1), y: g.height - 6, 'text-anchor': anchor, class: 'chart-axis' }, b.day.slice(5)));
    }
  } else {
    svg.appendChild(s('text', { x: g.width / 2, y: g.height / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'No data'));
  }
  return svg;
}
