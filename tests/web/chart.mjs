// Drives klined's page in Debian's headless chromium (playwright-core) and
// reports what the chart itself holds, for tests/integration/test_page.py.
//   node chart.mjs views URL OUTDIR     one JSON line: every interval's candles
//       and a hovered candle's readout at 1400x900, the URL's round trip
//       (back/forward, reload), themes, range presets, an API failure and its
//       retry, the forecast line, the layout and screenshots at 420x860
//   node chart.mjs watch URL SECONDS    one JSON line every 500 ms: the badge,
//       the alerts and the candles, never reloading (the test changes the
//       world meanwhile); stops after SECONDS or when stdin closes
import { chromium } from 'playwright-core';

const [mode, url, arg] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const errors = [];

async function open(viewport, colorScheme = 'dark', target = url) {
  const ctx = await browser.newContext({ viewport, colorScheme });
  const page = await ctx.newPage();
  page.on('console', (m) => {
    // A refused request the test made fail on purpose is no page error.
    if (m.type() === 'error' && !/status of 503/.test(m.text())) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(target);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 90000 });
  return page;
}

const ready = (page, interval, symbol) => page.waitForFunction(([i, s]) =>
  document.body.dataset.ready === '1' && document.body.dataset.interval === i
  && (!s || document.body.dataset.symbol === s), [interval, symbol], { timeout: 60000 });

const where = (page) => page.evaluate(() => ({ search: location.search,
  symbol: document.body.dataset.symbol, interval: document.body.dataset.interval,
  candles: window.klined.candles.data().length }));

/* Hover the candle at logical index k; the readout's data-* then. */
async function hover(page, k) {
  const box = await page.locator('#chart').boundingBox();
  const x = await page.evaluate((i) => window.klined.chart.timeScale().logicalToCoordinate(i), k);
  await page.mouse.move(box.x + x, box.y + box.height * 0.4);
  await page.waitForTimeout(100);
  return page.evaluate(() => ({ ...document.querySelector('#readout').dataset,
    text: document.querySelector('#readout').textContent }));
}

