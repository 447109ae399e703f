// Drives headless Chromium through a tiny two-origin site that embeds hourglass.js from a running
// Hourglass server, and checks that the tracker's requests reach it.
//
//   HOURGLASS_URL=http://127.0.0.1:PORT HOURGLASS_SITE_KEY=hgp_... node tests/browser/tracker-test.mjs
//
// Optional: CHROMIUM_PATH (default /usr/bin/chromium).
//
// The visit: http://localhost:S/start links to http://127.0.0.1:L/landing?utm_source=newsletter&
// utm_medium=email (a pageview whose referrer is the start page), then a pushState to
// /app/settings (a pageview, referrer null), then hourglass('signup', {props: {plan: 'pro'}}).
// Every collect must answer 202. On success one JSON line goes to stdout:
//   {"ok":true,"landing_port":L,"start_url":"http://localhost:S/start","collects":3,...}
// and the exit code is 0; on failure the error goes to stderr, {"ok":false,...} to stdout, exit 1.
import http from 'node:http';
import { chromium } from 'playwright-core';

const OVERALL_TIMEOUT_MS = 60_000;
const STEP_TIMEOUT_MS = 20_000;
// A desktop Chrome on Linux; Hourglass drops "HeadlessChrome" as a bot.
const USER_AGENT =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

const hourglassUrl = (process.env.HOURGLASS_URL || '').replace(/\/+$/, '');
const siteKey = process.env.HOURGLASS_SITE_KEY || '';
const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

const escapeHtml = (s) =>
  String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function landingPage() {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>Landing</title>
<script defer src="${escapeHtml(hourglassUrl)}/js/hourglass.js" data-site-key="${escapeHtml(siteKey)}"></script>
</head>
<body>
<h1>Landing</h1>
<button id="navigate" onclick="history.pushState({}, '', '/app/settings')">Settings</button>
<button id="signup" onclick="hourglass('signup', {props: {plan: 'pro'}})">Sign up</button>
</body>
</html>
`;
}

function startPage(landingUrl) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<meta name="referrer" content="unsafe-url">
<title>Start</title>
</head>
<body>
<a id="go" href="${escapeHtml(landingUrl)}">Read the newsletter offer</a>
</body>
</html>
`;
}

function html(res, body) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(body);
}

function notFound(res) {
  res.writeHead(404, { 'Content-Type': 'text/plain' });
  res.end('not found\n');
}

// Listens on 127.0.0.1 (and on ::1 at the same port when the machine has IPv6 loopback, since
// Chromium may try either address for "localhost").
async function serve(handler, alsoIpv6) {
  const servers = [http.createServer(handler)];
  await new Promise((resolve, reject) => {
    servers[0].once('error', reject);
    servers[0].listen(0, '127.0.0.1', resolve);
  });
  const port = servers[0].address().port;
  if (alsoIpv6) {
    const v6 = http.createServer(handler);
    const ok = await new Promise((resolve) => {
      v6.once('error', () => resolve(false));
      v6.listen(port, '::1', () => resolve(true));
    });
    if (ok) servers.push(v6);
  }
  return { port, close: () => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))) };
}

// Chromium does not show DevTools (so Playwright) the body of a Blob sent with sendBeacon, so the
// page keeps a copy of each beacon body; the real sendBeacon still sends the same Blob.
const RECORD_BEACONS = `(() => {
  const original = navigator.sendBeacon && navigator.sendBeacon.bind(navigator);
  if (!original) return;
  window.__beaconBodies = [];
  navigator.sendBeacon = function (url, data) {
    const copy = data instanceof Blob ? data.text() : Promise.resolve(data == null ? null : String(data));
    window.__beaconBodies.push(copy);
    return original(url, data);
  };
})();`;

async function bodyOf(page, request, beaconIndex) {
  let raw = request.postData();
  if (raw == null) {
    raw = await page.evaluate((i) => (window.__beaconBodies || [])[i] || null, beaconIndex);
  }
  if (raw == null) throw new Error(`collect request has no readable body (${request.url()})`);
  try {
    return JSON.parse(raw);
  } catch (e) {
    throw new Error(`collect body is not JSON: ${raw}`);
  }
}

function expectEqual(what, actual, expected) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

