// The daemon's live page: the panel catalogue (/page/catalogue.json) drawn from the daemon's
// own Prometheus-shaped query API, alerts first. No outside request: uPlot is served by the
// daemon. Each panel's element says how it went in data-state (loading, data, empty, error),
// which the page's test reads.
'use strict';

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  e.append(...kids);
  return e;
};

const state = { range: 300, every: 5, paused: false, group: null, timer: null, cat: null, panels: [] };

async function api(path, params) {
  const r = await fetch('/api/v1/' + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params),
  });
  const j = await r.json();
  if (j.status !== 'success') throw new Error(j.error || r.statusText);
  return j.data;
}

const num = (s) => (s === '+Inf' ? Infinity : s === '-Inf' ? -Infinity : parseFloat(s));

function si(v, suffix) {
  if (!isFinite(v)) return String(v) + suffix;
  const a = Math.abs(v);
  for (const [d, p] of [[1e12, 'T'], [1e9, 'G'], [1e6, 'M'], [1e3, 'k']]) {
    if (a >= d) return (v / d).toFixed(a >= 10 * d ? 0 : 1) + ' ' + p + suffix;
  }
  return (a >= 10 || a === 0 ? v.toFixed(0) : v.toPrecision(2)) + (suffix ? ' ' + suffix : '');
}

function bin(v, suffix) {
  const a = Math.abs(v);
  for (const [d, p] of [[2 ** 40, 'TiB'], [2 ** 30, 'GiB'], [2 ** 20, 'MiB'], [2 ** 10, 'KiB']]) {
    if (a >= d) return (v / d).toFixed(1) + ' ' + p + suffix;
  }
  return v.toFixed(0) + ' B' + suffix;
}

function secs(v) {
  if (v === Infinity) return '∞';
  const a = Math.abs(v);
  const u = [[86400, 'd'], [3600, 'h'], [60, 'min'], [1, 's'], [1e-3, 'ms'], [1e-6, 'µs'], [1e-9, 'ns']];
  for (const [d, p] of u) if (a >= d) return (v / d).toFixed(a >= 10 * d ? 0 : 1) + ' ' + p;
  return v === 0 ? '0 s' : v.toExponential(1) + ' s';
}

function fmt(unit, v) {
  if (v == null || Number.isNaN(v)) return '–';
  switch (unit) {
    case 'ratio': return (v * 100).toFixed(1) + ' %';
    case 'bytes': return bin(v, '');
    case 'bytes_per_second': return bin(v, '/s');
    case 'seconds': return secs(v);
    case 'per_second': return si(v, '/s');
    case 'iops': return si(v, 'io/s');
    case 'packets_per_second': return si(v, 'p/s');
    case 'bool': return v >= 0.5 ? 'yes' : 'no';
    default: return si(v, '');
  }
}

// A regular expression matching exactly `s`, inside a PromQL string.
const exact = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\\/g, '\\\\').replace(/"/g, '\\"');

// About 150 points a chart (a 400-pixel chart shows no more): 2 s over 5 min at a 1 s
// refresh interval, never below the interval.
function step() {
  const iv = state.cat.interval_seconds;
  return Math.max(iv, Math.ceil(state.range / 150 / iv) * iv);
}

function expand(expr, drill) {
  const iv = state.cat.interval_seconds;
  const rate = Math.max(4 * iv, step() + iv);
  const group = drill && state.group ? exact(state.group) : '.+';
  return expr.replaceAll('$__rate_interval', rate + 's').replaceAll('$job', '.+')
    .replaceAll('$instance', '.+').replaceAll('$group', group);
}

function legend(tpl, metric) {
  if (!tpl) {
    const l = Object.entries(metric).filter(([k]) => !['__name__', 'job', 'instance'].includes(k));
    return l.map(([k, v]) => k + '=' + v).join(' ') || metric.__name__ || 'value';
  }
  return tpl.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k) => metric[k] ?? '');
}

