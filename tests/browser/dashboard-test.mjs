// Drives headless Chromium through the web dashboard and SQL explorer of a running Hourglass
// server whose demo tenant has data (`hourglass demo`), checking what a merchant sees against
// the public APIs.
//
//   HOURGLASS_URL=http://127.0.0.1:PORT HOURGLASS_READ_TOKEN=hgr_... HOURGLASS_WRITE_KEY=hgw_... \
//   OUTPUT_DIR=/some/dir node tests/browser/dashboard-test.mjs
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium). Screenshots go to OUTPUT_DIR. On success
// one JSON line goes to stdout ({"ok":true,...}) and the exit code is 0; on failure the error
// goes to stderr, {"ok":false,...} to stdout, exit 1.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

// Guards against a hang, not measures of speed: a loaded CI machine runs the debug build slowly.
const OVERALL_TIMEOUT_MS = 600_000;
const STEP_TIMEOUT_MS = 120_000;

const base = (process.env.HOURGLASS_URL || '').replace(/\/+$/, '');
const readToken = process.env.HOURGLASS_READ_TOKEN || '';
const writeKey = process.env.HOURGLASS_WRITE_KEY || '';
const outputDir = process.env.OUTPUT_DIR || '';
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const checks = [];

function check(condition, message, detail) {
  if (!condition) {
    const error = new Error(detail === undefined ? message : `${message}: ${JSON.stringify(detail)}`);
    throw error;
  }
  checks.push(message);
}