async function main() {
  if (!/^https?:\/\//.test(hourglassUrl)) throw new Error('set HOURGLASS_URL, e.g. http://127.0.0.1:8080');
  if (!siteKey) throw new Error('set HOURGLASS_SITE_KEY');

  const landing = await serve((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/landing' || path.startsWith('/app/')) return html(res, landingPage());
    notFound(res);
  }, false);
  const landingUrl = `http://127.0.0.1:${landing.port}/landing?utm_source=newsletter&utm_medium=email`;
  const start = await serve((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/start') return html(res, startPage(landingUrl));
    notFound(res);
  }, true);
  const startUrl = `http://localhost:${start.port}/start`;

  const scriptUrl = `${hourglassUrl}/js/hourglass.js`;
  const collectUrl = `${hourglassUrl}/api/v1/collect`;
  const isCollect = (r) => r.url() === collectUrl && r.method() === 'POST';

  const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ['--no-sandbox'] });
  const cleanup = async () => {
    await browser.close().catch(() => {});
    await Promise.all([landing.close(), start.close()]);
  };
  try {
    const context = await browser.newContext({ userAgent: USER_AGENT, viewport: { width: 1280, height: 800 } });
    await context.addInitScript(RECORD_BEACONS);
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);

    const problems = [];
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    const sent = [];
    page.on('request', (r) => { if (isCollect(r)) sent.push(r); });
    const failed = [];
    page.on('requestfailed', (r) => failed.push(`${r.url()}: ${r.failure() && r.failure().errorText}`));
    page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.url()}: HTTP ${r.status()}`); });
    // Adds what the page saw to an error, for a diagnosis without rerunning.
    const explain = (e) => {
      const seen = [...failed, ...problems];
      if (seen.length) e.message += `\nthe page saw:\n  ${seen.join('\n  ')}`;
      return e;
    };

    // One collect caused by `action`; checks the status and returns the JSON body that was sent.
    const collect = async (step, action) => {
      const [response] = await Promise.all([
        page.waitForResponse((r) => isCollect(r.request())),
        action(),
      ]);
      if (response.status() !== 202) {
        throw new Error(`${step}: collect answered ${response.status()}: ${await response.text().catch(() => '')}`);
      }
      // Every collect so far came from the landing document, so its beacons are numbered alike.
      return bodyOf(page, response.request(), sent.length - 1);
    };

    await page.goto(startUrl);
    const scriptResponse = page.waitForResponse((r) => r.url() === scriptUrl).catch((e) => e);
    const first = await collect('landing pageview', () => page.click('#go')).catch((e) => {
      throw explain(e);
    });
    const script = await scriptResponse;
    if (script instanceof Error) throw script;
    if (script.status() !== 200) throw new Error(`${scriptUrl} answered ${script.status()}`);
    const cacheControl = script.headers()['cache-control'] || '';
    if (!cacheControl.includes('max-age')) {
      throw new Error(`${scriptUrl}: Cache-Control has no max-age: ${JSON.stringify(cacheControl)}`);
    }
    expectEqual('landing: site_key', first.site_key, siteKey);
    expectEqual('landing: name', first.name, 'pageview');
    expectEqual('landing: url', first.url, landingUrl);
    expectEqual('landing: referrer', first.referrer, startUrl);
    expectEqual('landing: screen_width', first.screen_width, 1280);
    if (typeof first.language !== 'string' || !first.language) throw new Error('landing: no language');

    const second = await collect('pushState pageview', () => page.click('#navigate'));
    expectEqual('pushState: name', second.name, 'pageview');
    expectEqual('pushState: url', second.url, `http://127.0.0.1:${landing.port}/app/settings`);
    expectEqual('pushState: referrer', second.referrer, null);

    const third = await collect('signup event', () => page.click('#signup'));
    expectEqual('signup: name', third.name, 'signup');
    expectEqual('signup: props', third.props, { plan: 'pro' });
    expectEqual('signup: url', third.url, `http://127.0.0.1:${landing.port}/app/settings`);

    // Nothing else may be sent (for example a second pageview for the same page).
    await page.waitForTimeout(500);
    if (sent.length !== 3) {
      throw new Error(`expected 3 collect requests, saw ${sent.length}: ${sent.map((r) => r.postData()).join(' | ')}`);
    }
    if (failed.length || problems.length) throw explain(new Error('the page saw errors'));

    await cleanup();
    return { ok: true, landing_port: landing.port, start_url: startUrl, landing_url: landingUrl, collects: sent.length };
  } catch (e) {
    await cleanup();
    throw e;
  }
}

const timer = setTimeout(() => {
  console.error(`tracker-test: timed out after ${OVERALL_TIMEOUT_MS / 1000} s`);
  console.log(JSON.stringify({ ok: false, error: 'timeout' }));
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

main().then(
  (result) => {
    clearTimeout(timer);
    console.log(JSON.stringify(result));
    process.exit(0);
  },
  (err) => {
    clearTimeout(timer);
    console.error(`tracker-test: ${err && err.stack ? err.stack : err}`);
    console.log(JSON.stringify({ ok: false, error: String(err && err.message ? err.message : err) }));
    process.exit(1);
  },
);
