// Drives the daemon's page in Debian's headless chromium for tests/page.rs:
//   node page.mjs <page url> <group> <screenshot dir> <user data dir>
// waits until every panel has drawn (or failed), opens the drill-down for <group> from the
// top-groups table, writes screenshots, and prints one JSON report on stdout.
import { chromium } from 'playwright-core';

const [url, group, shots, profile] = process.argv.slice(2);
const origin = new URL(url).origin;
const report = { console: [], outside: [], panels: [], drill: null };

const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 1000 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.console.push(m.text()); });
  page.on('pageerror', (e) => report.console.push('uncaught: ' + e.message));
  // The page must need nothing but the daemon.
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u.startsWith(origin) || u.startsWith('data:')) return route.continue();
    report.outside.push(u);
    return route.abort();
  });
  await page.goto(url);
  await page.waitForSelector('body[data-ready=true]', { timeout: 60000 });
  // Every panel has left "loading" (the first round draws all of them).
  await page.waitForFunction(() => ![...document.querySelectorAll('.panel')].some((p) => p.dataset.state === 'loading'), null, { timeout: 60000 });
  const panels = () => page.$$eval('.panel', (ps) => ps.map((p) => ({
    row: p.closest('.row').dataset.row, title: p.dataset.title, state: p.dataset.state,
    message: p.querySelector('.msg').textContent,
  })));
  const settled = (sel) => page.waitForFunction((s) => {
    const ps = [...document.querySelectorAll(s)];
    return ps.length && !ps.some((p) => p.dataset.state === 'loading');
  }, sel, { timeout: 60000 });
  report.first = await panels();
  report.alerts = await page.$$eval('#alerts .alert', (as) => as.map((a) => a.textContent));

  // The range control: every panel draws again over the last minute.
  await page.selectOption('#range', '60');
  await settled('.panel');
  report.panels = await panels();
  await page.screenshot({ path: `${shots}/page.png` });

  // Pause: no query while paused.
  let asked = 0;
  const count = (r) => { if (r.url().includes('/api/v1/')) asked += 1; };
  await page.click('#pause');
  // Queries already sent finish; no more start.
  await page.waitForTimeout(1500);
  page.on('request', count);
  await page.waitForTimeout(7000);
  page.off('request', count);
  report.paused = { asked, status: await page.textContent('#status'), button: await page.textContent('#pause') };
  await page.click('#pause');

  // The drill-down, from the top-groups table.
  const link = page.locator(`.panel[data-title="Top groups by CPU"] a.group-link[data-group="${group}"]`);
  await link.click({ timeout: 30000 });
  await settled('#drill .panel');
  const cpu = page.locator('#drill .panel[data-title="CPU by group"]');
  report.drill = {
    title: await page.textContent('#drill h2'),
    hash: await page.evaluate(() => location.hash),
    state: await cpu.getAttribute('data-state'),
    // The legend's first row is the time axis.
    legend: await cpu.locator('.u-legend .u-series:not(:first-child) .u-label').allTextContents(),
  };
  await page.screenshot({ path: `${shots}/page-group.png` });
} finally {
  await ctx.close();
}
console.log(JSON.stringify(report));