function setState(p, s, msg) {
  p.el.dataset.state = s;
  p.msg.textContent = msg || (s === 'empty' ? 'no data' : '');
  if (s === 'empty') {
    if (p.chart) p.chart.destroy();
    p.chart = null;
    p.names = null;
    p.body.replaceChildren();
  }
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

// Range data: series by key, each { name, pts: Map(ms -> value) }, fetched incrementally.
async function rangeData(p) {
  const s = step();
  const end = Math.floor(Date.now() / 1000 / s) * s;
  const key = [s, state.range, p.drill ? state.group : ''].join();
  if (p.key !== key) { p.series = new Map(); p.end = null; p.key = key; }
  const start = p.end == null ? end - state.range : p.end + s;
  if (start <= end) {
    const res = await Promise.all(p.def.queries.map((q) =>
      api('query_range', { query: expand(q.expr, p.drill), start, end, step: s })));
    res.forEach((r, i) => r.result.forEach((ser) => {
      const k = i + JSON.stringify(ser.metric);
      if (!p.series.has(k)) p.series.set(k, { name: legend(p.def.queries[i].legend, ser.metric), metric: ser.metric, pts: new Map() });
      const pts = p.series.get(k).pts;
      for (const [t, v] of ser.values) pts.set(Math.round(t * 1000), num(v));
    }));
    p.end = end;
  }
  const first = Math.round((end - state.range) * 1000);
  for (const [k, ser] of p.series) {
    for (const t of ser.pts.keys()) if (t < first) ser.pts.delete(t);
    if (ser.pts.size === 0) p.series.delete(k);
  }
  const xs = [];
  for (let t = end - state.range; t <= end + 1e-9; t += s) xs.push(Math.round(t * 1000));
  return xs;
}

async function drawSeries(p) {
  const xs = await rangeData(p);
  const sers = [...p.series.values()].sort((a, b) => a.name.localeCompare(b.name));
  if (!sers.length) { setState(p, 'empty'); return; }
  const stacked = p.def.kind.stacked;
  const acc = xs.map(() => 0);
  const ys = sers.map((ser) => xs.map((t, i) => {
    let v = ser.pts.get(t);
    if (v == null || !isFinite(v)) return stacked ? acc[i] : null;
    if (stacked) { acc[i] += v; v = acc[i]; }
    return v;
  }));
  const data = [xs.map((t) => t / 1000), ...ys];
  const names = sers.map((x) => x.name).join('\n');
  const width = Math.max(200, p.body.clientWidth - 4);
  if (!p.chart || p.names !== names) {
    if (p.chart) p.chart.destroy();
    p.body.replaceChildren();
    p.names = names;
    p.chart = new uPlot({
      width, height: 190,
      cursor: { sync: { key: 'monitor' } },
      legend: { live: true },
      scales: { y: { range: (u, lo, hi) => [Math.min(0, lo), hi > lo ? hi : lo + 1] } },
      axes: [{}, { size: 84, values: (u, vals) => vals.map((v) => fmt(p.def.unit, v)) }],
      series: [{}, ...sers.map((x, i) => ({
        label: x.name, stroke: COLORS[i % COLORS.length], width: 1,
        fill: stacked ? COLORS[i % COLORS.length] + '40' : undefined,
        value: (u, v) => fmt(p.def.unit, v),
      }))],
    }, data, p.body);
  } else {
    if (Math.abs(p.chart.width - width) > 4) p.chart.setSize({ width, height: 190 });
    p.chart.setData(data);
  }
  setState(p, 'data');
}

async function drawHeatmap(p) {
  const xs = await rangeData(p);
  const buckets = [...p.series.values()].map((x) => ({ le: num(x.metric.le), pts: x.pts }))
    .filter((b) => !Number.isNaN(b.le)).sort((a, b) => a.le - b.le);
  // Cumulative buckets to counts per bucket, per step.
  const cells = buckets.map((b, j) => xs.map((t) => {
    const v = b.pts.get(t); const below = j ? buckets[j - 1].pts.get(t) : 0;
    return v == null ? null : Math.max(0, v - (below || 0));
  }));
  const max = Math.max(0, ...cells.flat().filter((v) => v != null));
  const has = cells.some((r) => r.some((v) => v != null));
  if (!has) { setState(p, 'empty'); return; }
  const w = Math.max(200, p.body.clientWidth - 4), h = 190, left = 60;
  let c = p.body.querySelector('canvas');
  if (!c) { p.body.replaceChildren(); c = el('canvas'); p.body.append(c); }
  const dpr = window.devicePixelRatio || 1;
  c.width = w * dpr; c.height = h * dpr; c.style.width = w + 'px'; c.style.height = h + 'px';
  const g = c.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const cw = (w - left) / xs.length, ch = (h - 14) / buckets.length;
  cells.forEach((row, j) => row.forEach((v, i) => {
    if (v == null || v === 0) return;
    g.fillStyle = `rgba(230, 85, 13, ${0.15 + 0.85 * Math.sqrt(v / (max || 1))})`;
    g.fillRect(left + i * cw, h - 14 - (j + 1) * ch, Math.ceil(cw), Math.ceil(ch));
  }));
  g.fillStyle = '#555'; g.font = '10px sans-serif';
  const every = Math.ceil(buckets.length / 8);
  buckets.forEach((b, j) => {
    const y = Math.max(10, h - 14 - j * ch - ch / 2 + 4);
    if (j % every === 0) g.fillText(b.le === Infinity ? '+Inf' : secs(b.le), 2, y);
  });
  g.fillText(new Date(xs[0]).toLocaleTimeString(), left, h - 2);
  g.fillText(new Date(xs[xs.length - 1]).toLocaleTimeString(), w - 60, h - 2);
  c.title = `${buckets.length} buckets; darkest: ${si(max, '/s')}`;
  setState(p, 'data');
}

async function instant(p) {
  const time = Date.now() / 1000;
  const res = await Promise.all(p.def.queries.map((q) => api('query', { query: expand(q.expr, p.drill), time })));
  return res.flatMap((r, i) => (r.resultType === 'vector' ? r.result : [{ metric: {}, value: r.result }])
    .map((s) => ({ q: p.def.queries[i], metric: s.metric, v: num(s.value[1]) })));
}

async function drawStat(p) {
  const rows = await instant(p);
  if (!rows.length) { setState(p, 'empty'); return; }
  const t = p.def.kind.thresholds;
  p.body.replaceChildren(...rows.map((r) => {
    const bad = (t.above != null && r.v > t.above) || (t.below != null && r.v < t.below);
    return el('div', { class: 'figure' + (bad ? ' bad' : ''), title: legend(r.q.legend, r.metric), text: fmt(p.def.unit, r.v) });
  }));
  setState(p, 'data');
}

async function drawTable(p) {
  const { order, limit } = p.def.kind;
  let rows = (await instant(p)).sort((a, b) => (order === 'asc' ? a.v - b.v : b.v - a.v));
  if (limit) rows = rows.slice(0, limit);
  if (!rows.length) { setState(p, 'empty'); return; }
  const skip = ['__name__', 'job', 'instance'];
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r.metric)))].filter((k) => !skip.includes(k)).sort();
  const head = el('tr', {}, ...cols.map((c) => el('th', { text: c })), el('th', { text: 'value' }));
  const body = rows.map((r) => el('tr', {}, ...cols.map((c) => {
    const v = r.metric[c] ?? '';
    if (c === 'group' && p.def.links_to_group && v) {
      const a = el('a', { href: '#group=' + encodeURIComponent(v), class: 'group-link', 'data-group': v, text: v });
      a.addEventListener('click', (e) => { e.preventDefault(); openGroup(v); });
      return el('td', {}, a);
    }
    return el('td', { text: v });
  }), el('td', { class: 'num', text: fmt(p.def.unit, r.v) })));
  p.body.replaceChildren(el('table', {}, el('thead', {}, head), el('tbody', {}, ...body)));
  setState(p, 'data');
}

