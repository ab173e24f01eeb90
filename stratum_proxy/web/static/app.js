// The stratum-proxy dashboard: three hash-routed views over the JSON API.
//
//   #/                 the farm: totals, charts, pools, block candidates, pipeline
//   #/workers          every worker in a sortable, filterable, paged table
//   #/worker/<name>    one worker: its series, histograms and shares
//
// The farm panels arrive through /api/events (Server-Sent Events read with
// fetch(), because EventSource cannot send an Authorization header); each
// update also triggers one re-fetch of whatever the current view shows.
//
// Every displayed figure carries the raw JSON number in `data-value`, so a
// test (or a curious user) can read exact values behind the rounded text.

/* global uPlot */

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

const PREFIXES = ['', 'k', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];

/**
 * [mantissa text, SI prefix] with 3 significant digits; integers under 1000
 * stay exact, and values under 0.001 (difficulties on a test chain) use an
 * exponent rather than a row of zeros.
 */
function siParts(x) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return ['—', ''];
  const a = Math.abs(x);
  if (a !== 0 && a < 0.001) return [x.toExponential(2), ''];
  if (a < 1000) return [Number.isInteger(x) ? String(x) : x.toPrecision(3), ''];
  let i = Math.min(Math.floor(Math.log10(a) / 3), PREFIXES.length - 1);
  let s = (x / 10 ** (3 * i)).toPrecision(3);
  // 999_950 rounds to "1.00e+3" k: move up one prefix instead.
  if (Math.abs(Number(s)) >= 1000 && i < PREFIXES.length - 1) {
    i += 1;
    s = (x / 10 ** (3 * i)).toPrecision(3);
  }
  return [s, PREFIXES[i]];
}

/** 1234567 → "1.23 M"; 12 → "12". */
function fmtSI(x) {
  const [s, p] = siParts(x);
  return p ? `${s} ${p}` : s;
}

/** Hashrate in H/s: 1.23e12 → "1.23 TH/s". */
function fmtRate(x) {
  const [s, p] = siParts(x);
  return s === '—' ? s : `${s} ${p}H/s`;
}

function fmtBytes(x) {
  const [s, p] = siParts(x);
  return s === '—' ? s : `${s} ${p}B`;
}

/** Milliseconds as an axis label: "250 ms", "1.5 s". */
function fmtAxisMs(ms) {
  return ms >= 1000 ? `${Number((ms / 1000).toPrecision(3))} s` : `${Number(ms.toPrecision(3))} ms`;
}

/** Axis labels: as fmtSI but without trailing zeros ("200 k", "1.5"). */
function fmtAxis(x, unit = '') {
  const [s, p] = siParts(x);
  const n = s === '—' || s.includes('e') ? s.replace(/\.?0+e/, 'e') : String(Number(s));
  return p || unit ? `${n} ${p}${unit}` : n;
}

/** Percent with 2 decimals; tiny non-zero values (progress to a block) keep 3 digits. */
function fmtPct(p) {
  if (typeof p !== 'number' || !Number.isFinite(p)) return '—';
  if (p !== 0 && Math.abs(p) < 0.01) return `${p.toPrecision(3)}%`;
  return `${p.toFixed(2)}%`;
}

function fmtMs(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  if (ms >= 1000) return `${(ms / 1000).toPrecision(3)} s`;
  return `${Number.isInteger(ms) ? ms : ms.toPrecision(3)} ms`;
}

function fmtInt(n) {
  return typeof n === 'number' ? n.toLocaleString('en-US') : '—';
}

const pad2 = (n) => String(n).padStart(2, '0');

/** Local HH:MM:SS. */
function fmtClock(ts) {
  if (typeof ts !== 'number') return '—';
  const d = new Date(ts * 1000);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

function fmtDate(ts) {
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
}

/** HH:MM:SS today, with the date in front for older times (block candidates span days). */
function fmtWhen(ts) {
  if (typeof ts !== 'number') return '—';
  const today = fmtDate(Date.now() / 1000);
  return fmtDate(ts) === today ? fmtClock(ts) : `${fmtDate(ts)} ${fmtClock(ts)}`;
}

function fmtAgo(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 120) return `${Math.round(s)} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

function fmtDuration(seconds) {
  if (typeof seconds !== 'number') return '—';
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return h ? `${d} d ${h} h` : `${d} d`;
  if (h) return m ? `${h} h ${m} min` : `${h} h`;
  if (m) return sec ? `${m} min ${sec} s` : `${m} min`;
  return `${sec} s`;
}

/** Hashes of shares start with zeros; the head and tail are enough to tell them apart. */
function shortHash(hash) {
  return hash && hash.length > 22 ? `${hash.slice(0, 12)}…${hash.slice(-8)}` : hash || '—';
}

// ---------------------------------------------------------------------------
// DOM helpers
// ---------------------------------------------------------------------------

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

/** Build an element. `props`: class, text, title, and any other attribute. */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) el.append(child);
  }
  return el;
}

/** The raw JSON value as an attribute: numbers as JS prints them, null as "null". */
function rawValue(value) {
  return value === null || value === undefined ? 'null' : String(value);
}

/** Show `text` and keep the unformatted number in data-value. */
function setNum(el, value, text) {
  el.textContent = text;
  el.dataset.value = rawValue(value);
}

function numCell(col, value, text, cls = 'n') {
  return h('td', { class: cls, 'data-col': col, 'data-value': rawValue(value), text });
}

function emptyRow(table, text) {
  const cols = $('thead tr', table).children.length;
  return h('tr', { class: 'empty' }, h('td', { colspan: cols, text }));
}

/** Make `from` look like `to` (attributes, text, children), reusing `from`'s nodes where they match. */
function morph(from, to) {
  for (const { name } of Array.from(from.attributes)) {
    if (!to.hasAttribute(name)) from.removeAttribute(name);
  }
  for (const { name, value } of Array.from(to.attributes)) {
    if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  }
  const a = from.childNodes;
  const b = to.childNodes;
  const same = a.length === b.length && Array.from(a).every((node, i) => node.nodeName === b[i].nodeName);
  if (!same) {
    from.replaceChildren(...Array.from(b));
    return;
  }
  for (let i = 0; i < a.length; i += 1) {
    if (a[i].nodeType === Node.TEXT_NODE) {
      if (a[i].data !== b[i].data) a[i].data = b[i].data;
    } else {
      morph(a[i], b[i]);
    }
  }
}

/**
 * Put `items` in `parent`, in order. An existing child with the same `keyAttr`
 * value is updated in place rather than replaced: live updates then neither
 * flicker nor detach the element a reader (or the mouse) is on.
 */
function syncChildren(parent, items, keyAttr) {
  const old = new Map();
  for (const child of Array.from(parent.children)) {
    const key = child.getAttribute(keyAttr);
    if (key !== null && !old.has(key)) old.set(key, child);
  }
  const next = items.map((item) => {
    const key = item.getAttribute(keyAttr);
    const existing = key === null ? undefined : old.get(key);
    if (!existing) return item;
    old.delete(key);
    morph(existing, item);
    return existing;
  });
  next.forEach((node, i) => {
    if (parent.children[i] !== node) parent.insertBefore(node, parent.children[i] || null);
  });
  while (parent.children.length > next.length) parent.lastElementChild.remove();
}

/** Table body rows keyed by `keyAttr`; an "empty" row when there are none. */
function fillBody(table, rows, emptyText, keyAttr) {
  const body = table.tBodies[0];
  if (!rows.length) body.replaceChildren(emptyRow(table, emptyText));
  else syncChildren(body, rows, keyAttr);
}

function workerHref(name) {
  return `#/worker/${encodeURIComponent(name)}`;
}