async function views(outdir) {
  const out = { intervals: {}, url: [], theme: {}, errors };
  let page = await open({ width: 1400, height: 900 });
  out.first = await where(page);
  for (const i of ['1m', '5m', '15m', '30m', '1h', '4h', '1w', '1d']) {
    await page.click(`#intervals button[value="${i}"]`);
    await ready(page, i);
    const n = await page.evaluate(() => window.klined.candles.data().length);
    const k = Math.floor(n / 2);
    out.intervals[i] = { candles: n, volumes: await page.evaluate(() =>
      window.klined.volume.data().length), hovered: await hover(page, k),
      ma7: await page.evaluate(() => window.klined.ma7.data().filter((p) => p.value !== undefined).length),
      first: await page.evaluate(() => window.klined.candles.data()[0]?.time ?? null) };
  }
  out.forecast = await page.evaluate(() => window.klined.forecast.data().map((p) => p.time));
  out.last_day = await page.evaluate(() => window.klined.candles.data().at(-1)?.time ?? null);
  // Presets on the daily chart: the visible bars.
  for (const p of ['1M', '3M', 'All']) {
    await page.click(`#presets button[value="${p}"]`);
    await page.waitForTimeout(100);
    const r = await page.evaluate(() => window.klined.chart.timeScale().getVisibleLogicalRange());
    out[`preset_${p}`] = r ? r.to - r.from : null;
  }
  await page.mouse.move(5, 5);
  await page.screenshot({ path: `${outdir}/page.png` });
  // URL: symbol and interval, back and forward.
  await page.selectOption('#symbol', 'ETHUSDT');
  await ready(page, '1d', 'ETHUSDT');
  out.url.push(await where(page));
  await page.click('#intervals button[value="1h"]');
  await ready(page, '1h', 'ETHUSDT');
  out.url.push(await where(page));
  await page.goBack();
  await ready(page, '1d', 'ETHUSDT');
  out.url.push(await where(page));
  await page.goBack();
  await ready(page, '1d', 'BTCUSDT');
  out.url.push(await where(page));
  await page.goForward();
  await ready(page, '1d', 'ETHUSDT');
  out.url.push(await where(page));
  // An API failure on an interval switch: said, retried, gone once it answers.
  await page.route('**/api/klines?**', (r) => r.fulfill({ status: 503,
    contentType: 'application/json', body: '{"error":"cannot read the store"}' }));
  await page.click('#intervals button[value="15m"]');
  await page.waitForSelector('.alert[data-kind="api"] button', { timeout: 30000 });
  out.api_error = await page.textContent('.alert[data-kind="api"]');
  await page.unroute('**/api/klines?**');
  await page.click('.alert[data-kind="api"] button');
  await ready(page, '15m', 'ETHUSDT');
  out.api_after = await page.evaluate(() => document.body.dataset.alerts);
  out.badge = await page.textContent('#live-state');
  out.badge_class = await page.getAttribute('#live-state', 'class');
  out.alerts = await page.evaluate(() => [...document.querySelectorAll('.alert')].map((a) =>
    `${a.dataset.kind}: ${a.textContent}`));
  // Themes: dark here; the switch cycles auto -> light -> dark.
  out.theme.dark = await page.evaluate(() => [document.body.dataset.theme,
    window.klined.chart.options().layout.background.color]);
  await page.click('#theme');
  out.theme.chosen_light = await page.evaluate(() => [document.body.dataset.theme,
    window.klined.chart.options().layout.background.color]);
  await page.click('#theme');
  out.theme.chosen_dark = await page.evaluate(() => document.body.dataset.theme);
  await page.click('#theme'); // back to auto for the next context's localStorage
  await page.context().close();
  // A light system; a phone: the chart has most of the screen.
  page = await open({ width: 420, height: 860 }, 'light', `${url}?symbol=ETHUSDT&interval=15m`);
  out.reloaded = await where(page);
  out.theme.system_light = await page.evaluate(() => [document.body.dataset.theme,
    window.klined.chart.options().layout.background.color]);
  await page.click('#intervals button[value="1d"]');
  await ready(page, '1d', 'ETHUSDT');
  out.phone_chart = await page.locator('#chart').boundingBox();
  out.phone_scroll_width = await page.evaluate(() => document.documentElement.scrollWidth);
  out.phone_hovered = await hover(page, 10);
  await page.mouse.move(5, 5);
  await page.screenshot({ path: `${outdir}/page-phone.png` });
  await page.context().close();
  return out;
}

async function watch(seconds) {
  const page = await open({ width: 1400, height: 900 });
  await page.evaluate(() => { window.klinedNoReload = 1; });
  const end = Date.now() + Number(seconds) * 1000;
  let stdinOpen = true;
  process.stdin.on('end', () => { stdinOpen = false; });
  process.stdin.resume();
  while (Date.now() < end && stdinOpen) {
    const s = await page.evaluate(() => ({
      badge: document.querySelector('#live-state').textContent,
      badge_class: document.querySelector('#live-state').className,
      alerts: [...document.querySelectorAll('.alert')].map((a) => ({ kind: a.dataset.kind,
        text: a.textContent })),
      candles: window.klined.candles.data().length,
      first: window.klined.candles.data()[0]?.time ?? null,
      last: window.klined.candles.data().at(-1)?.time ?? null,
      frames: Number(document.body.dataset.frames || 0),
      same_document: window.klinedNoReload === 1,
    }));
    s.errors = errors.length;
    console.log(JSON.stringify(s));
    await page.waitForTimeout(500);
  }
}

try {
  if (mode === 'views') console.log(JSON.stringify(await views(arg)));
  else if (mode === 'watch') await watch(arg);
  else throw new Error(`unknown mode ${mode}`);
} finally {
  await browser.close();
}
