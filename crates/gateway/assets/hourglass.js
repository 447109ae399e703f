/*
 * Hourglass browser tracker: no dependencies, no cookies, nothing stored on the device.
 *   <script defer src="https://HOST/js/hourglass.js" data-site-key="hgp_..."></script>
 * Script attributes:
 *   data-site-key        the site's public key (required)
 *   data-api             where events go; default the origin of this script's src
 *   data-outbound-links  "Outbound Link: Click" {url} on clicks of links to other hosts
 *   data-file-downloads  "File Download" {url} on clicks of links to common file types
 *   data-hash-mode       the #fragment is part of the page (hash routers)
 *   data-manual          no automatic pageviews; call hourglass('pageview') yourself
 * API: hourglass(name, {props, revenue: {amount, currency}, interactive, url, client_id,
 *   user_id, callback}), every option optional; prop values become strings; callback runs
 *   once the event is handed to the browser. Calls made before load are replayed from the stub
 *   window.hourglass = window.hourglass || function () {
 *     (window.hourglass.q = window.hourglass.q || []).push(arguments) };
 * Opt out in a browser with localStorage.hourglass_ignore = 'true'.
 */
(function () {
  'use strict';

  const w = window, d = document, loc = location;
  const script = d.currentScript || d.querySelector('script[data-site-key]');
  if (!script) return;

  const has = (name) => script.hasAttribute(name);
  const siteKey = script.getAttribute('data-site-key');
  const api = script.getAttribute('data-api') || new URL(script.src, loc.href).origin;
  const endpoint = api.replace(/\/+$/, '') + '/api/v1/collect';
  const hashMode = has('data-hash-mode');
  const manual = has('data-manual');

  let warned = false;
  function ignored() {
    if (loc.protocol === 'file:') return true;
    let off = false;
    try { off = w.localStorage.getItem('hourglass_ignore') === 'true'; } catch (e) { /* blocked */ }
    if (off && !warned) {
      warned = true;
      console.warn('hourglass: ignoring events, localStorage.hourglass_ignore is "true"');
    }
    return off;
  }

  // The referrer belongs to the page load; pageviews after a client-side navigation have none.
  let referrer = d.referrer || null;
  let pageviews = 0;
  let lastPage = null;

  function pageKey() { return loc.pathname + loc.search + (hashMode ? loc.hash : ''); }
  function pageUrl() { return hashMode ? loc.href : loc.href.split('#')[0]; }

  function post(json, done) {
    let queued = false;
    try {
      queued = !!(navigator.sendBeacon &&
        navigator.sendBeacon(endpoint, new Blob([json], { type: 'text/plain' })));
    } catch (e) { /* fall back to fetch */ }
    if (queued || !w.fetch) return done();
    fetch(endpoint, {
      method: 'POST', body: json, keepalive: true, credentials: 'omit',
      headers: { 'Content-Type': 'text/plain' },
    }).then(done, done);
  }

  function send(name, opts) {
    opts = opts || {};
    let cb = typeof opts.callback === 'function' ? opts.callback : null;
    const done = () => { if (cb) { const f = cb; cb = null; f(); } };
    if (!name || !siteKey || ignored()) return done();

    if (name === 'pageview') {
      if (pageviews++ > 0) referrer = null;
      lastPage = pageKey();
    }
    const body = {
      site_key: siteKey,
      name: String(name),
      url: opts.url != null ? String(opts.url) : pageUrl(),
      referrer: referrer,
      screen_width: w.innerWidth | 0,
      language: navigator.language || null,
    };
    if (opts.props && typeof opts.props === 'object') {
      const props = {};
      for (const k of Object.keys(opts.props)) {
        if (opts.props[k] != null) props[k] = String(opts.props[k]);
      }
      if (Object.keys(props).length) body.props = props;
    }
    const rev = opts.revenue;
    if (rev && rev.amount != null && Number.isFinite(Number(rev.amount))) {
      body.revenue = Number(rev.amount);
      if (rev.currency) body.currency = String(rev.currency).toUpperCase();
    }
    if (opts.interactive != null) body.interactive = !!opts.interactive;
    if (opts.client_id != null) body.client_id = String(opts.client_id);
    if (opts.user_id != null) body.user_id = String(opts.user_id);
    post(JSON.stringify(body), done);
  }

  // Automatic pageviews: skip when the page (path, query, hash in hash mode) did not change.
  function autoPageview() {
    if (pageKey() !== lastPage) send('pageview');
  }

  // Links: outbound clicks and file downloads. sendBeacon outlives the page, so navigation is
  // never delayed.
  const fileTypes = new RegExp('\\.(pdf|xlsx|docx|txt|rtf|csv|exe|key|pps|ppt|pptx|7z|pkg|rar|gz|' +
    'zip|avi|mov|mp4|mpeg|wmv|midi|mp3|wav|wma|dmg|iso|msi)$', 'i');
  function onLinkClick(e) {
    if (e.type === 'auxclick' && e.button !== 1) return;
    const a = e.target && e.target.closest ? e.target.closest('a[href]') : null;
    if (!a) return;
    let u;
    try {
      u = new URL(typeof a.href === 'string' ? a.href : a.getAttribute('href'), loc.href);
    } catch (err) { return; }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return;
    if (has('data-file-downloads') && fileTypes.test(u.pathname)) {
      send('File Download', { props: { url: u.href } });
    } else if (has('data-outbound-links') && u.host !== loc.host) {
      send('Outbound Link: Click', { props: { url: u.href } });
    }
  }
  if (has('data-outbound-links') || has('data-file-downloads')) {
    d.addEventListener('click', onLinkClick);
    d.addEventListener('auxclick', onLinkClick);
  }

  const queue = (w.hourglass && w.hourglass.q) || [];
  w.hourglass = function (name, opts) { send(name, opts); };

  function start() {
    if (!manual) {
      const push = history.pushState;
      if (push) {
        history.pushState = function () {
          const r = push.apply(this, arguments);
          autoPageview();
          return r;
        };
      }
      w.addEventListener('popstate', autoPageview);
      if (hashMode) w.addEventListener('hashchange', autoPageview);
      autoPageview();
    }
    for (const args of queue) send.apply(null, args);
  }

  // A prerendered page is counted when it is shown.
  if (d.visibilityState === 'prerender') {
    d.addEventListener('visibilitychange', function onShow() {
      if (d.visibilityState === 'prerender') return;
      d.removeEventListener('visibilitychange', onShow);
      start();
    });
  } else {
    start();
  }
})();