function verdictBadge(status, reason) {
  return h('span', { class: `verdict ${status}`, title: reason || undefined, text: status.replace('_', ' ') });
}

// Messages in the top bar, one per source, cleared by that source's next success.
const notices = new Map();

function setNotice(source, message) {
  if (message) notices.set(source, message);
  else notices.delete(source);
  const el = $('#notice');
  el.textContent = Array.from(notices.values()).join(' · ');
  el.hidden = notices.size === 0;
}

// ---------------------------------------------------------------------------
// API access and the token prompt
// ---------------------------------------------------------------------------

const TOKEN_KEY = 'stratum-proxy-token';
let memoryToken = null; // used only when sessionStorage is unavailable

function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return memoryToken;
  }
}

function storeToken(token) {
  memoryToken = token;
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    /* private mode: the in-memory copy lasts as long as the page */
  }
}

class HttpError extends Error {
  constructor(status, text) {
    super(`${status}${text ? `: ${text}` : ''}`);
    this.status = status;
  }
}

// All requests that meet a 401 wait on the same prompt.
let tokenPrompt = null;

function askForToken(refused) {
  if (tokenPrompt) return tokenPrompt;
  const overlay = $('#token-overlay');
  const form = $('#token-form');
  const input = $('input[name="token"]', form);
  $('#token-error').hidden = !refused;
  overlay.hidden = false;
  input.value = '';
  input.focus();
  tokenPrompt = new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) return;
      storeToken(token);
      input.value = '';
      overlay.hidden = true;
      form.onsubmit = null;
      tokenPrompt = null;
      resolve();
    };
  });
  return tokenPrompt;
}

/** fetch() with the stored token; a 401 asks for a token and tries again. */
async function apiFetch(path, init = {}) {
  for (;;) {
    const token = getToken();
    const headers = { ...(init.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, { ...init, headers, cache: 'no-store' });
    if (response.status !== 401) return response;
    await response.body?.cancel();
    await askForToken(Boolean(token));
  }
}

async function getJSON(path) {
  const response = await apiFetch(path, { headers: { Accept: 'application/json' } });
  if (!response.ok) throw new HttpError(response.status, (await response.text()).trim());
  return response.json();
}

/**
 * A panel's loader: calling it while a request is in flight queues exactly one
 * more run (which reads the then-current view and range), so updates never
 * stack requests for the same panel and the last state always wins.
 */
function panelLoader(source, load) {
  let running = false;
  let again = false;
  return async function run() {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        try {
          await load();
          setNotice(source, null);
        } catch (err) {
          setNotice(source, `${source}: ${err.message || err}`);
        }
      } while (again);
    } finally {
      running = false;
    }
  };
}

// ---------------------------------------------------------------------------
// Charts (uPlot)
// ---------------------------------------------------------------------------

const RANGES = ['5m', '1h', '24h', '7d'];

/** Colours and font from the CSS custom properties, so charts follow the theme. */
function chartTheme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  const size = Math.round(parseFloat(getComputedStyle(document.body).fontSize) * 0.85);
  return {
    fg: v('--fg'),
    muted: v('--muted'),
    grid: v('--grid'),
    hash: v('--c-hash'),
    hashFill: v('--c-hash-fill'),
    ok: v('--c-ok'),
    bad: v('--c-bad'),
    warn: v('--c-warn'),
    expected: v('--c-expected'),
    barFill: v('--c-bar-fill'),
    fontPx: size,
    font: `${size}px ${getComputedStyle(document.body).fontFamily}`,
  };
}

/** A y axis's width from its longest label (uPlot's default 50 px clips "123 TH/s"). */
function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1) return axis._size;
  let size = axis.ticks.size + axis.gap;
  const longest = (values || []).reduce((acc, val) => (val.length > acc.length ? val : acc), '');
  if (longest) {
    u.ctx.font = axis.font[0];
    size += u.ctx.measureText(longest).width / devicePixelRatio;
  }
  return Math.ceil(size);
}

function axis(theme, extra = {}) {
  return {
    stroke: theme.muted,
    font: theme.font,
    grid: { stroke: theme.grid, width: 1 },
    ticks: { stroke: theme.grid, width: 1, size: 4 },
    size: axisSize,
    ...extra,
  };
}

/** An x axis: one line of labels, so its height follows the font, not the label widths. */
function xAxis(theme, extra = {}) {
  return axis(theme, { size: Math.ceil(theme.fontPx * 1.4 + 10), space: 70, ...extra });
}

/** 24-hour local time labels, as precise as the tick spacing needs; dates at midnight. */
function timeAxisValues(u, splits, axisIdx, space, incr) {
  return splits.map((ts) => {
    const d = new Date(ts * 1000);
    const date = `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
    if (incr < 60) return fmtClock(ts);
    if (incr >= 86400 || (d.getHours() === 0 && d.getMinutes() === 0)) return date;
    return `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  });
}

const zeroBased = (u, min, max) => [0, max > 0 ? max * 1.08 : 1];

