/*
 * klined's page: candles of one symbol at any interval (1d from GET
 * /api/daily with MA7/MA30 and the day sources; the others from GET
 * /api/klines, aggregated exactly by the daemon), volume under them, a
 * crosshair readout of the exact values served, range presets, the
 * forecast (GET /api/forecast) dashed ahead of the last day, symbol and
 * interval in the URL, light/dark themes. The live candle moves with
 * frames the daemon pushes over a websocket (protocol "klined-live": send
 * a symbol, receive its today row whenever the consumer commits).
 * /api/status, polled every STATUS_MS, says how the pipeline is (its
 * "health"): the badge is green only while events are being consumed.
 * window.klined exposes the chart's own series and state for tests.
 */
'use strict';

(() => {
  const LC = window.LightweightCharts;
  const $ = (id) => document.getElementById(id);
  const INTERVALS = { '1m': 6e4, '5m': 3e5, '15m': 9e5, '30m': 18e5, '1h': 36e5, '4h': 144e5,
    '1d': 864e5, '1w': 6048e5 };
  const LIMIT = 1000; /* candles per request: the API's bound */
  const PRESETS = { '1D': 864e5, '1W': 6048e5, '1M': 2592e6, '3M': 7776e6, '1Y': 31536e6, All: 0 };
  const STATUS_MS = 5000;
  const STALE_S = 15; /* no event consumed for this long: the stream is not live */
  const OLD_S = 180; /* nothing stored for this long (no backfill): data older than expected */
  const state = { symbol: null, interval: '1d', rows: [], byTime: new Map(), ws: null,
    frames: 0, status: null, gen: 0, loadedKlines: -1, errors: {}, retryIn: 0, tailBusy: false };

  const css = () => getComputedStyle(document.documentElement);
  const color = (v) => css().getPropertyValue(v).trim();
  const chart = LC.createChart($('chart'), { autoSize: true, localization: { locale: 'en-US' },
    timeScale: { timeVisible: true, secondsVisible: false } });
  const candles = chart.addSeries(LC.CandlestickSeries, { borderVisible: false,
    priceLineVisible: true });
  candles.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
  const volume = chart.addSeries(LC.HistogramSeries, { priceScaleId: 'vol',
    priceFormat: { type: 'volume' }, priceLineVisible: false, lastValueVisible: false });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  const line = { lineWidth: 1, priceLineVisible: false, lastValueVisible: false,
    crosshairMarkerVisible: false };
  const ma7 = chart.addSeries(LC.LineSeries, line);
  const ma30 = chart.addSeries(LC.LineSeries, { ...line, lineWidth: 2 });
  const forecast = chart.addSeries(LC.LineSeries, { ...line, lineWidth: 2,
    lineStyle: LC.LineStyle.Dashed });
  const markers = LC.createSeriesMarkers(candles, []);

  /* ---- theme: the system's, or the one chosen (kept in localStorage) ---- */
  const THEMES = ['auto', 'light', 'dark'];
  function theme(choice) {
    if (choice === undefined) choice = localStorage.getItem('klined.theme') || 'auto';
    if (choice === 'auto') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = choice;
    localStorage.setItem('klined.theme', choice);
    const eff = choice === 'auto'
      ? (matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark') : choice;
    document.body.dataset.theme = eff;
    $('theme').textContent = `${eff === 'light' ? '☀' : '☾'} ${choice}`;
    chart.applyOptions({
      layout: { background: { type: 'solid', color: color('--bg') }, textColor: color('--fg') },
      grid: { vertLines: { color: color('--grid') }, horzLines: { color: color('--grid') } },
      rightPriceScale: { borderColor: color('--line') }, timeScale: { borderColor: color('--line') },
    });
    const UP = color('--up'), DOWN = color('--down');
    candles.applyOptions({ upColor: UP, downColor: DOWN, wickUpColor: UP, wickDownColor: DOWN });
    ma7.applyOptions({ color: color('--ma7') });
    ma30.applyOptions({ color: color('--ma30') });
    forecast.applyOptions({ color: color('--fc') });
    if (state.rows.length) draw(false);
  }

  /* ---- data: one shape for both APIs ---- */
  const daily = () => state.interval === '1d';
  const key = (t) => (typeof t === 'object' ? `${t.year}-${String(t.month).padStart(2, '0')}-${
    String(t.day).padStart(2, '0')}` : String(t));
  /* A /api/daily row or a /api/klines candle as the page keeps it. */
  function row(r) {
    if (r.day) return { ...r, time: r.day, closed: r.source !== 'speed' };
    return { ...r, time: r.open_time / 1000, source: r.closed ? 'batch' : 'speed' };
  }
  function bar(r) {
    const c = { time: r.time, open: r.open, high: r.high, low: r.low, close: r.close };
    if (r.source === 'fill') {
      c.color = c.wickColor = c.borderColor = color('--fill');
    } else if (r.source === 'speed') {
      c.color = r.close >= r.open ? 'rgba(38,166,154,.45)' : 'rgba(239,83,80,.45)';
      c.borderColor = color('--ma7');
      c.wickColor = r.close >= r.open ? color('--up') : color('--down');
    }
    return c;
  }
  const vbar = (r) => ({ time: r.time, value: r.volume,
    color: r.close >= r.open ? 'rgba(38,166,154,.5)' : 'rgba(239,83,80,.5)' });
  const point = (r, k) => (r[k] == null ? { time: r.time } : { time: r.time, value: r[k] });
  const fmt = (x) => (x == null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: 8 }));
  const when = (t) => (typeof t === 'string' ? t
    : new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 16));

  function draw(fit) {
    const rows = state.rows;
    state.byTime = new Map(rows.map((r) => [key(r.time), r]));
    candles.setData(rows.map(bar));
    volume.setData(rows.map(vbar));
    ma7.setData(daily() ? rows.map((r) => point(r, 'ma7')) : []);
    ma30.setData(daily() ? rows.map((r) => point(r, 'ma30')) : []);
    markers.setMarkers(rows.filter((r) => r.source === 'fill').map((r) => ({
      time: r.time, position: 'aboveBar', color: color('--fill'), shape: 'circle', text: 'fill',
    })));
    if (fit) chart.timeScale().fitContent();
    readout(null);
    counts();
  }

  /* ---- the crosshair readout: the served values of the hovered candle ---- */
  function readout(r) {
    r = r || state.rows[state.rows.length - 1];
    const el = $('readout');
    if (!r) { el.textContent = ''; return; }
    const parts = [['', `${when(r.time)}${r.closed ? '' : ' (open)'}`], ['O', fmt(r.open)],
      ['H', fmt(r.high)], ['L', fmt(r.low)], ['C', fmt(r.close)], ['V', fmt(r.volume)]];
    if (daily()) parts.push(['MA7', fmt(r.ma7)], ['MA30', fmt(r.ma30)]);
    el.replaceChildren(...parts.map(([k, v]) => {
      const s = document.createElement('span');
      if (k) { const b = document.createElement('b'); b.textContent = k; s.append(b); }
      s.append(v);
      return s;
    }));
    Object.assign(el.dataset, { time: key(r.time), open: r.open, high: r.high, low: r.low,
      close: r.close, volume: r.volume, ma7: r.ma7 ?? '', ma30: r.ma30 ?? '' });
  }
  chart.subscribeCrosshairMove((p) => readout(p.time === undefined ? null
    : state.byTime.get(key(p.time)) || null));

  function counts() {
    const n = { batch: 0, speed: 0, fill: 0 };
    for (const r of state.rows) n[r.source] = (n[r.source] || 0) + 1;
    $('counts').textContent = daily()
      ? `${state.rows.length} days: ${n.batch} batch, ${n.speed} speed, ${n.fill} fill`
      : `${state.rows.length} candles of ${state.interval}, ${n.speed} open`;
    document.body.dataset.candles = String(candles.data().length);
  }

  /* ---- failure states ---- */
  function alerts() {
    const box = $('alerts'), list = [];
    for (const [k, a] of Object.entries(state.errors)) if (a) list.push([k, a]);
    box.replaceChildren(...list.map(([k, a]) => {
      const d = document.createElement('div');
      d.className = `alert ${a.bad ? 'bad' : ''}`;
      d.dataset.kind = k;
      d.textContent = a.text;
      if (a.retry) {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = 'retry';
        b.onclick = a.retry;
        d.append(b);
      }
      return d;
    }));
    document.body.dataset.alerts = list.map(([k]) => k).join(' ');
  }
  function say(kind, a) { state.errors[kind] = a; alerts(); }

  const ago = (s) => (s == null ? 'never' : s < 120 ? `${Math.round(s)} s ago`
    : s < 7200 ? `${Math.round(s / 60)} min ago` : `${(s / 3600).toFixed(1)} h ago`);
  /* The badge and the pipeline's alerts, from /api/status's health. */
  function health() {
    const st = state.status, h = st && st.health, b = $('live-state');
    const badge = (text, cls) => { b.textContent = text; b.className = `badge ${cls}`; };
    if (!h) { badge('no status', 'bad'); return; }
    const every = `REST only, updated every ${h.rest_every_s} s`;
    const bf = st.backfill && st.backfill.running;
    let stream = null;
    if (h.kafka === 'off') {
      badge('REST only', 'off');
      stream = { text: `No stream configured ([kafka] brokers = off): ${every}.` };
    } else if (h.events_age_s != null && h.events_age_s < STALE_S
               && state.ws && state.ws.readyState === WebSocket.OPEN) {
      badge('live', 'on');
    } else if (h.produced_age_s != null && h.produced_age_s < STALE_S) {
      badge('Kafka unreachable', 'bad');
      stream = { bad: true, text: `Kafka unreachable: the stream is received but nothing comes `
        + `back from the broker (last event consumed ${ago(h.events_age_s)}): ${every}.` };
    } else if (h.uptime_s < STALE_S && h.events_age_s == null) {
      badge('connecting', 'off');
    } else {
      badge('stream down', 'bad');
      stream = { bad: true, text: `Stream down: no event from the exchange's stream `
        + `(last consumed ${ago(h.events_age_s)}): ${every}.` };
    }
    say('stream', stream);
    const down = h.rest_fail_age_s != null
      && (h.rest_ok_age_s == null || h.rest_ok_age_s > h.rest_fail_age_s)
      && (h.rest_ok_age_s == null || h.rest_ok_age_s > STALE_S);
    say('exchange', down ? { bad: true, text: `Exchange unreachable: its REST API has not `
      + `answered well since ${ago(h.rest_ok_age_s)} (last failure ${ago(h.rest_fail_age_s)}); `
      + 'klined retries with backoff.' } : null);
    const s = st.symbols && st.symbols.find((x) => x.symbol === state.symbol);
    const old = !bf && h.stored_age_s != null && h.stored_age_s > OLD_S;
    say('stale', old ? { text: `Data older than expected: newest minute ${
      s && s.newest_minute ? s.newest_minute.replace('T', ' ') : '–'}, nothing stored for ${
      ago(h.stored_age_s).replace(' ago', '')}.` } : null);
  }

  /* ---- the side panel ---- */
  function coverage() {
    const st = state.status;
    const s = st && st.symbols && st.symbols.find((x) => x.symbol === state.symbol);
    $('cov-first').textContent = daily() && state.rows.length ? state.rows[0].day
      : (s ? s.history_start : '–');
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
    $('cov-backfill').textContent = `${(f * 100).toFixed(1)}%, ${Math.round(b.rows_per_second)}`
      + ` rows/s, ETA ${Math.round(b.eta_seconds)} s`;
    pr.hidden = false;
    pr.value = f;
  }

  async function getJSON(url) {
    let res;
    try {
      res = await fetch(url);
    } catch (e) {
      throw new Error(`${url.split('?')[0]}: the daemon does not answer`);
    }
    let j = null;
    try { j = await res.json(); } catch (e) { /* not JSON: said below */ }
    if (!res.ok || !j) {
      throw new Error(`${url.split('?')[0]}: HTTP ${res.status}${j && j.error ? `: ${j.error}` : ''}`);
    }
    return j;
  }

  /* Polled: health and coverage; while the store grows (a backfill), the chart follows. */
  async function status() {
    try {
      state.status = await getJSON('/api/status');
      say('status', null);
    } catch (e) {
      state.status = null;
      say('status', { bad: true, text: `${e.message}; trying again every ${STATUS_MS / 1000} s.` });
    }
    coverage();
    health();
    const s = state.status && state.status.symbols
      && state.status.symbols.find((x) => x.symbol === state.symbol);
    const running = state.status && state.status.backfill && state.status.backfill.running;
    if (s && document.body.dataset.ready === '1' && s.klines !== state.loadedKlines
        && (running || state.wasFilling)) load({ keepView: true });
    state.wasFilling = !!running;
  }

  /* ---- loading an interval ---- */
  async function fetchRows(symbol, interval) {
    const q = `symbol=${encodeURIComponent(symbol)}`;
    if (interval === '1d') {
      $('api-daily').href = `/api/daily?${q}&days=3660`;
      return (await getJSON(`/api/daily?${q}&days=3660`)).days.map(row);
    }
    const url = `/api/klines?${q}&interval=${interval}&limit=${LIMIT}`;
    $('api-klines').href = url;
    return (await getJSON(url)).klines.map(row);
  }

  async function loadForecast(symbol) {
    let pts = [];
    if (daily()) {
      try {
        const j = await getJSON(`/api/forecast?symbol=${encodeURIComponent(symbol)}`);
        const last = state.rows.length ? state.rows[state.rows.length - 1].day : '';
        pts = j.forecast.filter((f) => f.ds > last).map((f) => ({ time: f.ds, value: f.yhat }));
        if (pts.length && last) {
          const r = state.rows[state.rows.length - 1];
          pts.unshift({ time: r.day, value: r.close }); /* the dash starts at the last candle */
        }
      } catch (e) { /* no forecast is not a failure */ }
    }
    forecast.setData(pts);
  }

  async function load(opts = {}) {
    const gen = ++state.gen, { symbol, interval } = state;
    const before = state.status && state.status.symbols
      && state.status.symbols.find((x) => x.symbol === symbol);
    if (!opts.keepView) document.body.dataset.ready = '0';
    let rows;
    try {
      rows = await fetchRows(symbol, interval);
    } catch (e) {
      if (gen !== state.gen) return;
      const retry = () => { say('api', null); load(opts); };
      say('api', { bad: true, retry, text: `Could not load the candles (${e.message}).` });
      clearTimeout(state.retryTimer);
      state.retryIn = Math.min(Math.max(state.retryIn * 2, 2000), 30000);
      state.retryTimer = setTimeout(retry, state.retryIn);
      return;
    }
    if (gen !== state.gen) return; /* switched again meanwhile */
    say('api', null);
    state.retryIn = 0;
    state.rows = rows;
    state.loadedKlines = before ? before.klines : -1;
    const range = opts.keepView ? chart.timeScale().getVisibleLogicalRange() : null;
    draw(!opts.keepView);
    if (range && rows.length) chart.timeScale().setVisibleLogicalRange(range);
    await loadForecast(symbol);
    if (rows.length) showLive(rows[rows.length - 1], null);
    coverage();
    document.body.dataset.symbol = symbol;
    document.body.dataset.interval = interval;
    document.body.dataset.ready = '1';
    if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(symbol);
  }

  function showLive(r, frame) {
    const p = $('live-price');
    p.textContent = fmt(r.close);
    p.className = 'price ' + (r.close >= r.open ? 'up' : 'down');
    if (r.day) {
      const ch = (r.close / r.open - 1) * 100;
      $('live-change').textContent = `${ch >= 0 ? '+' : ''}${ch.toFixed(2)}% today (${r.source})`;
    }
    if (frame) {
      $('live-event').textContent = frame.event_time == null ? '–'
        : new Date(frame.event_time).toISOString().replace('T', ' ').slice(0, 19);
      $('live-lag').textContent = lag(frame.lag_ms);
    }
  }
  function lag(ms) {
    if (ms == null) return '–';
    const s = Math.abs(ms) / 1000;
    if (s < 1) return `${Math.round(ms)} ms`;
    if (s < 120) return `${(ms / 1000).toFixed(1)} s`;
    if (s < 7200) return `${Math.round(ms / 60000)} min`;
    if (s < 172800) return `${(ms / 3600000).toFixed(1)} h`;
    return `${Math.round(ms / 86400000)} days`;
  }

  /* The newest two candles of an intraday interval, after a commit moved today. */
  async function tail() {
    if (state.tailBusy) return;
    state.tailBusy = true;
    const gen = state.gen;
    try {
      const j = await getJSON(`/api/klines?symbol=${encodeURIComponent(state.symbol)}`
        + `&interval=${state.interval}&limit=2`);
      if (gen !== state.gen || document.body.dataset.ready !== '1') return;
      for (const c of j.klines.map(row)) {
        const last = state.rows[state.rows.length - 1];
        if (last && c.time < last.time) {
          const i = state.rows.findIndex((r) => r.time === c.time);
          if (i >= 0) state.rows[i] = c;
          continue; /* the series only moves its last bar */
        }
        if (last && last.time === c.time) state.rows[state.rows.length - 1] = c;
        else state.rows.push(c);
        state.byTime.set(key(c.time), c);
        candles.update(bar(c));
        volume.update(vbar(c));
        showLive(c, null);
      }
      counts();
    } catch (e) { /* the next frame tries again; status() says what is wrong */ }
    finally { state.tailBusy = false; }
  }

  /* Today's row as the daemon committed it: move the live candle. */
  function onFrame(f) {
    if (f.symbol !== state.symbol || document.body.dataset.ready !== '1') return;
    state.frames++;
    document.body.dataset.frames = String(state.frames);
    backfill(f.backfill);
    if (!f.row) return;
    showLive(f.row, f);
    if (!daily()) { tail(); return; }
    const r = row(f.row), last = state.rows[state.rows.length - 1];
    if (last && r.day < last.day) return;
    /* A new day: yesterday may have become batch meanwhile; reload it all. */
    if (last && r.day > last.day) { load({ keepView: true }); return; }
    if (last) state.rows[state.rows.length - 1] = r;
    else state.rows.push(r);
    state.byTime.set(key(r.time), r);
    candles.update(bar(r));
    volume.update(vbar(r));
    ma7.update(point(r, 'ma7'));
    ma30.update(point(r, 'ma30'));
    counts();
  }

  function connect() {
    const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/live`,
      'klined-live');
    state.ws = ws;
    ws.onopen = () => { if (state.symbol) ws.send(state.symbol); health(); };
    ws.onmessage = (e) => { try { onFrame(JSON.parse(e.data)); } catch (err) { /* ignore */ } };
    ws.onclose = () => {
      say('ws', { text: 'The page lost its connection to the daemon; reconnecting.' });
      $('live-state').textContent = 'reconnecting';
      $('live-state').className = 'badge off';
      setTimeout(connect, 2000);
    };
    ws.addEventListener('open', () => say('ws', null));
  }

  /* ---- controls and the URL (?symbol=S&interval=I; back/forward work) ---- */
  function press() {
    for (const b of $('intervals').children) b.setAttribute('aria-pressed', b.value === state.interval);
    $('symbol').value = state.symbol;
  }
  function choose(symbol, interval, push) {
    if (symbol === state.symbol && interval === state.interval) return;
    state.symbol = symbol;
    state.interval = interval;
    press();
    if (push) history.pushState({ symbol, interval }, '', `?symbol=${symbol}&interval=${interval}`);
    load();
  }
  function preset(name) {
    const n = state.rows.length, span = PRESETS[name];
    if (!span || !n) { chart.timeScale().fitContent(); return; }
    const bars = Math.max(1, Math.ceil(span / INTERVALS[state.interval]));
    chart.timeScale().setVisibleLogicalRange({ from: n - bars - 0.5, to: n - 0.5 });
  }
  function fromURL(syms) {
    const u = new URLSearchParams(location.search);
    const s = (u.get('symbol') || '').toUpperCase();
    const i = u.get('interval');
    return [syms.includes(s) ? s : syms[0], INTERVALS[i] ? i : '1d'];
  }

  async function main() {
    theme();
    matchMedia('(prefers-color-scheme: light)').addEventListener('change', () => theme());
    $('theme').onclick = () => {
      const cur = localStorage.getItem('klined.theme') || 'auto';
      theme(THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length]);
    };
    if (matchMedia('(max-width: 760px)').matches) $('details').open = false;
    for (const i of Object.keys(INTERVALS)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.value = b.textContent = i;
      b.onclick = () => choose(state.symbol, i, true);
      $('intervals').append(b);
    }
    for (const p of Object.keys(PRESETS)) {
      const b = document.createElement('button');
      b.type = 'button';
      b.value = b.textContent = p;
      b.onclick = () => preset(p);
      $('presets').append(b);
    }
    await status();
    const syms = (state.status && state.status.configured_symbols) || [];
    const sel = $('symbol');
    for (const s of syms) sel.add(new Option(s, s));
    sel.onchange = () => choose(sel.value, state.interval, true);
    window.addEventListener('popstate', () => choose(...fromURL(syms), false));
    connect();
    setInterval(status, STATUS_MS);
    if (!syms.length) return;
    const [s, i] = fromURL(syms);
    history.replaceState({ symbol: s, interval: i }, '', `?symbol=${s}&interval=${i}`);
    choose(s, i, false);
  }

  window.klined = { chart, candles, volume, ma7, ma30, forecast, state, load, choose, preset,
    theme };
  main();
})();
