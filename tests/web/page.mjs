// Loads klined's page in Debian's headless chromium and reports what the
// chart itself holds (the library's own series data), as one JSON line:
//   node page.mjs URL SCREENSHOT WATCH_SECONDS
// For every configured symbol (switching with the page's <select>): the
// number of candles; then, on the first symbol, the live candle's close
// sampled until it changed twice (or WATCH_SECONDS passed); console errors.
import { chromium } from 'playwright-core';

const [url, shot, watch = '30'] = process.argv.slice(2);
const out = { load_ms: null, symbols: {}, closes: [], frames: 0, errors: [] };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  page.on('console', (m) => { if (m.type() === 'error') out.errors.push(m.text()); });
  page.on('pageerror', (e) => out.errors.push(String(e)));
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  out.load_ms = Date.now() - t0;
  const syms = await page.$$eval('#symbol option', (os) => os.map((o) => o.value));
  for (const s of [...syms.slice(1), syms[0]]) {
    await page.selectOption('#symbol', s);
    await page.waitForFunction((x) => document.body.dataset.symbol === x
      && document.body.dataset.ready === '1', s, { timeout: 60000 });
    out.symbols[s] = await page.evaluate(() => ({
      candles: window.klined.candles.data().length,
      ma7: window.klined.ma7.data().filter((p) => p.value !== undefined).length,
      first: window.klined.candles.data()[0]?.time ?? null,
      last: window.klined.candles.data().at(-1)?.time ?? null,
    }));
  }
  const end = Date.now() + Number(watch) * 1000;
  let changes = 0;
  while (Date.now() < end && changes < 2) {
    const c = await page.evaluate(() => window.klined.candles.data().at(-1)?.close ?? null);
    if (out.closes.length && c !== out.closes.at(-1)) changes++;
    if (!out.closes.length || c !== out.closes.at(-1)) out.closes.push(c);
    await page.waitForTimeout(250);
  }
  out.frames = Number(await page.evaluate(() => document.body.dataset.frames || 0));
  out.live_text = await page.textContent('#live');
  out.coverage_text = await page.textContent('#coverage');
  if (shot) await page.screenshot({ path: shot });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