const charts = new Set();

/**
 * One uPlot chart in a container, with a small legend above it that shows the
 * values under the cursor, or `idle(chart)` ({x, values}) when the cursor is
 * away. `build(theme, chart)` returns uPlot options; `legend` lists {label,
 * colour key, format} per data series; `xLabel(chart, idx)` names a point.
 * The chart is created on the first data, sized to its box, and rebuilt when
 * the colour scheme changes.
 */
class Chart {
  constructor(el, { build, legend, xLabel, idle }) {
    this.build = build;
    this.legendDefs = legend;
    this.xLabel = xLabel;
    this.idle = idle;
    this.plot = null;
    this.data = null;
    this.meta = {};
    this.legend = h('div', { class: 'legend' });
    this.box = h('div', { class: 'plot' });
    this.note = h('div', { class: 'chart-note', hidden: true });
    el.replaceChildren(this.legend, this.box, this.note);
    // Resize on the next frame: resizing inside the observer can loop.
    new ResizeObserver(() => requestAnimationFrame(() => this.fit())).observe(this.box);
    charts.add(this);
  }

  size() {
    return { width: Math.max(this.box.clientWidth, 120), height: Math.max(this.box.clientHeight, 80) };
  }

  fit() {
    if (!this.plot) return;
    const { width, height } = this.size();
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }

  /** New data (uPlot's column layout); `meta` carries what axes need (range bounds, bin edges). */
  set(data, meta = {}, emptyText = '') {
    this.data = data;
    this.meta = meta;
    this.note.textContent = emptyText;
    this.note.hidden = !emptyText;
    if (!this.plot) this.create();
    else this.plot.setData(data);
    this.showLegend(null);
  }

  create() {
    const theme = chartTheme();
    this.theme = theme;
    const opts = this.build(theme, this);
    opts.legend = { show: false };
    opts.cursor = { drag: { x: false, y: false }, ...(opts.cursor || {}) };
    opts.hooks = { setCursor: [(u) => this.showLegend(u.cursor.idx)] };
    this.plot = new uPlot({ ...opts, ...this.size() }, this.data, this.box);
    this.renderLegendItems();
  }

  rebuild() {
    if (!this.plot) return;
    this.plot.destroy();
    this.plot = null;
    this.create();
    this.showLegend(null);
  }

  renderLegendItems() {
    this.legendX = h('span', { class: 'lx' });
    this.legendValues = this.legendDefs.map(() => h('b'));
    const items = this.legendDefs.map((def, i) =>
      h('span', { class: 'li' },
        h('i', { style: `background:${this.theme[def.color]}` }), `${def.label} `, this.legendValues[i]));
    this.legend.replaceChildren(this.legendX, ...items);
  }

  /** The values at data index `idx` (under the cursor), else the idle summary. */
  showLegend(idx) {
    if (!this.plot || !this.data) return;
    const hover = idx !== null && idx !== undefined;
    const { x, values } = hover
      ? { x: this.xLabel(this, idx), values: this.data.slice(1).map((col) => col[idx]) }
      : this.idle(this);
    this.legendX.textContent = x;
    this.legendDefs.forEach((def, i) => {
      const value = values[i];
      this.legendValues[i].textContent = value === null || value === undefined ? '—' : def.format(value);
    });
  }
}

// Rebuild charts with the new colours when the system switches dark/light.
matchMedia('(prefers-color-scheme: light)').addEventListener('change', () => {
  for (const chart of charts) chart.rebuild();
});

const timeLabel = (chart, idx) => fmtWhen(chart.data[0][idx]);

/** Time charts, cursor away: the newest bucket. */
function latestPoint(chart) {
  const n = chart.data[0].length;
  if (!n) return { x: '', values: [] };
  return { x: `latest ${fmtClock(chart.data[0][n - 1])}`, values: chart.data.slice(1).map((col) => col[n - 1]) };
}

/** The x scale spans the whole requested range, even where there are no buckets. */
function timeScale(chart) {
  return {
    time: true,
    range: (u, min, max) => [chart.meta.from ?? min ?? 0, chart.meta.to ?? max ?? 1],
  };
}

function hashrateSeries(theme) {
  return { label: 'hashrate', scale: 'H', stroke: theme.hash, fill: theme.hashFill, width: 1.5,
    points: { show: false } };
}

function rateSeries(theme, label, color) {
  return { label, scale: 'rate', stroke: theme[color], width: 1.5, points: { show: false },
    paths: uPlot.paths.stepped({ align: 1 }) };
}

const VERDICT_LEGEND = [
  { label: 'accepted', color: 'ok', format: (v) => `${fmtAxis(v)}/min` },
  { label: 'rejected', color: 'bad', format: (v) => `${fmtAxis(v)}/min` },
  { label: 'no response', color: 'warn', format: (v) => `${fmtAxis(v)}/min` },
];

function farmHashrateChart(el) {
  return new Chart(el, {
    legend: [{ label: 'hashrate', color: 'hash', format: fmtRate }],
    xLabel: timeLabel,
    idle: latestPoint,
    build: (theme, chart) => ({
      scales: { x: timeScale(chart), H: { range: zeroBased } },
      axes: [xAxis(theme, { values: timeAxisValues }), axis(theme, { scale: 'H', values: (u, s) => s.map((v) => fmtAxis(v, 'H/s')) })],
      series: [{}, hashrateSeries(theme)],
    }),
  });
}

function farmSharesChart(el) {
  return new Chart(el, {
    legend: VERDICT_LEGEND,
    xLabel: timeLabel,
    idle: latestPoint,
    build: (theme, chart) => ({
      scales: { x: timeScale(chart), rate: { range: zeroBased } },
      axes: [xAxis(theme, { values: timeAxisValues }), axis(theme, { scale: 'rate', values: (u, s) => s.map((v) => fmtAxis(v)) })],
      series: [{}, rateSeries(theme, 'accepted', 'ok'), rateSeries(theme, 'rejected', 'bad'),
        rateSeries(theme, 'no response', 'warn')],
    }),
  });
}

