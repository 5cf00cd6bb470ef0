/*
 * klined's page: the `daily` candles of one symbol (GET /api/daily), MA7 and
 * MA30, fill days marked, today's candle moved by frames the daemon pushes
 * over a websocket (protocol "klined-live": send a symbol, receive its
 * today row whenever the consumer commits). No polling for the live candle.
 * window.klined exposes the chart's own series for tests.
 */
'use strict';

(() => {
  const LC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);
  const css = getComputedStyle(document.documentElement);
  const color = (v) => css.getPropertyValue(v).trim();
  const UP = color('--up'), DOWN = color('--down'), FILL = color('--fill');
  const state = { symbol: null, rows: [], ws: null, frames: 0, status: null, statusAt: 0 };

  const chart = LC.createChart($('chart'), {
    autoSize: true,
    layout: { background: { type: 'solid', color: color('--bg') }, textColor: color('--fg') },
    grid: { vertLines: { color: '#21262d' }, horzLines: { color: '#21262d' } },
    rightPriceScale: { borderColor: '#30363d' },
    timeScale: { borderColor: '#30363d' },
  });
  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN, borderVisible: false,
  });
  const line = { lineWidth: 1, priceLineVisible: false, lastValueVisible: false,
    crosshairMarkerVisible: false };
  const ma7 = chart.addSeries(LC.LineSeries, { ...line, color: color('--ma7') });
  const ma30 = chart.addSeries(LC.LineSeries, { ...line, color: color('--ma30'), lineWidth: 2 });
  const markers = LC.createSeriesMarkers(candles, []);

  function bar(r) {
    const c = { time: r.day, open: r.open, high: r.high, low: r.low, close: r.close };
    if (r.source === 'fill') {
      c.color = c.wickColor = c.borderColor = FILL;
    } else if (r.source === 'speed') {
      c.color = r.close >= r.open ? 'rgba(38,166,154,.45)' : 'rgba(239,83,80,.45)';
      c.borderColor = color('--ma7');
      c.wickColor = r.close >= r.open ? UP : DOWN;
    }
    return c;
  }
  const point = (r, k) => (r[k] == null ? { time: r.day } : { time: r.day, value: r[k] });
  const fmt = (x) => x == null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: 8 });

  function lag(ms) {
    if (ms == null) return '–';
    const s = Math.abs(ms) / 1000;
    if (s < 1) return `${Math.round(ms)} ms`;
    if (s < 120) return `${(ms / 1000).toFixed(1)} s`;
    if (s < 7200) return `${Math.round(ms / 60000)} min`;
    if (s < 172800) return `${(ms / 3600000).toFixed(1)} h`;
    return `${Math.round(ms / 86400000)} days`;
  }

  function counts() {
    const n = { batch: 0, speed: 0, fill: 0 };
    for (const r of state.rows) n[r.source] = (n[r.source] || 0) + 1;
    $('counts').textContent =
      `${state.rows.length} days: ${n.batch} batch, ${n.speed} speed, ${n.fill} fill`;
    document.body.dataset.candles = String(candles.data().length);
  }

  function showLive(r, frame) {
    const p = $('live-price');
    p.textContent = fmt(r.close);
    p.className = 'price ' + (r.close >= r.open ? 'up' : 'down');
    const ch = (r.close / r.open - 1) * 100;
    $('live-change').textContent = `${ch >= 0 ? '+' : ''}${ch.toFixed(2)}% today (${r.source})`;
    if (frame) {
      $('live-event').textContent = frame.event_time == null ? '–'
        : new Date(frame.event_time).toISOString().replace('T', ' ').slice(0, 19);
      $('live-lag').textContent = lag(frame.lag_ms);
    }
  }

  function coverage() {
    const st = state.status;
    const s = st && st.symbols.find((x) => x.symbol === state.symbol);
    $('cov-first').textContent = state.rows.length ? state.rows[0].day : (s ? s.history_start : '–');
    $('cov-last').textContent = s && s.newest_minute ? s.newest_minute.replace('T', ' ') : '–';
    $('cov-klines').textContent = s ? s.klines.toLocaleString('en-US') : '–';
    $('cov-holes').textContent = s ? `${s.holes} (${s.hole_minutes} min)` : '–';
    $('cov-outages').textContent = s ? `${s.outages} (${s.outage_minutes} min)` : '–';
    backfill(st && st.backfill);
  }

  function backfill(b) {
    const pr = $('cov-progress');
    if (!b || !b.running) {
      $('cov-backfill').textContent = 'idle';
      pr.hidden = true;
      return;
    }
    const f = b.total_minutes ? b.done_minutes / b.total_minutes : 1;
    $('cov-backfill').textContent = `${(f * 100).toFixed(1)}%, ${Math.round(b.rows_per_second)} rows/s,`
      + ` ETA ${Math.round(b.eta_seconds)} s`;
    pr.hidden = false;
    pr.value = f;
  }

  async function status() {
    state.statusAt = Date.now();
    try {
      state.status = await (await fetch('/api/status')).json();
    } catch (e) {
      state.status = null;
    }
    coverage();
  }

  async function load(symbol) {
    state.symbol = symbol;
    document.body.dataset.ready = '0';
    const q = `symbol=${encodeURIComponent(symbol)}&days=3660`;
    $('api-daily').href = `/api/daily?${q}`;
    const res = await fetch(`/api/daily?${q}`);
    const j = await res.json();
    if (symbol !== state.symbol) return; /* switched again meanwhile */
    state.rows = j.days || [];
    candles.setData(state.rows.map(bar));
    ma7.setData(state.rows.map((r) => point(r, 'ma7')));
    ma30.setData(state.rows.map((r) => point(r, 'ma30')));
    markers.setMarkers(state.rows.filter((r) => r.source === 'fill').map((r) => ({
      time: r.day, position: 'aboveBar', color: FILL, shape: 'circle', text: 'fill',
    })));
    chart.timeScale().fitContent();
    if (state.rows.length) showLive(state.rows[state.rows.length - 1], null);
    counts();
    await status();
    document.body.dataset.symbol = symbol;
    document.body.dataset.ready = '1';
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(symbol);
  }

  /* Today's row as the daemon committed it: update (or append) the last candle. */
  function onFrame(f) {
    if (f.symbol !== state.symbol || !f.row || document.body.dataset.ready !== '1') return;
    const r = f.row, last = state.rows[state.rows.length - 1];
    if (last && r.day < last.day) return;
    /* A new day: yesterday may have become batch meanwhile; reload it all. */
    if (last && r.day > last.day) { load(state.symbol); return; }
    if (last && last.day === r.day) state.rows[state.rows.length - 1] = r;
    else state.rows.push(r);
    candles.update(bar(r));
    ma7.update(point(r, 'ma7'));
    ma30.update(point(r, 'ma30'));
    showLive(r, f);
    backfill(f.backfill);
    counts();
    /* The coverage panel follows the frames, at most every 5 s (no timer). */
    if (Date.now() - state.statusAt > 5000) status();
    state.frames++;
    document.body.dataset.frames = String(state.frames);
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/live`,
      'klined-live');
    state.ws = ws;
    ws.onopen = () => {
      $('live-state').textContent = 'live';
      $('live-state').className = 'badge on';
      if (state.symbol) ws.send(state.symbol);
    };
    ws.onmessage = (e) => { try { onFrame(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
    ws.onclose = () => {
      $('live-state').textContent = 'reconnecting';
      $('live-state').className = 'badge off';
      setTimeout(connect, 2000);
    };
  }

  async function main() {
    await status();
    const syms = (state.status && state.status.configured_symbols) || [];
    const sel = $('symbol');
    for (const s of syms) sel.add(new Option(s, s));
    const wanted = new URLSearchParams(location.search).get('symbol');
    if (wanted && syms.includes(wanted)) sel.value = wanted;
    sel.onchange = () => load(sel.value);
    connect();
    if (sel.value) await load(sel.value);
  }

  window.klined = { chart, candles, ma7, ma30, state, load };
  main();
})();