function sameJson(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function api(pathname, body, accept = 'application/json') {
  const response = await fetch(`${base}${pathname}`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${readToken}`, 'Content-Type': 'application/json', Accept: accept },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${pathname} answered ${response.status}: ${await response.text()}`);
  return accept === 'application/json' ? response.json() : response.text();
}

// The dashboard is loaded when every part of it says it is no longer busy and the chart has
// been drawn (or has shown why not).
async function settled(page) {
  await page.waitForFunction(() => {
    const root = document.querySelector('[data-testid="dashboard"]');
    if (!root || root.querySelector('[aria-busy="true"]')) return false;
    const chart = root.querySelector('[data-testid="chart"]');
    const realtime = root.querySelector('[data-testid="realtime-value"]');
    return chart && (chart.dataset.buckets !== undefined || chart.querySelector('[role="alert"]'))
      && realtime && realtime.dataset.value !== undefined;
  }, null, { timeout: STEP_TIMEOUT_MS }).catch(async (error) => {
    // Say what was still loading, so a failure explains itself.
    const state = await page.evaluate(() => ({
      busy: [...document.querySelectorAll('[aria-busy="true"]')].map((e) => e.dataset.testid || e.className),
      chart: { ...(document.querySelector('[data-testid="chart"]')?.dataset ?? {}) },
      alerts: [...document.querySelectorAll('[role="alert"]')].map((e) => e.textContent),
    }));
    if (outputDir) await page.screenshot({ path: path.join(outputDir, 'not-settled.png'), fullPage: true });
    throw new Error(`${error.message}; page state: ${JSON.stringify(state)}`);
  });
}

// What every panel, card and the chart show, to tell whether a change reached them.
async function snapshot(page) {
  return page.evaluate(() => {
    const panels = {};
    for (const section of document.querySelectorAll('[data-testid^="panel-"]')) {
      panels[section.dataset.testid] = { signature: section.dataset.signature, request: section.dataset.request };
    }
    const cards = {};
    for (const card of document.querySelectorAll('[data-testid^="metric-"]')) {
      const value = card.querySelector('.value');
      const change = card.querySelector('.change');
      cards[card.dataset.testid] = {
        value: JSON.parse(value.dataset.value ?? 'null'),
        text: value.textContent,
        change: JSON.parse(change.dataset.change ?? 'null'),
      };
    }
    const chart = document.querySelector('[data-testid="chart"]');
    const realtime = document.querySelector('[data-testid="realtime"]');
    return {
      panels,
      cards,
      chart: { ...chart.dataset, canvases: chart.querySelectorAll('canvas').length, series: chart.querySelectorAll('.u-series').length },
      realtime: { value: Number(realtime.querySelector('b').dataset.value), request: realtime.dataset.request },
      filters: [...document.querySelectorAll('[data-testid="filter-chip"]')].map((c) => c.textContent),
    };
  });
}

async function signIn(page, token) {
  await page.goto(`${base}/`);
  await page.fill('[data-testid="token-input"]', token);
  await page.click('[data-testid="sign-in"]');
}

async function screenshot(page, name) {
  const file = path.join(outputDir, name);
  // From the top: the sticky top bar would otherwise be drawn where the page was scrolled to.
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  const size = fs.statSync(file).size;
  check(size > 5_000, `screenshot ${name} written`, size);
  return file;
}

async function noHorizontalScroll(page, width) {
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(scrollWidth <= width, `nothing wider than the ${width} px viewport`, { scrollWidth });
}

async function main() {
  if (!base || !readToken || !writeKey || !outputDir) {
    throw new Error('HOURGLASS_URL, HOURGLASS_READ_TOKEN, HOURGLASS_WRITE_KEY and OUTPUT_DIR are required');
  }
  fs.mkdirSync(outputDir, { recursive: true });
  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    context.setDefaultTimeout(STEP_TIMEOUT_MS);
    const page = await context.newPage();
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const reports = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.pathname === '/api/v1/report' || url.pathname === '/api/v1/report/realtime') {
        reports.push({ path: url.pathname, body: JSON.parse(request.postData() || '{}') });
      }
    });

    // A bad token, and a write key, are refused with a clear message; nothing is stored.
    await signIn(page, 'hgr_this-is-not-a-token');
    const badToken = await page.textContent('[data-testid="sign-in-error"]');
    check(/not accepted/i.test(badToken), 'a bad token shows an error', badToken);
    check(await page.evaluate(() => localStorage.getItem('hourglass.readToken')) === null, 'a bad token is not kept');
    await signIn(page, writeKey);
    const wrongKind = await page.textContent('[data-testid="sign-in-error"]');
    check(/not a read token/i.test(wrongKind), 'a write key is refused as not a read token', wrongKind);

    // Sign in: the dashboard loads with every panel.
    await signIn(page, readToken);
    await page.waitForSelector('[data-testid="dashboard"]');
    await settled(page);
    const first = await snapshot(page);
    check(Object.keys(first.panels).length === 10, 'ten table panels', Object.keys(first.panels));
    check(first.chart.canvases > 0 && Number(first.chart.buckets) === 30, 'the chart is drawn by day for 30 days', first.chart);
    check(first.cards['metric-visitors'].value > 0, 'the demo tenant has visitors', first.cards);

    // The numbers equal the report API's answer to the same requests.
    const totalsRequest = reports.find((r) => r.path === '/api/v1/report' && r.body.metrics.length === 5)?.body;
    check(totalsRequest !== undefined, 'the dashboard asked for its top-line metrics');
    const totals = await api('/api/v1/report', totalsRequest);
    const metricIds = ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration'];
    check(sameJson(totalsRequest.metrics, metricIds), 'the top-line metrics are the five of the issue', totalsRequest.metrics);
    metricIds.forEach((id, i) => {
      check(sameJson(first.cards[`metric-${id}`].value, totals.totals.metrics[i]), `card ${id} equals the report API`,
        { card: first.cards[`metric-${id}`], api: totals.totals.metrics[i] });
    });
    check(first.cards['metric-visitors'].text === new Intl.NumberFormat('en-US').format(totals.totals.metrics[0]),
      'the visitors card shows the API value formatted', first.cards['metric-visitors'].text);
    for (const [id, panel] of Object.entries(first.panels)) {
      const answer = await api('/api/v1/report', JSON.parse(panel.request));
      const expected = JSON.stringify(answer.rows.map((r) => [r.dimensions[0], r.metrics]));
      check(panel.signature === expected, `${id} equals the report API`, { shown: panel.signature, api: expected });
      check(answer.rows.length > 0, `${id} has rows for the demo month`);
    }
    const chartRequest = reports.find((r) => r.path === '/api/v1/report' && r.body.dimensions?.[0] === 'time:day')?.body;
    const chartAnswer = await api('/api/v1/report', chartRequest);
    const chartSum = chartAnswer.rows.reduce((a, r) => a + r.metrics[0], 0);
    check(Number(first.chart.sum) === chartSum, 'the chart sums to the report API total by day', { shown: first.chart.sum, api: chartSum });

    // Comparison with the previous period: every card shows the API's change.
    await page.check('[data-testid="compare"]');
    await settled(page);
    const compared = await snapshot(page);
    const comparedTotals = await api('/api/v1/report', { ...totalsRequest, compare: 'previous_period' });
    metricIds.forEach((id, i) => {
      check(sameJson(compared.cards[`metric-${id}`].change, comparedTotals.totals.comparison.change[i]),
        `card ${id} shows the API's change`, { card: compared.cards[`metric-${id}`], api: comparedTotals.totals.comparison.change[i] });
    });
    check(compared.chart.series >= 3, 'the chart adds the previous period as a series', compared.chart);
    await page.uncheck('[data-testid="compare"]');
    await settled(page);

    // The date range changes the chart.
    await page.selectOption('[data-testid="period"]', '7d');
    await settled(page);
    const week = await snapshot(page);
    check(Number(week.chart.buckets) === 7 && week.chart.interval === 'day', 'last 7 days: seven daily points', week.chart);
    check(week.chart.first !== first.chart.first && week.chart.last === first.chart.last, 'the chart starts later and ends today', { week: week.chart, month: first.chart });
    check(Number(week.chart.sum) < Number(first.chart.sum), 'a week has fewer visitors than a month', { week: week.chart.sum, month: first.chart.sum });
    await page.selectOption('[data-testid="period"]', 'today');
    await settled(page);
    const today = await snapshot(page);
    check(today.chart.interval === 'hour' && Number(today.chart.buckets) >= 23, 'today: hourly points', today.chart);
    await page.selectOption('[data-testid="interval"]', 'day');
    await settled(page);
    check((await snapshot(page)).chart.buckets === '1', 'the interval control changes the chart (today by day: one point)');
    // This month runs past today: it is compared with the same days of last month, and the
    // chart draws nothing for the days still to come.
    const todayDay = week.chart.last;
    const [ty, tm, td] = todayDay.split('-').map(Number);
    const previousMonth = new Date(Date.UTC(ty, tm - 2, 1));
    const lastOfPrevious = new Date(Date.UTC(ty, tm - 1, 0)).getUTCDate();
    const pm = `${previousMonth.getUTCFullYear()}-${String(previousMonth.getUTCMonth() + 1).padStart(2, '0')}`;
    const expectedCompare = [`${pm}-01`, `${pm}-${String(Math.min(td, lastOfPrevious)).padStart(2, '0')}`];
    await page.selectOption('[data-testid="period"]', 'month');
    await page.check('[data-testid="compare"]');
    await settled(page);
    const monthRequest = reports.filter((r) => r.path === '/api/v1/report' && r.body.date_range === 'month' && r.body.compare).pop()?.body;
    check(sameJson(monthRequest?.compare, { date_range: expectedCompare }), 'this month is compared with the same days of last month', monthRequest);
    const monthShown = await snapshot(page);
    const monthTotals = await api('/api/v1/report', monthRequest);
    metricIds.forEach((id, i) => {
      check(sameJson(monthShown.cards[`metric-${id}`].change, monthTotals.totals.comparison.change[i]),
        `this month: card ${id} shows the API's change`, { card: monthShown.cards[`metric-${id}`], api: monthTotals.totals.comparison.change[i] });
    });
    const monthValues = JSON.parse(monthShown.chart.values);
    const todayIndex = Number(todayDay.slice(8, 10)) - 1;
    check(monthValues.slice(todayIndex + 1).every((v) => v === null) && monthValues.slice(0, todayIndex + 1).every((v) => v !== null),
      'the chart of this month stops at today', monthShown.chart);
    await page.uncheck('[data-testid="compare"]');
    await settled(page);
    // A custom range: the last three days of the month shown first.
    const last = first.chart.last;
    const minus = (day, n) => new Date(Date.parse(`${day}T00:00:00Z`) - n * 86_400_000).toISOString().slice(0, 10);
    await page.selectOption('[data-testid="period"]', 'custom');
    await page.fill('[data-testid="from"]', minus(last, 2));
    await page.fill('[data-testid="to"]', last);
    await page.click('[data-testid="apply-range"]');
    await settled(page);
    const custom = await snapshot(page);
    check(custom.chart.first === minus(last, 2) && custom.chart.last === last && custom.chart.interval === 'day', 'a custom range sets the chart', custom.chart);
    // An empty range shows empty states, not errors.
    await page.fill('[data-testid="from"]', '2020-01-01');
    await page.fill('[data-testid="to"]', '2020-01-07');
    await page.click('[data-testid="apply-range"]');
    await settled(page);
    check(await page.isVisible('[data-testid="empty"]'), 'an empty range says so');
    check(await page.locator('[data-testid="panel-empty"]').count() === 10, 'every panel shows its empty state');

    // Click-to-filter: one click on the top source filters every panel, card and the chart.
    await page.selectOption('[data-testid="period"]', '30d');
    await settled(page);
    const before = await snapshot(page);
    const row = page.locator('[data-testid="panel-sources"] [data-testid="row"]').first();
    const source = await row.getAttribute('data-label');
    const sent = reports.length;
    await row.click();
    await settled(page);
    const after = await snapshot(page);
    check(after.filters.length === 1 && after.filters[0].includes(source), 'a filter chip names the source', after.filters);
    for (const id of Object.keys(before.panels)) {
      check(after.panels[id].signature !== before.panels[id].signature, `${id} changes with the filter`, { before: before.panels[id].signature, after: after.panels[id].signature });
      check(JSON.stringify(JSON.parse(after.panels[id].request).filters).includes(`["is","visit:source",[${JSON.stringify(source)}]]`), `${id} asks with the filter`);
    }
    check(after.cards['metric-visitors'].value < before.cards['metric-visitors'].value, 'the visitors card drops to the source', { before: before.cards, after: after.cards });
    check(after.chart.sum !== before.chart.sum, 'the chart changes with the filter', { before: before.chart, after: after.chart });
    const filtered = reports.slice(sent);
    check(filtered.length >= 12 && filtered.every((r) => JSON.stringify(r.body.filters || []).includes('visit:source')),
      'every request after the click carries the filter', filtered.map((r) => r.body.filters));
    check(after.realtime.request.includes('visit:source') && after.realtime.value !== before.realtime.value,
      'visitors now follows the filter', { before: before.realtime, after: after.realtime });
    const filteredTotals = await api('/api/v1/report', { ...totalsRequest, filters: [['is', 'visit:source', [source]]] });
    check(sameJson(after.cards['metric-visitors'].value, filteredTotals.totals.metrics[0]), 'the filtered visitors equal the report API');
    await screenshot(page, 'dashboard-filtered-1280.png');
    // Removing the chip restores the dashboard.
    await page.click('[data-testid="filter-chip"]');
    await settled(page);
    const restored = await snapshot(page);
    check(sameJson(restored.cards, before.cards) && restored.filters.length === 0, 'removing the filter restores the numbers');

    // Screenshots at both widths; at 390 px nothing overflows sideways.
    await screenshot(page, 'dashboard-1280.png');
    await noHorizontalScroll(page, 1280);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await settled(page);
    await noHorizontalScroll(page, 390);
    await screenshot(page, 'dashboard-390.png');

    // SQL explorer: a query, its CSV, and an error.
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.click('nav >> text=SQL explorer');
    await page.waitForSelector('[data-testid="explorer"]');
    const sql = "SELECT name, count(*) AS n FROM events GROUP BY name ORDER BY n DESC, name";
    await page.fill('[data-testid="sql-editor"]', sql);
    await page.click('[data-testid="sql-run"]');
    await page.waitForSelector('[data-testid="sql-results"]');
    const shown = await page.$$eval('[data-testid="sql-results"] tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    const expected = await api('/api/v1/query', { sql });
    check(sameJson(shown, expected.map((r) => [r.name, String(r.n)])), 'the explorer shows the query API result', { shown, expected });
    check(shown.some((r) => r[0] === 'purchase') && shown.some((r) => r[0] === 'pageview'), 'demo traffic has pageviews and purchases', shown);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-testid="sql-csv"]')]);
    const csvPath = path.join(outputDir, 'query.csv');
    await download.saveAs(csvPath);
    const csv = fs.readFileSync(csvPath, 'utf8').trim().split('\n');
    check(csv[0] === 'name,n' && csv.length === expected.length + 1, 'the CSV download has the header and every row', csv.slice(0, 3));
    check(download.suggestedFilename().endsWith('.csv'), 'the download is named .csv', download.suggestedFilename());
    await screenshot(page, 'sql-1280.png');
    await page.fill('[data-testid="sql-editor"]', 'SELECT no_such_column FROM events');
    await page.click('[data-testid="sql-run"]');
    const sqlError = await page.textContent('[data-testid="sql-error"]');
    check(/invalid_request/.test(sqlError) && /no_such_column/.test(sqlError), 'a bad query shows the API error', sqlError);
    await page.setViewportSize({ width: 390, height: 844 });
    await noHorizontalScroll(page, 390);
    await screenshot(page, 'sql-390.png');

    // Signing out forgets the token.
    await page.click('[data-testid="sign-out"]');
    await page.waitForSelector('[data-testid="sign-in-form"]');
    check(await page.evaluate(() => localStorage.getItem('hourglass.readToken')) === null, 'signing out forgets the token');
    check(pageErrors.length === 0, 'no script errors on the page', pageErrors);
    return { source, visitors: first.cards['metric-visitors'].value };
  } finally {
    await browser.close();
  }
}

const timer = setTimeout(() => {
  console.error('the dashboard test timed out');
  console.log(JSON.stringify({ ok: false, error: 'timeout', checks }));
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

main().then((result) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ ok: true, checks: checks.length, ...result }));
}).catch((error) => {
  clearTimeout(timer);
  console.error(error.stack || String(error));
  console.log(JSON.stringify({ ok: false, error: String(error.message || error), checks }));
  process.exit(1);
});