function workerSeriesChart(el) {
  return new Chart(el, {
    legend: [{ label: 'hashrate', color: 'hash', format: fmtRate }, ...VERDICT_LEGEND],
    xLabel: timeLabel,
    idle: latestPoint,
    build: (theme, chart) => ({
      scales: { x: timeScale(chart), H: { range: zeroBased }, rate: { range: zeroBased } },
      axes: [
        xAxis(theme, { values: timeAxisValues }),
        axis(theme, { scale: 'H', values: (u, s) => s.map((v) => fmtAxis(v, 'H/s')) }),
        axis(theme, { scale: 'rate', side: 1, grid: { show: false },
          values: (u, s) => s.map((v) => `${fmtAxis(v)}/min`) }),
      ],
      series: [{}, hashrateSeries(theme), rateSeries(theme, 'accepted', 'ok'),
        rateSeries(theme, 'rejected', 'bad'), rateSeries(theme, 'no response', 'warn')],
    }),
  });
}

/** Series columns: shares per minute = count * 60 / step_s. */
function seriesColumns(series, withHashrate) {
  const k = 60 / (series.step_s || 60);
  const perMinute = (counts) => counts.map((c) => c * k);
  const cols = [series.t];
  if (withHashrate) cols.push(series.hashrate);
  cols.push(perMinute(series.accepted), perMinute(series.rejected), perMinute(series.no_response));
  return cols;
}

/**
 * A histogram over bins [edges[i], edges[i+1]): bars of counts drawn at bin
 * centres in bin-index space (so log bins are evenly wide), labelled with the
 * edges; an optional `expected` line on top.
 */
function histogramChart(el, { label, withExpected }) {
  const legend = [{ label: 'shares', color: 'hash', format: fmtSI }];
  if (withExpected) legend.push({ label: 'expected', color: 'expected', format: fmtSI });
  const sum = (col) => col.reduce((a, b) => a + b, 0);
  return new Chart(el, {
    legend,
    // Cursor away: totals over all bins.
    idle: (chart) => ({ x: chart.data[0].length ? 'all bins' : '', values: chart.data.slice(1).map(sum) }),
    xLabel: (chart, idx) => {
      const e = chart.meta.edges;
      return `${label(e[idx])} – ${label(e[idx + 1])}`;
    },
    build: (theme, chart) => {
      const bins = (u) => Math.max(1, u.data[0].length);
      // Label every edge there is room for.
      const splits = (u) => {
        const n = u.data[0].length;
        if (!n) return [];
        const room = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / 56));
        const every = Math.ceil((n + 1) / room);
        const out = [];
        for (let i = 0; i <= n; i += every) out.push(i);
        return out;
      };
      const series = [{},
        { label: 'shares', stroke: theme.hash, fill: theme.barFill, width: 1,
          paths: uPlot.paths.bars({ size: [0.9, Infinity], align: 0 }), points: { show: false } }];
      if (withExpected) {
        series.push({ label: 'expected', stroke: theme.expected, width: 2, dash: [6, 4],
          points: { show: true, size: 4, fill: theme.expected } });
      }
      return {
        scales: { x: { time: false, range: (u) => [0, bins(u)] }, y: { range: zeroBased } },
        axes: [
          xAxis(theme, { splits, grid: { show: false },
            values: (u, s) => s.map((i) => (chart.meta.edges[i] === undefined ? '' : label(chart.meta.edges[i]))) }),
          axis(theme, { values: (u, s) => s.map((v) => fmtAxis(v)) }),
        ],
        series,
      };
    },
  });
}

/** Histogram JSON → chart data: x at bin centres 0.5, 1.5, ... */
function setHistogram(chart, hist, withExpected) {
  const counts = hist.counts || [];
  const x = counts.map((_, i) => i + 0.5);
  const data = withExpected ? [x, counts, hist.expected || []] : [x, counts];
  chart.set(data, { edges: hist.edges || [] }, counts.length ? '' : 'no shares yet');
}

/** Range buttons; `onPick(range)` when one is clicked. */
function rangeButtons(container, initial, onPick) {
  const buttons = RANGES.map((r) => h('button', { type: 'button', 'data-range': r, text: r }));
  const mark = (range) => buttons.forEach((b) => b.setAttribute('aria-pressed', String(b.dataset.range === range)));
  container.replaceChildren(...buttons);
  mark(initial);
  container.addEventListener('click', (event) => {
    const button = event.target.closest('button[data-range]');
    if (!button) return;
    mark(button.dataset.range);
    onPick(button.dataset.range);
  });
}

// ---------------------------------------------------------------------------
// State and routing
// ---------------------------------------------------------------------------

const state = {
  route: { view: 'farm', worker: null },
  farmRange: '1h',
  workerRange: '1h',
  lastFarm: null,
  charts: {},
};