// One update of a panel at a time: a refresh and a change of group or range queue up.
function update(p) {
  p.queue = (p.queue || Promise.resolve()).then(() => draw(p));
  return p.queue;
}

async function draw(p) {
  try {
    const k = p.def.kind.type;
    await (k === 'time_series' ? drawSeries : k === 'heatmap' ? drawHeatmap : k === 'stat' ? drawStat : drawTable)(p);
    p.updated = Date.now();
  } catch (e) {
    setState(p, 'error', e.message);
  }
}

async function alerts() {
  const box = $('#alerts');
  try {
    const r = await fetch('/api/v1/alerts');
    const list = (await r.json()).data.alerts.filter((a) => a.state !== 'inactive' && !a.resolvedAt);
    const rank = (a) => (a.state === 'firing' ? 0 : 1);
    list.sort((a, b) => rank(a) - rank(b) || a.labels.alertname.localeCompare(b.labels.alertname));
    box.replaceChildren(...(list.length ? list.map((a) => el('div', { class: 'alert ' + a.state },
      el('b', { text: a.state }), ' ', el('span', { text: a.labels.alertname }), ' ',
      el('small', { text: (a.annotations.summary || Object.entries(a.labels).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(' ')) + ' · since ' + new Date(a.activeAt).toLocaleTimeString() })))
      : [el('div', { class: 'alert none', text: 'No alert firing or pending.' })]));
  } catch (e) {
    box.replaceChildren(el('div', { class: 'alert firing', text: 'alerts: ' + e.message }));
  }
}

async function groups() {
  const sel = $('#group');
  if (!sel) return;
  try {
    const r = await fetch('/api/v1/label/group/values?' + new URLSearchParams({ 'match[]': 'monitor_process_cpu_seconds_total' }));
    const vals = (await r.json()).data;
    const cur = state.group || '';
    sel.replaceChildren(el('option', { value: '', text: 'all groups' }), ...vals.map((v) => el('option', { value: v, text: v })));
    if (cur && !vals.includes(cur)) sel.append(el('option', { value: cur, text: cur }));
    sel.value = cur;
  } catch (e) { /* the select keeps its options */ }
}

