// Hourglass dashboard and SQL explorer. Plain JavaScript, no build step: the gateway serves this
// file from the binary. It talks only to the public APIs (POST /api/v1/report,
// /api/v1/report/realtime and /api/v1/query) with the read token the merchant signs in with;
// the token stays in this browser's localStorage.
'use strict';

(() => {
  const TOKEN_KEY = 'hourglass.readToken';
  const MAX_PARALLEL = 4;
  const REALTIME_EVERY_MS = 30_000;
  const MAX_RENDERED_ROWS = 2000;

  const PRESETS = [
    ['today', 'Today'], ['yesterday', 'Yesterday'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days'],
    ['month', 'This month'], ['last_month', 'Last month'], ['12mo', 'Last 12 months'], ['year', 'This year'],
    ['all', 'All time'], ['custom', 'Custom range…'],
  ];
  const INTERVALS = [['hour', 'Hourly'], ['day', 'Daily'], ['week', 'Weekly'], ['month', 'Monthly']];
  const DEFAULT_INTERVAL = {
    today: 'hour', yesterday: 'hour', '7d': 'day', '30d': 'day', month: 'day', last_month: 'day',
    '12mo': 'month', year: 'month', all: 'month',
  };
  const METRICS = [
    { id: 'visitors', name: 'Unique visitors' },
    { id: 'visits', name: 'Visits' },
    { id: 'pageviews', name: 'Pageviews' },
    { id: 'bounce_rate', name: 'Bounce rate', lowerIsBetter: true, points: true },
    { id: 'visit_duration', name: 'Visit duration' },
  ];
  const PANELS = [
    { id: 'pages', title: 'Top pages', dim: 'event:page', metrics: ['visitors', 'pageviews'], heads: ['Visitors', 'Views'] },
    { id: 'entry_pages', title: 'Entry pages', dim: 'visit:entry_page', metrics: ['visits', 'bounce_rate'], heads: ['Visits', 'Bounce'] },
    { id: 'exit_pages', title: 'Exit pages', dim: 'visit:exit_page', metrics: ['visits'], heads: ['Visits'] },
    { id: 'sources', title: 'Sources', dim: 'visit:source', metrics: ['visitors'], heads: ['Visitors'] },
    { id: 'channels', title: 'Channels', dim: 'visit:channel', metrics: ['visitors'], heads: ['Visitors'] },
    { id: 'campaigns', title: 'Campaigns', dim: 'visit:utm_campaign', metrics: ['visitors'], heads: ['Visitors'], hideNotSet: true },
    { id: 'countries', title: 'Countries', dim: 'visit:country', metrics: ['visitors'], heads: ['Visitors'] },
    { id: 'devices', title: 'Devices', dim: 'visit:device', metrics: ['visitors'], heads: ['Visitors'] },
    { id: 'browsers', title: 'Browsers', dim: 'visit:browser', metrics: ['visitors'], heads: ['Visitors'] },
    { id: 'os', title: 'Operating systems', dim: 'visit:os', metrics: ['visitors'], heads: ['Visitors'] },
  ];
  const DIMENSION_NAMES = {
    'event:page': 'Page', 'visit:entry_page': 'Entry page', 'visit:exit_page': 'Exit page',
    'visit:source': 'Source', 'visit:channel': 'Channel', 'visit:utm_campaign': 'Campaign',
    'visit:country': 'Country', 'visit:device': 'Device', 'visit:browser': 'Browser', 'visit:os': 'OS',
  };
  const RATE_METRICS = new Set(['bounce_rate', 'engagement_rate', 'conversion_rate']);

  const app = document.getElementById('app');
  const numberFormat = new Intl.NumberFormat('en-US');
  const countryNames = typeof Intl.DisplayNames === 'function' ? new Intl.DisplayNames(['en'], { type: 'region' }) : null;

  // ---------------------------------------------------------------- small DOM helper

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else if (key === 'class') el.className = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'style') el.setAttribute('style', value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message, path) {
      super(message);
      this.status = status;
      this.code = code;
      this.path = path;
    }
  }

  let running = 0;
  const waiting = [];
  /** The signed-in tenant's time zone, once a report told it. */
  let tenantZone = null;
  // At most MAX_PARALLEL requests at once: the querier queues a tenant's queries beyond a few,
  // and a dashboard's dozen panels should not crowd out other readers.
  async function slot(work) {
    while (running >= MAX_PARALLEL) await new Promise((resolve) => waiting.push(resolve));
    running += 1;
    try {
      return await work();
    } finally {
      running -= 1;
      const next = waiting.shift();
      if (next) next();
    }
  }

  function token() {
    return localStorage.getItem(TOKEN_KEY) || '';
  }

  async function call(path, body, { accept = 'application/json', bearer = token() } = {}) {
    return slot(async () => {
      for (let attempt = 0; ; attempt += 1) {
        let response;
        try {
          response = await fetch(path, {
            method: body === undefined ? 'GET' : 'POST',
            headers: { Authorization: `Bearer ${bearer}`, 'Content-Type': 'application/json', Accept: accept },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
        } catch (e) {
          throw new ApiError(0, 'network', `Cannot reach Hourglass (${e.message}).`);
        }
        if (response.status === 429 && attempt < 3) {
          const after = Math.min(Number(response.headers.get('Retry-After')) || 1, 5);
          await new Promise((resolve) => setTimeout(resolve, after * 1000));
          continue;
        }
        if (!response.ok) {
          let code = `http_${response.status}`;
          let message = response.statusText || 'request failed';
          let at;
          try {
            const error = (await response.json()).error || {};
            code = error.code || code;
            message = error.message || message;
            at = error.path;
          } catch (_) { /* not JSON: keep the status line */ }
          const error = new ApiError(response.status, code, message, at);
          error.bearer = bearer;
          throw error;
        }
        if (accept !== 'application/json') return response.text();
        const json = await response.json();
        // Reports answer in the tenant's zone (the page never names one): remember it for
        // "now" on the chart and for comparisons of partial periods.
        if (path.startsWith('/api/v1/report') && typeof json?.meta?.timezone === 'string') tenantZone = json.meta.timezone;
        return json;
      }
    });
  }

  // ---------------------------------------------------------------- formatting

  function formatMetric(metric, value) {
    if (value === null || value === undefined) return '–';
    if (metric === 'bounce_rate' || metric === 'engagement_rate' || metric === 'conversion_rate') return `${value}%`;
    if (metric === 'visit_duration') return formatDuration(value);
    if (metric === 'revenue') return `$${numberFormat.format(value)}`;
    return numberFormat.format(value);
  }

  function formatDuration(seconds) {
    const s = Math.round(seconds);
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
    return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  }

  function formatChange(metric, change) {
    if (change === null || change === undefined) return '';
    const sign = change > 0 ? '+' : change < 0 ? '−' : '±';
    const magnitude = Math.abs(change);
    return RATE_METRICS.has(metric) ? `${sign}${magnitude} pts` : `${sign}${magnitude}%`;
  }

  function dimensionLabel(dim, value) {
    if (dim === 'visit:country' && countryNames && /^[A-Z]{2}$/.test(value)) {
      try {
        return `${countryNames.of(value)} (${value})`;
      } catch (_) { /* an unknown code: show it as it is */ }
    }
    return value;
  }

  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  // Time labels as the report API writes them: hours `2026-10-25T02:00:00+01:00`, days and
  // weeks `2026-10-25`, months `2026-10`.
  function formatTimeLabel(label, interval, long) {
    if (typeof label !== 'string') return '';
    const [date, time] = label.split('T');
    const [year, month, day] = date.split('-');
    const monthName = MONTHS[Number(month) - 1] || month;
    if (interval === 'month') return `${monthName} ${year}`;
    const dayText = `${monthName} ${Number(day)}`;
    if (interval === 'hour') return long ? `${dayText}, ${time.slice(0, 5)}` : time.slice(0, 5);
    return interval === 'week' ? `Week of ${dayText}` : dayText;
  }

  // ---------------------------------------------------------------- state in the address

  function readState() {
    const q = new URLSearchParams(location.search);
    const period = PRESETS.some(([id]) => id === q.get('period')) ? q.get('period') : '30d';
    const interval = INTERVALS.some(([id]) => id === q.get('interval')) ? q.get('interval') : null;
    const metric = METRICS.some((m) => m.id === q.get('metric')) ? q.get('metric') : 'visitors';
    const filters = q.getAll('f').map((f) => {
      const at = f.indexOf('=');
      return at > 0 ? { dim: f.slice(0, at), value: f.slice(at + 1) } : null;
    }).filter((f) => f && DIMENSION_NAMES[f.dim]);
    return {
      period,
      from: q.get('from') || '',
      to: q.get('to') || '',
      compare: q.get('compare') === '1',
      interval: interval || DEFAULT_INTERVAL[period] || 'day',
      metric,
      filters,
    };
  }

  function writeState(state) {
    const q = new URLSearchParams();
    q.set('period', state.period);
    if (state.period === 'custom') {
      q.set('from', state.from);
      q.set('to', state.to);
    }
    if (state.compare) q.set('compare', '1');
    if (state.interval !== (DEFAULT_INTERVAL[state.period] || 'day')) q.set('interval', state.interval);
    if (state.metric !== 'visitors') q.set('metric', state.metric);
    for (const f of state.filters) q.append('f', `${f.dim}=${f.value}`);
    history.pushState(null, '', `/?${q}`);
  }

  // Presets whose range runs past today (whole calendar periods, as the report API defines
  // them): compared with the same part of the previous period rather than all of it.
  const PARTIAL_PERIODS = new Set(['month', 'year', '12mo']);

  /** Today and now in the tenant's zone: `{ day: 'YYYY-MM-DD', stamp: 'YYYY-MM-DDTHH:MM' }`. */
  function tenantNow() {
    if (!tenantZone) return null;
    try {
      const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
        timeZone: tenantZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
      }).formatToParts(new Date()).map((p) => [p.type, p.value]));
      const day = `${parts.year}-${parts.month}-${parts.day}`;
      return { day, stamp: `${day}T${parts.hour}:${parts.minute}` };
    } catch (_) {
      return null;
    }
  }

  /** `YYYY-MM-DD` of a date `months` calendar months earlier (the day clamped to the month's end). */
  function monthsBefore(day, months) {
    const [y, m, d] = day.split('-').map(Number);
    const total = y * 12 + (m - 1) - months;
    const year = Math.floor(total / 12);
    const month = total % 12;
    const last = new Date(Date.UTC(year, month + 1, 0)).getUTCDate();
    return `${String(year).padStart(4, '0')}-${String(month + 1).padStart(2, '0')}-${String(Math.min(d, last)).padStart(2, '0')}`;
  }

  /** The report API's `compare` for a period: "this month so far" against the same days of last month. */
  function comparison(period) {
    const now = tenantNow();
    if (!PARTIAL_PERIODS.has(period) || now === null) return 'previous_period';
    const today = now.day;
    const [y, m] = today.split('-');
    const start = period === 'month' ? `${y}-${m}-01` : period === 'year' ? `${y}-01-01` : monthsBefore(`${y}-${m}-01`, 11);
    const back = period === 'month' ? 1 : 12;
    return { date_range: [monthsBefore(start, back), monthsBefore(today, back)] };
  }

  function dateRange(state) {
    return state.period === 'custom' ? [state.from, state.to] : state.period;
  }

  function reportFilters(state) {
    return state.filters.map((f) => ['is', f.dim, [f.value]]);
  }

  // ---------------------------------------------------------------- shell

  function navigate(path) {
    history.pushState(null, '', path);
    render();
  }

  function topbar(current) {
    const link = (path, text) => h('a', {
      href: path,
      'aria-current': current === path ? 'page' : null,
      onclick: (e) => { e.preventDefault(); navigate(path); },
    }, text);
    return h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '/', onclick: (e) => { e.preventDefault(); navigate('/'); } },
        h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Hourglass'),
      h('nav', { class: 'nav', 'aria-label': 'Views' }, link('/', 'Dashboard'), link('/sql', 'SQL explorer')),
      h('span', { class: 'spacer' }),
      h('button', { class: 'link-button', type: 'button', 'data-testid': 'sign-out', onclick: () => signOut() }, 'Sign out'));
  }

  let teardown = () => {};

  function render() {
    teardown();
    teardown = () => {};
    app.replaceChildren();
    if (!token()) {
      renderSignIn();
      return;
    }
    if (location.pathname === '/sql') renderExplorer();
    else renderDashboard();
  }

  function signOut(message) {
    localStorage.removeItem(TOKEN_KEY);
    tenantZone = null;
    render();
    if (message) showSignInError(message);
  }

  // A token in the address (`/#token=hgr_...`, as `hourglass demo` prints) signs in and is
  // removed from the address at once; the fragment never reaches the server.
  function takeTokenFromAddress() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      let value = match[1];
      try {
        value = decodeURIComponent(value);
      } catch (_) { /* not percent-encoded: use it as it is */ }
      localStorage.setItem(TOKEN_KEY, value);
      history.replaceState(null, '', location.pathname + location.search);
    }
  }

  // ---------------------------------------------------------------- sign in

  function renderSignIn() {
    const input = h('input', {
      id: 'token', name: 'token', type: 'password', autocomplete: 'off', spellcheck: 'false', required: true,
      placeholder: 'hgr_…', 'data-testid': 'token-input',
    });
    const button = h('button', { class: 'primary', type: 'submit', 'data-testid': 'sign-in' }, 'Sign in');
    const form = h('form', {
      class: 'signin', 'data-testid': 'sign-in-form',
      onsubmit: async (e) => {
        e.preventDefault();
        const candidate = input.value.trim();
        clearSignInError();
        if (!candidate) return;
        button.disabled = true;
        button.textContent = 'Checking…';
        try {
          // The cheapest read there is: it proves the token is a tenant's read token.
          await call('/api/v1/report/realtime', { metrics: ['current_visitors'] }, { bearer: candidate });
          localStorage.setItem(TOKEN_KEY, candidate);
          render();
        } catch (err) {
          button.disabled = false;
          button.textContent = 'Sign in';
          showSignInError(signInMessage(err));
        }
      },
    },
    h('h1', {}, 'Sign in to Hourglass'),
    h('p', {}, 'Paste your site\'s read token (it starts with ', h('code', {}, 'hgr_'), '). It is kept in this browser only.'),
    h('label', { for: 'token' }, 'Read token'),
    input,
    button);
    app.append(h('main', {}, form));
    input.focus();
  }

  function signInMessage(err) {
    if (err.status === 401) return `That token was not accepted: ${err.message}`;
    if (err.status === 403) return `That is not a read token: ${err.message}`;
    return `Sign-in failed (${err.code}): ${err.message}`;
  }

  function showSignInError(message) {
    const form = app.querySelector('.signin');
    if (!form) return;
    clearSignInError();
    form.append(h('div', { class: 'alert', role: 'alert', 'data-testid': 'sign-in-error' }, message));
  }

  function clearSignInError() {
    app.querySelector('[data-testid="sign-in-error"]')?.remove();
  }

  // A request refused for its token signs out: the token was revoked or the tenant removed.
  function unauthorized(err) {
    // A 401 for a token that is no longer the current one (a request of an earlier
    // session finishing late) must not sign the new session out.
    if (err instanceof ApiError && err.status === 401 && (err.bearer === undefined || err.bearer === token())) {
      signOut(`Signed out: ${err.message}`);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- dashboard

  function renderDashboard() {
    const state = readState();
    let generation = 0;
    let chart = null;
    let realtimeTimer = null;
    let resizeObserver = null;

    const periodSelect = h('select', { 'data-testid': 'period', 'aria-label': 'Date range' },
      PRESETS.map(([id, text]) => h('option', { value: id, selected: id === state.period }, text)));
    const fromInput = h('input', { type: 'date', value: state.from, 'data-testid': 'from', 'aria-label': 'From' });
    const toInput = h('input', { type: 'date', value: state.to, 'data-testid': 'to', 'aria-label': 'To' });
    const customRange = h('div', { class: 'custom-range', hidden: state.period !== 'custom' },
      fromInput, h('span', {}, 'to'), toInput,
      h('button', {
        class: 'secondary', type: 'button', 'data-testid': 'apply-range',
        onclick: () => {
          if (!fromInput.value || !toInput.value) return;
          const [from, to] = [fromInput.value, toInput.value].sort();
          update({ period: 'custom', from, to, interval: intervalFor(from, to) });
        },
      }, 'Apply'));
    const compareBox = h('input', { type: 'checkbox', checked: state.compare, 'data-testid': 'compare' });
    const intervalSelect = h('select', { 'data-testid': 'interval', 'aria-label': 'Chart interval' },
      INTERVALS.map(([id, text]) => h('option', { value: id, selected: id === state.interval }, text)));
    const realtime = h('div', { class: 'realtime', 'data-testid': 'realtime', title: 'Visitors with a pageview in the last 5 minutes' },
      h('span', { class: 'dot', 'aria-hidden': 'true' }), h('b', { 'data-testid': 'realtime-value' }, '…'), ' visitors now');

    periodSelect.addEventListener('change', () => {
      if (periodSelect.value === 'custom') {
        customRange.hidden = false;
        fromInput.focus();
        return;
      }
      update({ period: periodSelect.value, interval: DEFAULT_INTERVAL[periodSelect.value] || 'day' });
    });
    compareBox.addEventListener('change', () => update({ compare: compareBox.checked }));
    intervalSelect.addEventListener('change', () => update({ interval: intervalSelect.value }));

    const filterBar = h('div', { class: 'filters', 'data-testid': 'filters' },
      state.filters.map((f, i) => h('button', {
        class: 'chip', type: 'button', 'data-testid': 'filter-chip', title: 'Remove this filter',
        onclick: () => update({ filters: state.filters.filter((_, j) => j !== i) }),
      }, `${DIMENSION_NAMES[f.dim]} is ${dimensionLabel(f.dim, f.value)}`, h('span', { class: 'x', 'aria-hidden': 'true' }, '×'))),
      state.filters.length > 1 ? h('button', { class: 'link-button', type: 'button', onclick: () => update({ filters: [] }) }, 'Clear all') : null);

    const notice = h('div', { 'data-testid': 'notice' });
    const cards = METRICS.map((m) => h('button', {
      class: 'card', type: 'button', 'aria-pressed': String(m.id === state.metric), 'aria-busy': 'true',
      'data-testid': `metric-${m.id}`, onclick: () => update({ metric: m.id }),
    }, h('div', { class: 'name' }, m.name), h('div', { class: 'value' }, '…'), h('div', { class: 'change' })));
    const chartBox = h('div', { class: 'chart', 'data-testid': 'chart', 'aria-busy': 'true' });
    const chartTitle = h('h2', {}, METRICS.find((m) => m.id === state.metric).name);
    const panels = PANELS.map((p) => h('section', { class: 'panel', 'data-testid': `panel-${p.id}`, 'aria-busy': 'true' },
      h('h2', {}, h('span', {}, p.title), h('span', { class: 'cols' }, p.heads.map((t) => h('span', {}, t)))),
      h('div', { class: 'body' }, skeleton())));

    app.append(topbar('/'), h('main', { 'data-testid': 'dashboard' },
      h('div', { class: 'controls' }, periodSelect, customRange,
        h('label', { class: 'check' }, compareBox, 'Compare to previous period'), realtime),
      filterBar,
      notice,
      h('div', { class: 'cards' }, cards),
      h('section', { class: 'panel chart-panel' },
        h('div', { class: 'chart-head' }, chartTitle, intervalSelect),
        chartBox),
      h('div', { class: 'grid' }, panels)));

    function update(change) {
      writeState({ ...state, ...change });
      render();
    }

    function intervalFor(from, to) {
      const days = (Date.parse(to) - Date.parse(from)) / 86_400_000 + 1;
      if (days <= 2) return 'hour';
      if (days <= 92) return 'day';
      if (days <= 365) return 'week';
      return 'month';
    }

    function base() {
      const request = { date_range: dateRange(state) };
      const filters = reportFilters(state);
      if (filters.length) request.filters = filters;
      return request;
    }

    async function load() {
      const mine = ++generation;
      const stale = () => mine !== generation;
      if (state.period === 'custom' && !(state.from && state.to)) {
        notice.replaceChildren(h('div', { class: 'notice' }, 'Pick the first and last day of the range, then Apply.'));
        for (const part of [...cards, chartBox, ...panels]) part.setAttribute('aria-busy', 'false');
        chartBox.replaceChildren();
        for (const panel of panels) panel.querySelector('.body').replaceChildren();
        return;
      }
      // Top-line numbers first: their response holds the comparison range the chart needs.
      const totalsRequest = { ...base(), metrics: METRICS.map((m) => m.id) };
      if (state.compare) {
        if (PARTIAL_PERIODS.has(state.period) && !tenantZone) {
          try {
            await call('/api/v1/report/realtime', { metrics: ['current_visitors'] });
          } catch (_) { /* the totals request below reports the problem */ }
          if (stale()) return;
        }
        totalsRequest.compare = comparison(state.period);
      }
      let totals;
      try {
        totals = await call('/api/v1/report', totalsRequest);
      } catch (err) {
        if (stale() || unauthorized(err)) return;
        showError(notice, err, load);
        for (const card of cards) card.setAttribute('aria-busy', 'false');
        chartBox.setAttribute('aria-busy', 'false');
        chartBox.replaceChildren(h('div', { class: 'panel-error' }, 'Not loaded: the date range or filters were refused.'));
        for (const panel of panels) {
          panel.setAttribute('aria-busy', 'false');
          panel.querySelector('.body').replaceChildren(h('div', { class: 'panel-error' }, 'Not loaded.'));
        }
        return;
      }
      if (stale()) return;
      showTotals(totals);
      const empty = (totals.totals?.metrics || []).every((v) => !v);
      notice.replaceChildren(empty ? h('div', { class: 'notice', 'data-testid': 'empty' },
        'No visits in this range. Pick a longer range, remove filters, or send events (see docs/api.md).') : '');
      loadChart(totals, stale);
      for (let i = 0; i < PANELS.length; i += 1) loadPanel(PANELS[i], panels[i], stale);
    }

    function showTotals(response) {
      const values = response.totals?.metrics || [];
      const changes = response.totals?.comparison?.change || [];
      METRICS.forEach((m, i) => {
        const card = cards[i];
        const value = card.querySelector('.value');
        const change = card.querySelector('.change');
        value.textContent = formatMetric(m.id, values[i]);
        value.dataset.value = JSON.stringify(values[i] ?? null);
        change.textContent = state.compare ? (formatChange(m.id, changes[i]) || '– no earlier data') : '';
        change.dataset.change = JSON.stringify(state.compare ? changes[i] ?? null : null);
        const c = changes[i];
        const better = c === null || c === undefined || c === 0 ? null : (c > 0) !== Boolean(m.lowerIsBetter);
        change.className = `change${better === null ? '' : better ? ' good' : ' bad'}`;
        card.setAttribute('aria-busy', 'false');
      });
    }

    async function loadChart(totals, stale) {
      const metric = state.metric;
      const request = {
        ...base(), metrics: [metric], dimensions: [`time:${state.interval}`], include: { totals: false, time_labels: true },
        limit: 10000,
      };
      const range = totals.meta?.comparison_range;
      const previous = state.compare && range
        ? { ...request, date_range: range.first_day ? [range.first_day, range.last_day] : [range.from, range.to] }
        : null;
      try {
        const [current, before] = await Promise.all([
          call('/api/v1/report', request),
          previous ? call('/api/v1/report', previous) : Promise.resolve(null),
        ]);
        if (stale()) return;
        drawChart(metric, current, before);
      } catch (err) {
        if (stale() || unauthorized(err)) return;
        chartBox.setAttribute('aria-busy', 'false');
        showError(chartBox, err, () => loadChart(totals, stale));
      }
    }

    function series(response) {
      const labels = response.meta?.time_labels || [];
      const byLabel = new Map((response.rows || []).map((r) => [r.dimensions[0], r.metrics[0]]));
      // Buckets that have not started yet (the rest of this month, say) have no value rather
      // than zero, so the line stops at now instead of dropping.
      const now = tenantNow();
      const future = (label) => now !== null && label.slice(0, 16) > now.stamp;
      return {
        labels,
        values: labels.map((l) => {
          if (byLabel.has(l)) return byLabel.get(l);
          return RATE_METRICS.has(state.metric) || future(l) ? null : 0;
        }),
      };
    }

    function drawChart(metric, current, before) {
      const now = series(current);
      const then = before ? series(before) : null;
      chartBox.replaceChildren();
      chartBox.setAttribute('aria-busy', 'false');
      chartBox.dataset.metric = metric;
      chartBox.dataset.interval = state.interval;
      chartBox.dataset.buckets = String(now.labels.length);
      chartBox.dataset.first = now.labels[0] || '';
      chartBox.dataset.last = now.labels[now.labels.length - 1] || '';
      chartBox.dataset.sum = String(now.values.reduce((a, v) => a + (v || 0), 0));
      chartBox.dataset.values = JSON.stringify(now.values);
      if (!now.labels.length) {
        chartBox.append(h('div', { class: 'empty' }, 'No time buckets in this range.'));
        return;
      }
      const xs = now.labels.map((_, i) => i);
      const data = [xs, now.values];
      const name = METRICS.find((m) => m.id === metric).name;
      const seriesOptions = [
        { value: (u, i) => (i === null || i === undefined ? '' : formatTimeLabel(now.labels[i], state.interval, true)) },
        { label: name, stroke: '#4f46e5', width: 2, fill: 'rgba(79,70,229,0.08)', points: { show: now.labels.length <= 60 }, value: (u, v) => formatMetric(metric, v) },
      ];
      if (then) {
        data.push(xs.map((i) => (i < then.values.length ? then.values[i] : null)));
        seriesOptions.push({ label: 'Previous period', stroke: '#9aa3b2', width: 1.5, dash: [6, 4], points: { show: false }, value: (u, v, _s, i) => (v === null || v === undefined ? '–' : `${formatMetric(metric, v)} (${formatTimeLabel(then.labels[i], state.interval, true)})`) });
      }
      if (typeof window.uPlot !== 'function') {
        chartBox.append(h('div', { class: 'panel-error' }, 'The chart library did not load.'));
        return;
      }
      const width = Math.max(chartBox.clientWidth, 280);
      const height = window.innerWidth < 560 ? 220 : 280;
      const opts = {
        width, height,
        scales: { x: { time: false }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [
          {
            space: 70,
            values: (u, splits) => splits.map((s) => (Number.isInteger(s) && s >= 0 && s < now.labels.length ? formatTimeLabel(now.labels[s], state.interval, false) : '')),
            grid: { show: false },
          },
          { values: (u, splits) => splits.map((v) => formatMetric(metric, v)), size: 64, grid: { stroke: '#eef0f4' } },
        ],
        series: seriesOptions,
        cursor: { drag: { x: false, y: false } },
        legend: { show: true },
      };
      chart = new window.uPlot(opts, data, chartBox);
      resizeObserver?.disconnect();
      resizeObserver = new ResizeObserver(() => {
        if (chart && chartBox.clientWidth > 0) chart.setSize({ width: Math.max(chartBox.clientWidth, 280), height });
      });
      resizeObserver.observe(chartBox);
    }

    async function loadPanel(panel, section, stale) {
      const body = section.querySelector('.body');
      const request = { ...base(), metrics: panel.metrics, dimensions: [panel.dim], limit: 10, include: { totals: false, total_rows: true } };
      if (panel.hideNotSet) request.filters = [...(request.filters || []), ['is_not', panel.dim, ['(not set)']]];
      section.dataset.request = JSON.stringify(request);
      try {
        const response = await call('/api/v1/report', request);
        if (stale()) return;
        section.setAttribute('aria-busy', 'false');
        const rows = response.rows || [];
        if (!rows.length) {
          body.replaceChildren(h('div', { class: 'empty', 'data-testid': 'panel-empty' }, 'No data for this range.'));
          section.dataset.signature = '[]';
          return;
        }
        const max = Math.max(...rows.map((r) => r.metrics[0] || 0), 1);
        section.dataset.signature = JSON.stringify(rows.map((r) => [r.dimensions[0], r.metrics]));
        const list = h('ol', { class: 'rows' }, rows.map((r) => {
          const value = r.dimensions[0];
          const active = state.filters.some((f) => f.dim === panel.dim && f.value === value);
          return h('li', {},
            h('button', {
              class: 'row', type: 'button', 'data-testid': 'row', 'data-label': value,
              title: active ? `Filtered to ${value}` : `Show only ${DIMENSION_NAMES[panel.dim].toLowerCase()} ${value}`,
              'aria-pressed': String(active),
              onclick: () => update({ filters: [...state.filters.filter((f) => f.dim !== panel.dim), { dim: panel.dim, value }] }),
            },
            h('span', { class: 'bar', style: `width:${((r.metrics[0] || 0) / max) * 100}%`, 'aria-hidden': 'true' }),
            h('span', { class: 'label' }, dimensionLabel(panel.dim, value)),
            h('span', { class: 'nums' }, r.metrics.map((v, i) => h('span', {
              class: i === 0 ? 'num' : 'num secondary-num', 'data-value': JSON.stringify(v ?? null),
            }, formatMetric(panel.metrics[i], v))))));
        }));
        const total = response.meta?.total_rows;
        body.replaceChildren(list, total > rows.length ? h('div', { class: 'more' }, `${numberFormat.format(total - rows.length)} more`) : '');
      } catch (err) {
        if (stale() || unauthorized(err)) return;
        section.setAttribute('aria-busy', 'false');
        showError(body, err, () => loadPanel(panel, section, stale));
      }
    }

    async function loadRealtime() {
      const request = { metrics: ['current_visitors'] };
      const filters = reportFilters(state);
      if (filters.length) request.filters = filters;
      try {
        const response = await call('/api/v1/report/realtime', request);
        const value = response.totals?.metrics?.[0] ?? 0;
        const el = realtime.querySelector('b');
        el.textContent = numberFormat.format(value);
        el.dataset.value = String(value);
        realtime.dataset.request = JSON.stringify(request);
      } catch (err) {
        if (unauthorized(err)) return;
        realtime.querySelector('b').textContent = '?';
        realtime.title = `Realtime visitors are unavailable: ${err.message}`;
      }
    }

    const onPop = () => render();
    window.addEventListener('popstate', onPop);
    teardown = () => {
      generation += 1;
      clearInterval(realtimeTimer);
      resizeObserver?.disconnect();
      chart?.destroy();
      window.removeEventListener('popstate', onPop);
    };
    realtimeTimer = setInterval(loadRealtime, REALTIME_EVERY_MS);
    loadRealtime();
    load();
  }

  function skeleton() {
    return [h('div', { class: 'skeleton' }), h('div', { class: 'skeleton', style: 'width:80%' }), h('div', { class: 'skeleton', style: 'width:60%' })];
  }

  function showError(container, err, retry) {
    const where = err.path ? ` (at ${err.path})` : '';
    container.replaceChildren(h('div', { class: 'alert', role: 'alert', 'data-testid': 'error' },
      h('strong', {}, err.code), `: ${err.message}${where} `,
      retry ? h('button', { class: 'secondary', type: 'button', onclick: () => { container.replaceChildren(...skeleton()); retry(); } }, 'Retry') : null));
  }

  // ---------------------------------------------------------------- SQL explorer

  const DEFAULT_SQL = `-- Your site's data: events, sessions, rollups and your imported tables.
SELECT path, count(*) AS pageviews, count(DISTINCT visitor_id) AS visitors
FROM events
WHERE name = 'pageview' AND timestamp >= now() - INTERVAL '7 days'
GROUP BY path
ORDER BY pageviews DESC
LIMIT 20`;
  const SQL_KEY = 'hourglass.sql';

  function renderExplorer() {
    const editor = h('textarea', {
      'data-testid': 'sql-editor', spellcheck: 'false', 'aria-label': 'SQL query',
      autocapitalize: 'off', autocomplete: 'off',
    });
    editor.value = sessionStorage.getItem(SQL_KEY) || DEFAULT_SQL;
    const runButton = h('button', { class: 'primary', type: 'button', 'data-testid': 'sql-run' }, 'Run');
    const csvButton = h('button', { class: 'secondary', type: 'button', 'data-testid': 'sql-csv' }, 'Download CSV');
    const status = h('span', { class: 'status', 'data-testid': 'sql-status', role: 'status' }, 'Ctrl+Enter runs the query.');
    const output = h('div', { 'data-testid': 'sql-output' });

    app.append(topbar('/sql'), h('main', { class: 'explorer', 'data-testid': 'explorer' },
      h('p', { class: 'hint' }, 'SQL over your own data (DataFusion dialect, read-only). Tables: ',
        h('code', {}, 'events'), ', ', h('code', {}, 'sessions'), ', ', h('code', {}, 'rollups'),
        ' and the tables you imported. Results are also available as CSV.'),
      editor,
      h('div', { class: 'toolbar' }, runButton, csvButton, status),
      output));

    let busy = false;
    async function run() {
      if (busy) return;
      const sql = editor.value;
      sessionStorage.setItem(SQL_KEY, sql);
      busy = true;
      runButton.disabled = true;
      status.textContent = 'Running…';
      output.setAttribute('aria-busy', 'true');
      const started = performance.now();
      try {
        const rows = await call('/api/v1/query', { sql });
        const ms = Math.round(performance.now() - started);
        status.textContent = `${numberFormat.format(rows.length)} row${rows.length === 1 ? '' : 's'} in ${ms} ms`;
        output.replaceChildren(resultsTable(rows));
      } catch (err) {
        failed(err);
      } finally {
        busy = false;
        runButton.disabled = false;
        output.setAttribute('aria-busy', 'false');
      }
    }

    function failed(err) {
      if (unauthorized(err)) return;
      status.textContent = 'The query failed.';
      output.replaceChildren(h('div', { class: 'alert', role: 'alert', 'data-testid': 'sql-error' },
        h('strong', {}, err.code), `: ${err.message}`));
    }

    async function download() {
      const sql = editor.value;
      csvButton.disabled = true;
      status.textContent = 'Preparing CSV…';
      try {
        const csv = await call('/api/v1/query', { sql }, { accept: 'text/csv' });
        const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv;charset=utf-8' }));
        const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
        const a = h('a', { href: url, download: `hourglass-${stamp}.csv` });
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10_000);
        status.textContent = 'CSV downloaded.';
      } catch (err) {
        failed(err);
      } finally {
        csvButton.disabled = false;
      }
    }

    runButton.addEventListener('click', run);
    csvButton.addEventListener('click', download);
    editor.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        run();
      }
    });
    const onPop = () => render();
    window.addEventListener('popstate', onPop);
    teardown = () => window.removeEventListener('popstate', onPop);
    editor.focus();
  }

  function resultsTable(rows) {
    if (!rows.length) return h('div', { class: 'empty', 'data-testid': 'sql-empty' }, 'The query returned no rows.');
    const columns = [];
    for (const row of rows.slice(0, 100)) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
    const shown = rows.slice(0, MAX_RENDERED_ROWS);
    const cell = (v) => {
      if (v === null || v === undefined) return h('td', { class: 'null' }, 'null');
      if (typeof v === 'number') return h('td', { class: 'num' }, String(v));
      if (typeof v === 'object') return h('td', {}, JSON.stringify(v));
      return h('td', { title: String(v).length > 40 ? String(v) : null }, String(v));
    };
    return h('div', {},
      h('div', { class: 'table-wrap' },
        h('table', { class: 'results', 'data-testid': 'sql-results' },
          h('thead', {}, h('tr', {}, columns.map((c) => h('th', {
            scope: 'col', class: shown.some((row) => typeof row[c] === 'number') ? 'num' : null,
          }, c)))),
          h('tbody', {}, shown.map((row) => h('tr', {}, columns.map((c) => cell(row[c]))))))),
      rows.length > shown.length
        ? h('p', { class: 'more' }, `Showing the first ${numberFormat.format(shown.length)} rows; download the CSV for all ${numberFormat.format(rows.length)}.`)
        : null);
  }

  // ---------------------------------------------------------------- start

  window.addEventListener('popstate', () => { if (!token()) render(); });
  takeTokenFromAddress();
  render();
})();