function parseRoute(hash) {
  const path = hash.replace(/^#/, '') || '/';
  if (path === '/workers') return { view: 'workers', worker: null };
  if (path.startsWith('/worker/')) {
    try {
      const name = decodeURIComponent(path.slice('/worker/'.length));
      if (name) return { view: 'worker', worker: name };
    } catch {
      /* a malformed escape: fall through to the farm */
    }
  }
  return { view: 'farm', worker: null };
}

function routeKey(route) {
  return route.view === 'worker' ? `worker:${route.worker}` : route.view;
}

function showRoute() {
  const route = parseRoute(location.hash);
  state.route = route;
  for (const view of ['farm', 'workers', 'worker']) {
    $(`#${view}-view`).hidden = view !== route.view;
  }
  for (const link of $$('[data-nav]')) {
    link.classList.toggle('active', link.dataset.nav === route.view);
  }
  if (route.view === 'worker') enterWorker(route.worker);
  refreshView();
}

/** Re-fetch what the current view shows (on entering it and on every update). */
function refreshView() {
  switch (state.route.view) {
    case 'farm':
      loadFarmSeries();
      break;
    case 'workers':
      loadWorkers();
      break;
    case 'worker':
      loadWorker();
      loadWorkerSeries();
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------------------
// Farm view
// ---------------------------------------------------------------------------

const REASONS = [
  ['stale', 'stale'],
  ['duplicate', 'duplicate'],
  ['low_difficulty', 'low difficulty'],
  ['other', 'other'],
  ['proxy', 'proxy-judged'],
];

function renderFarm(farm) {
  // A slow /api/farm answer must not overwrite a newer event.
  if (state.lastFarm && farm.now < state.lastFarm.now) return;
  state.lastFarm = farm;
  const t = farm.totals;
  setNum($('#farm-hashrate'), t.hashrate, fmtRate(t.hashrate));
  setNum($('#farm-total-shares'), t.total_shares, fmtSI(t.total_shares));
  setNum($('#farm-accepted'), t.accepted_shares, fmtSI(t.accepted_shares));
  setNum($('#farm-rejected'), t.rejected_shares, fmtSI(t.rejected_shares));
  setNum($('#farm-no-response'), t.no_response_shares, fmtSI(t.no_response_shares));
  setNum($('#farm-acceptance'), t.acceptance_pct, t.total_shares ? fmtPct(t.acceptance_pct) : '—');
  setNum($('#farm-workers-up'), farm.workers_up, fmtSI(farm.workers_up));
  setNum($('#farm-workers-down'), farm.workers_down, fmtSI(farm.workers_down));
  $('#farm-workers-down').classList.toggle('warn', farm.workers_down > 0);
  setNum($('#farm-down-after'), farm.down_after_s, fmtDuration(farm.down_after_s));
  renderBest(farm.best);
  renderLuck(farm.luck, t);
  renderReasons(farm.reject_reasons);
  renderPools(farm.pools);
  renderCandidates(farm.block_candidates);
  renderPipeline(farm.pipeline, farm.live, farm.now);
  $('#farm-view').dataset.ready = '1';
}

function renderProgress(key, progress) {
  const pct = typeof progress === 'number' ? progress * 100 : null;
  // Past 100 % the share was a block; a multiple reads better than "112130447.74%".
  const text = pct !== null && pct >= 1000 ? `${fmtSI(progress)}× a block` : fmtPct(pct);
  setNum($(`#farm-progress-${key}`), progress, text);
  // At least a sliver when non-zero: progress toward a block is usually tiny.
  const width = pct ? Math.max(Math.min(pct, 100), 0.5) : 0;
  $(`#farm-progress-${key}-bar`).style.width = `${width}%`;
}

function renderBest(best) {
  setNum($('#farm-best-session'), best.session, best.session === null ? 'no session' : fmtSI(best.session));
  setNum($('#farm-best-ever'), best.ever, fmtSI(best.ever));
  setNum($('#farm-network-difficulty'), best.network_difficulty, fmtSI(best.network_difficulty));
  renderProgress('session', best.progress_session);
  renderProgress('ever', best.progress_ever);
}

function renderLuck(luck, totals) {
  setNum($('#farm-luck'), luck.luck_pct, fmtPct(luck.luck_pct));
  setNum($('#farm-found-blocks'), luck.found_blocks, fmtSI(luck.found_blocks));
  const expected = luck.expected_blocks;
  setNum($('#farm-expected-blocks'), expected, fmtSI(expected));
  setNum($('#farm-candidates-count'), totals.block_candidates,
    `${fmtSI(totals.block_candidates)} (${fmtSI(totals.block_candidates_accepted)} accepted)`);
}

function renderReasons(reasons) {
  const max = Math.max(1, ...REASONS.map(([key]) => reasons[key] || 0));
  const rows = REASONS.map(([key, label]) => {
    const n = reasons[key] ?? 0;
    return h('div', { class: 'reason', 'data-reason': key, 'data-value': rawValue(reasons[key] ?? 0) },
      h('span', { class: 'label', text: label }),
      h('span', { class: 'bar' }, h('i', { style: `width:${(100 * n) / max}%` })),
      h('span', { class: 'num', text: fmtSI(n) }));
  });
  syncChildren($('#reasons'), rows, 'data-reason');
}

function statusDot(status, title) {
  return h('span', { class: `status ${status}`, title: title || undefined, text: status });
}

function renderPools(pools) {
  const rows = pools.map((p) =>
    h('tr', { 'data-pool': p.upstream },
      h('td', { 'data-col': 'upstream', 'data-value': p.upstream, text: p.upstream }),
      h('td', { 'data-col': 'status', 'data-value': p.status }, statusDot(p.status, p.last_error)),
      numCell('shares', p.shares, fmtSI(p.shares)),
      numCell('accepted', p.accepted, fmtSI(p.accepted)),
      numCell('rejected', p.rejected, fmtSI(p.rejected)),
      numCell('no_response', p.no_response, fmtSI(p.no_response)),
      numCell('acceptance_pct', p.acceptance_pct, p.shares ? fmtPct(p.acceptance_pct) : '—'),
      numCell('p50_ms', p.p50_ms, fmtMs(p.p50_ms)),
      numCell('p99_ms', p.p99_ms, fmtMs(p.p99_ms)),
      numCell('hashrate', p.hashrate, fmtRate(p.hashrate)),
      numCell('hashrate_pct', p.hashrate_pct, fmtPct(p.hashrate_pct))));
  fillBody($('#pools-table'), rows, 'no pools yet', 'data-pool');
}

function hashCell(hash) {
  return h('td', { class: 'hash', 'data-col': 'share_hash', 'data-value': hash, title: hash || undefined, text: shortHash(hash) });
}

function timeCell(ts) {
  return h('td', { class: 'time', 'data-col': 'ts', 'data-value': rawValue(ts), title: ts ? new Date(ts * 1000).toString() : undefined, text: fmtWhen(ts) });
}

function workerLink(name) {
  return h('a', { href: workerHref(name), text: name });
}

function renderCandidates(candidates) {
  const rows = candidates.map((c) =>
    h('tr', { 'data-hash': c.share_hash },
      timeCell(c.ts),
      h('td', { 'data-col': 'worker', 'data-value': c.worker }, workerLink(c.worker)),
      h('td', { 'data-col': 'upstream', 'data-value': c.upstream, text: c.upstream }),
      hashCell(c.share_hash),
      numCell('share_difficulty', c.share_difficulty, fmtSI(c.share_difficulty)),
      numCell('network_difficulty', c.network_difficulty, fmtSI(c.network_difficulty)),
      h('td', { 'data-col': 'status', 'data-value': c.status }, verdictBadge(c.status, c.reject_reason),
        c.reject_reason ? h('span', { class: 'reason-text', text: ` ${c.reject_reason}` }) : null)));
  fillBody($('#candidates-table'), rows, 'no block candidates yet', 'data-hash');
}

function pipelineRow(field, label, value, text, cls = '') {
  return h('div', { class: `kvrow ${cls}`, 'data-field': field, 'data-value': rawValue(value) },
    h('span', { class: 'k', text: label }), h('span', { class: 'v', text }));
}

function renderPipeline(pipeline, live, now) {
  const box = $('#pipeline');
  if (!pipeline) {
    box.replaceChildren(h('p', { class: 'hint', text: 'no daemon: browsing a store' }));
    return;
  }
  const p = pipeline;
  const ago = p.last_write_ts === null ? 'never' : fmtAgo(now - p.last_write_ts);
  const rows = [
    pipelineRow('store_up', 'store', p.store_up, p.store_up ? 'up' : 'down', p.store_up ? 'ok' : 'bad'),
    pipelineRow('last_write_ts', 'last write', p.last_write_ts, ago),
    pipelineRow('queue_rows', 'queue rows', p.queue_rows, fmtSI(p.queue_rows)),
    pipelineRow('spool_rows', 'spool rows', p.spool_rows, fmtSI(p.spool_rows)),
    pipelineRow('spool_bytes', 'spool', p.spool_bytes, fmtBytes(p.spool_bytes)),
    pipelineRow('rows_shed', 'rows shed', p.rows_shed, fmtSI(p.rows_shed), p.rows_shed ? 'warn' : ''),
    pipelineRow('rows_dead_lettered', 'dead-lettered', p.rows_dead_lettered, fmtSI(p.rows_dead_lettered),
      p.rows_dead_lettered ? 'bad' : ''),
  ];
  if (live) {
    rows.push(pipelineRow('connections', 'miner connections', live.connections, fmtSI(live.connections)));
    rows.push(pipelineRow('uptime_s', 'uptime', live.uptime_s, fmtDuration(live.uptime_s)));
  }
  syncChildren(box, rows, 'data-field');
}

const loadFarm = panelLoader('farm', async () => {
  renderFarm(await getJSON('/api/farm?hours=24'));
});

const loadFarmSeries = panelLoader('series', async () => {
  const range = state.farmRange;
  const series = await getJSON(`/api/series?range=${range}`);
  if (state.route.view !== 'farm' || state.farmRange !== range) return; // stale: the next run redraws
  const c = state.charts;
  c.farmHashrate ??= farmHashrateChart($('#farm-hashrate-chart'));
  c.farmShares ??= farmSharesChart($('#farm-shares-chart'));
  const meta = { from: series.from, to: series.to };
  const empty = series.t.length ? '' : 'no shares yet';
  c.farmHashrate.set([series.t, series.hashrate], meta, empty);
  c.farmShares.set(seriesColumns(series, false), meta, empty);
});

// ---------------------------------------------------------------------------
// Workers view
// ---------------------------------------------------------------------------

const PAGE_SIZE = 100;
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

const workers = {
  rows: [],
  now: 0,
  sort: 'worker',
  dir: 1, // 1 ascending, -1 descending
  filter: '',
  downOnly: false,
  page: 0,
  loaded: false,
};

/** Filter then sort in memory (10,000 rows take a few ms), ties by name. */
function visibleWorkers() {
  const needle = workers.filter.toLowerCase();
  let rows = workers.rows;
  if (needle) rows = rows.filter((w) => w.worker.toLowerCase().includes(needle));
  if (workers.downOnly) rows = rows.filter((w) => w.status === 'down');
  const { sort, dir } = workers;
  const byName = (a, b) => collator.compare(a.worker, b.worker);
  const cmp = sort === 'worker' || sort === 'status'
    ? (a, b) => (sort === 'status' ? a.status.localeCompare(b.status) : 0) || byName(a, b)
    : (a, b) => (a[sort] - b[sort]) || byName(a, b);
  return rows.slice().sort((a, b) => dir * cmp(a, b));
}

function workerRow(w, now) {
  return h('tr', { 'data-worker': w.worker, class: w.status === 'down' ? 'is-down' : undefined },
    h('td', { 'data-col': 'worker', 'data-value': w.worker }, workerLink(w.worker)),
    h('td', { 'data-col': 'status', 'data-value': w.status }, statusDot(w.status)),
    numCell('hashrate', w.hashrate, fmtRate(w.hashrate)),
    numCell('accepted', w.accepted, fmtSI(w.accepted)),
    numCell('rejected', w.rejected, fmtSI(w.rejected)),
    numCell('no_response', w.no_response, fmtSI(w.no_response)),
    numCell('acceptance_pct', w.acceptance_pct, w.shares ? fmtPct(w.acceptance_pct) : '—'),
    numCell('avg_pool_difficulty', w.avg_pool_difficulty, fmtSI(w.avg_pool_difficulty)),
    numCell('best_share', w.best_share, fmtSI(w.best_share)),
    h('td', { class: 'n', 'data-col': 'last_ts', 'data-value': rawValue(w.last_ts),
      title: fmtWhen(w.last_ts), text: fmtAgo(now - w.last_ts) }));
}

/** Draw only the current page: the DOM never holds more than PAGE_SIZE rows. */
function renderWorkers() {
  const rows = visibleWorkers();
  const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
  workers.page = Math.min(workers.page, pages - 1);
  const start = workers.page * PAGE_SIZE;
  const page = rows.slice(start, start + PAGE_SIZE);
  const empty = workers.rows.length ? 'no worker matches' : 'no shares yet';
  fillBody($('#workers-table'), page.map((w) => workerRow(w, workers.now)), empty, 'data-worker');
  const where = rows.length
    ? `${fmtInt(start + 1)}–${fmtInt(start + page.length)} of ${fmtInt(rows.length)}` : '0 of 0';
  for (const pager of $$('#workers-view .pager')) {
    $('.page-text', pager).textContent = where;
    $('[data-page="prev"]', pager).disabled = workers.page === 0;
    $('[data-page="next"]', pager).disabled = workers.page >= pages - 1;
  }
  const down = workers.rows.reduce((n, w) => n + (w.status === 'down'), 0);
  $('#workers-count').textContent = `${fmtInt(workers.rows.length)} workers, ${fmtInt(down)} down`;
  for (const th of $$('#workers-table th[data-sort]')) {
    const on = th.dataset.sort === workers.sort;
    th.classList.toggle('asc', on && workers.dir === 1);
    th.classList.toggle('desc', on && workers.dir === -1);
    th.setAttribute('aria-sort', on ? (workers.dir === 1 ? 'ascending' : 'descending') : 'none');
  }
}

const loadWorkers = panelLoader('workers', async () => {
  const answer = await getJSON('/api/workers?hours=24');
  workers.rows = answer.workers;
  workers.now = answer.now;
  if (state.route.view !== 'workers') return;
  renderWorkers();
  $('#workers-view').dataset.ready = '1';
});

function setupWorkersControls() {
  $('#workers-filter').addEventListener('input', (event) => {
    workers.filter = event.target.value;
    workers.page = 0;
    renderWorkers();
  });
  $('#workers-down-only').addEventListener('change', (event) => {
    workers.downOnly = event.target.checked;
    workers.page = 0;
    renderWorkers();
  });
  // The pagers above and below the table.
  $('#workers-view').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-page]');
    if (!button) return;
    workers.page = Math.max(0, workers.page + (button.dataset.page === 'next' ? 1 : -1));
    renderWorkers();
  });
  const sortBy = (th) => {
    const key = th.dataset.sort;
    if (workers.sort === key) workers.dir = -workers.dir;
    else {
      workers.sort = key;
      // Names read best A→Z; figures are most useful largest first.
      workers.dir = key === 'worker' || key === 'status' ? 1 : -1;
    }
    workers.page = 0;
    renderWorkers();
  };
  const head = $('#workers-table thead');
  head.addEventListener('click', (event) => {
    const th = event.target.closest('th[data-sort]');
    if (th) sortBy(th);
  });
  head.addEventListener('keydown', (event) => {
    const th = event.target.closest('th[data-sort]');
    if (th && (event.key === 'Enter' || event.key === ' ')) {
      event.preventDefault();
      sortBy(th);
    }
  });
  // A click anywhere on a row opens the worker (the name is also a real link).
  $('#workers-table tbody').addEventListener('click', (event) => {
    const tr = event.target.closest('tr[data-worker]');
    if (tr && !event.target.closest('a')) location.hash = workerHref(tr.dataset.worker);
  });
}