function openGroup(g) {
  state.group = g || null;
  history.replaceState(null, '', g ? '#group=' + encodeURIComponent(g) : '#');
  const row = $('#drill');
  row.querySelector('h2').textContent = 'Groups: ' + (g || 'all');
  const sel = $('#group');
  if (g && ![...sel.options].some((o) => o.value === g)) sel.append(el('option', { value: g, text: g }));
  sel.value = g || '';
  row.scrollIntoView({ behavior: 'instant', block: 'start' });
  const ps = state.panels.filter((p) => p.drill);
  ps.forEach((p) => setState(p, 'loading'));
  return Promise.all(ps.map(update));
}

async function tick() {
  clearTimeout(state.timer);
  // One round at a time; a round asked for meanwhile runs right after.
  if (state.running) { state.again = true; return; }
  state.running = true;
  try {
    if (!state.paused) {
      const t0 = Date.now();
      await alerts();
      // Panels on screen, and those never drawn; four at a time.
      const todo = state.panels.filter((p) => p.visible || !p.updated);
      const workers = Array.from({ length: 4 }, async () => {
        for (let p = todo.shift(); p && !state.paused; p = todo.shift()) await update(p);
      });
      await Promise.all(workers);
      if (!state.paused) $('#status').textContent = 'updated ' + new Date().toLocaleTimeString() + ` (${Date.now() - t0} ms)`;
      document.body.dataset.ready = 'true';
    }
  } finally {
    state.running = false;
  }
  if (state.again) { state.again = false; tick(); return; }
  state.timer = setTimeout(tick, state.every * 1000);
}

function build() {
  const seen = new IntersectionObserver((es) => es.forEach((e) => { e.target.panel.visible = e.isIntersecting; }));
  const main = $('#rows');
  for (const row of state.cat.rows) {
    const drill = row.drill_down;
    const sec = el('section', { class: 'row', 'data-row': row.title });
    if (drill) sec.id = 'drill';
    const h = el('h2', { text: drill ? 'Groups: all' : row.title, title: row.description });
    sec.append(h);
    if (drill) {
      const sel = el('select', { id: 'group' }, el('option', { value: '', text: 'all groups' }));
      sel.addEventListener('change', () => openGroup(sel.value));
      sec.append(el('label', { class: 'pick' }, 'Group ', sel));
    }
    const grid = el('div', { class: 'grid' });
    for (const def of row.panels) {
      const kind = def.kind.type;
      const body = el('div', { class: 'body' });
      const msg = el('div', { class: 'msg' });
      const box = el('div', { class: 'panel ' + kind, 'data-title': def.title, 'data-state': 'loading' },
        el('h3', { text: def.title, title: def.description }), body, msg);
      const p = { def, el: box, body, msg, drill, visible: false };
      box.panel = p;
      state.panels.push(p);
      grid.append(box);
      seen.observe(box);
    }
    sec.append(grid);
    main.append(sec);
  }
}

async function main() {
  state.cat = await (await fetch('/page/catalogue.json')).json();
  $('#metrics').href = state.cat.telemetry_path;
  const ret = state.cat.retention_seconds;
  if (ret == null) {
    $('#rows').replaceChildren(el('p', { text: 'The query history is off (--web.history.retention=0s): nothing to draw.' }));
    return;
  }
  const ranges = [[60, '1 min'], [300, '5 min'], [900, '15 min'], [3600, '1 h'], [21600, '6 h']].filter(([s]) => s <= ret + 1);
  if (!ranges.length) ranges.push([ret, Math.round(ret) + ' s']);
  state.range = ranges.some(([s]) => s === 300) ? 300 : ranges[ranges.length - 1][0];
  $('#range').replaceChildren(...ranges.map(([s, t]) => el('option', { value: s, text: t })));
  $('#range').value = state.range;
  $('#range').addEventListener('change', (e) => {
    state.range = +e.target.value;
    state.panels.forEach((p) => { p.updated = 0; setState(p, 'loading'); });
    tick();
  });
  $('#every').addEventListener('change', (e) => { state.every = +e.target.value; tick(); });
  $('#pause').addEventListener('click', (e) => {
    state.paused = !state.paused;
    e.target.textContent = state.paused ? 'Resume' : 'Pause';
    $('#status').textContent = state.paused ? 'paused' : '';
    if (!state.paused) tick();
  });
  build();
  const m = location.hash.match(/^#group=(.+)$/);
  if (m) state.group = decodeURIComponent(m[1]);
  await groups();
  if (state.group) openGroup(state.group);
  setInterval(groups, 30000);
  tick();
}

main().catch((e) => { $('#status').textContent = 'failed: ' + e.message; });