// ---------------------------------------------------------------------------
// Worker view
// ---------------------------------------------------------------------------

/** Server time as of the last farm update (relative times then ignore the browser's clock). */
function serverNow() {
  return state.lastFarm ? state.lastFarm.now : Date.now() / 1000;
}

// A time card: the clock in big, its date and age below.
const timeSub = (ts) => (typeof ts === 'number' ? `${fmtDate(ts)} · ${fmtAgo(serverNow() - ts)}` : '');

// [field of the stats, label, format, colour class, sub line]
const WORKER_CARDS = [
  ['hashrate', 'Hashrate', fmtRate],
  ['shares', 'Shares', fmtSI],
  ['accepted', 'Accepted', fmtSI, 'ok'],
  ['rejected', 'Rejected', fmtSI, 'bad'],
  ['no_response', 'No response', fmtSI, 'warn'],
  ['acceptance_pct', 'Acceptance', fmtPct],
  ['best_share', 'Best share', fmtSI],
  ['avg_pool_difficulty', 'Avg pool difficulty', fmtSI],
  ['avg_share_difficulty', 'Avg share difficulty', fmtSI],
  ['block_candidates', 'Block candidates', fmtSI, '',
    (s) => `${fmtSI(s.block_candidates_accepted)} accepted, ${fmtSI(s.block_candidates_rejected)} rejected`],
  ['first_ts', 'First share', fmtClock, '', (s) => timeSub(s.first_ts)],
  ['last_ts', 'Last share', fmtClock, '', (s) => timeSub(s.last_ts)],
];

const EMPTY_STATS = {
  hashrate: 0, shares: 0, accepted: 0, rejected: 0, no_response: 0, acceptance_pct: 0,
  best_share: 0, avg_pool_difficulty: 0, avg_share_difficulty: 0, block_candidates: 0,
  block_candidates_accepted: 0, block_candidates_rejected: 0, first_ts: null, last_ts: null,
  status: null,
};

function setupWorkerCards() {
  const cards = WORKER_CARDS.map(([field, label, , cls, sub]) =>
    h('div', { class: 'card' }, h('h3', { text: label }),
      h('div', { class: `big ${cls || ''}`, 'data-field': field, text: '—' }),
      sub ? h('div', { class: 'sub', 'data-sub': field }) : null));
  $('#worker-cards').replaceChildren(...cards);
}

/** A different worker: forget the previous one's figures before the new ones arrive. */
function enterWorker(name) {
  const view = $('#worker-view');
  const nav = $('#nav-worker');
  nav.href = workerHref(name);
  nav.textContent = `Worker: ${name}`;
  nav.classList.add('shown');
  if (view.dataset.worker === name) return;
  view.dataset.worker = name;
  delete view.dataset.ready;
  $('#worker-name').textContent = name;
  $('#worker-status').replaceChildren();
  $('#worker-note').textContent = '';
  for (const el of $$('#worker-cards [data-field]')) {
    el.textContent = '—';
    delete el.dataset.value;
  }
  for (const el of $$('#worker-cards [data-sub]')) el.textContent = '';
  for (const id of ['#worker-recent', '#worker-best']) fillBody($(id), [], 'loading…', 'data-hash');
  const c = state.charts;
  c.workerSeries?.set([[], [], [], [], []], {}, '');
  c.diffHist?.set([[], [], []], { edges: [] }, '');
  c.respHist?.set([[], []], { edges: [] }, '');
}

function renderWorkerCards(stats) {
  const s = stats || EMPTY_STATS;
  for (const [field, , format, , sub] of WORKER_CARDS) {
    const value = s[field];
    const text = field === 'acceptance_pct' && !s.shares ? '—' : format(value);
    setNum($(`#worker-cards [data-field="${field}"]`), value, text);
    if (sub) $(`#worker-cards [data-sub="${field}"]`).textContent = stats ? sub(s) : '';
  }
  $('#worker-status').replaceChildren(stats ? statusDot(stats.status) : '');
  $('#worker-note').textContent = stats ? '' : 'no shares in the last 24 h';
}

function shareRows(shares, columns) {
  return shares.map((s) => h('tr', { 'data-hash': s.share_hash }, ...columns(s)));
}

function renderWorkerTables(answer) {
  const recent = shareRows(answer.recent_shares, (s) => [
    timeCell(s.ts), hashCell(s.share_hash),
    numCell('share_difficulty', s.share_difficulty, fmtSI(s.share_difficulty)),
    numCell('pool_difficulty', s.pool_difficulty, fmtSI(s.pool_difficulty)),
    h('td', { 'data-col': 'status', 'data-value': s.status }, verdictBadge(s.status, s.reject_reason)),
    h('td', { class: 'reason-text', 'data-col': 'reject_reason', 'data-value': s.reject_reason,
      text: s.reject_reason || '' }),
  ]);
  fillBody($('#worker-recent'), recent, 'no shares yet', 'data-hash');
  const best = shareRows(answer.best_shares, (s) => [
    timeCell(s.ts), hashCell(s.share_hash),
    numCell('share_difficulty', s.share_difficulty, fmtSI(s.share_difficulty)),
    h('td', { 'data-col': 'upstream', 'data-value': s.upstream, text: s.upstream }),
    h('td', { 'data-col': 'status', 'data-value': s.status }, verdictBadge(s.status, s.reject_reason)),
  ]);
  fillBody($('#worker-best'), best, 'no shares yet', 'data-hash');
}

const loadWorker = panelLoader('worker', async () => {
  const name = state.route.worker;
  const answer = await getJSON(`/api/worker?name=${encodeURIComponent(name)}&hours=24`);
  if (routeKey(state.route) !== `worker:${name}`) return;
  renderWorkerCards(answer.stats);
  renderWorkerTables(answer);
  const c = state.charts;
  c.diffHist ??= histogramChart($('#worker-diff-hist'), { label: fmtAxis, withExpected: true });
  c.respHist ??= histogramChart($('#worker-resp-hist'), { label: fmtAxisMs, withExpected: false });
  setHistogram(c.diffHist, answer.difficulty_histogram, true);
  setHistogram(c.respHist, answer.response_histogram, false);
  $('#worker-view').dataset.ready = '1';
});

const loadWorkerSeries = panelLoader('worker series', async () => {
  const name = state.route.worker;
  const range = state.workerRange;
  const series = await getJSON(`/api/series?range=${range}&worker=${encodeURIComponent(name)}`);
  if (routeKey(state.route) !== `worker:${name}` || state.workerRange !== range) return;
  state.charts.workerSeries ??= workerSeriesChart($('#worker-series-chart'));
  state.charts.workerSeries.set(seriesColumns(series, true), { from: series.from, to: series.to },
    series.t.length ? '' : 'no shares yet');
});

// ---------------------------------------------------------------------------
// Live updates: /api/events
// ---------------------------------------------------------------------------

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
// The server pings every 15 s; a stream silent for longer than this is dead.
const STALL_MS = 45000;

function setConnState(live) {
  const el = $('#conn-state');
  const text = live ? 'live' : 'reconnecting';
  el.textContent = text;
  el.dataset.state = text;
}

/**
 * Parse a text/event-stream body: `event:` and `data:` lines, a blank line
 * ends an event, lines starting with ":" are comments. Calls onEvent({type,
 * data}) per event and onBytes() per chunk (to keep the stall timer alive).
 */
async function readEventStream(body, onEvent, onBytes) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let type = '';
  let data = [];
  const line = (text) => {
    if (text === '') {
      if (data.length) onEvent({ type: type || 'message', data: data.join('\n') });
      type = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
    // "id" and "retry" are ignored: reconnection has its own backoff.
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onBytes();
    buffer += value;
    let start = 0;
    for (;;) {
      const nl = buffer.slice(start).search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const end = start + nl;
      // A lone "\r" at the end may be half of "\r\n": wait for the next chunk.
      if (buffer[end] === '\r' && end + 1 === buffer.length) break;
      line(buffer.slice(start, end));
      start = end + (buffer.startsWith('\r\n', end) ? 2 : 1);
    }
    buffer = buffer.slice(start);
  }
}

function onServerEvent(event) {
  if (event.type === 'update') {
    let update;
    try {
      update = JSON.parse(event.data);
    } catch {
      setNotice('events', 'events: an update could not be read');
      return;
    }
    try {
      renderFarm(update.farm);
      setNum($('#farm-updated'), update.farm.now, fmtClock(update.farm.now));
      setNotice('events', null);
    } catch (err) {
      // A drawing problem must not look like a broken stream (and reconnect forever).
      setNotice('events', `events: an update could not be drawn (${err.message})`);
    }
    refreshView();
  } else if (event.type === 'error') {
    // The server could not compute the panels this time (store down or busy).
    let message = event.data;
    try {
      message = JSON.parse(event.data).error;
    } catch {
      /* plain text */
    }
    setNotice('events', `store: ${message}`);
  }
}

/** One connection: resolves when the stream ends or stalls; `true` if it delivered an event. */
async function followEvents() {
  const abort = new AbortController();
  let stall = null;
  const alive = () => {
    clearTimeout(stall);
    stall = setTimeout(() => abort.abort(), STALL_MS);
  };
  let delivered = false;
  try {
    const response = await apiFetch('/api/events', { signal: abort.signal, headers: { Accept: 'text/event-stream' } });
    if (!response.ok) {
      await response.body?.cancel();
      throw new HttpError(response.status, '');
    }
    setConnState(true);
    alive(); // armed only now: waiting for a token at the prompt is not a stall
    await readEventStream(response.body, (event) => {
      delivered = true;
      onServerEvent(event);
    }, alive);
  } catch {
    /* network error, abort on stall, server gone: reconnect below */
  } finally {
    clearTimeout(stall);
    abort.abort();
  }
  return delivered;
}

async function runEvents() {
  let delay = BACKOFF_MIN_MS;
  for (;;) {
    const delivered = await followEvents();
    setConnState(false);
    if (delivered) delay = BACKOFF_MIN_MS; // it worked for a while: start the backoff over
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, BACKOFF_MAX_MS);
  }
}

// ---------------------------------------------------------------------------
// Start
// ---------------------------------------------------------------------------

function start() {
  setupWorkerCards();
  setupWorkersControls();
  rangeButtons($('[data-ranges="farm"]'), state.farmRange, (range) => {
    state.farmRange = range;
    loadFarmSeries();
  });
  rangeButtons($('[data-ranges="worker"]'), state.workerRange, (range) => {
    state.workerRange = range;
    loadWorkerSeries();
  });
  window.addEventListener('hashchange', showRoute);
  showRoute();
  loadFarm(); // the first panels without waiting for the stream's first update
  runEvents();
}

start();
