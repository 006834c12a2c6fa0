import { createHash } from 'node:crypto';
import { deflateSync, gzipSync } from 'node:zlib';

/**
 * The keeper's dashboard: one self-contained HTML page (inline CSS + inline JS, no external
 * resource, no framework), its web app manifest and its icons. Everything is built once at
 * module load (the PNG icons on first use); the HTTP server only hands out the prebuilt bytes
 * (see `dashboardAsset`), gzipped when the browser accepts it.
 *
 * The page polls `GET /api/health` every 5 s (sooner when a token is about to be refreshed), and
 * `GET /api/history` (the 24 h probe timelines) whenever the report changed. Per source: status,
 * auth path, a countdown bar for the token's lifetime (when the keeper refreshes it, when it
 * expires), a 24 h latency sparkline, the 24 h status timeline (one segment per probe, drawn at
 * its time), "Probe now" (`POST /api/probe` with the `X-Latchkey-Action: 1` CSRF header). Above
 * them, what the keeper itself did: next cycle, next refresh, probes and refreshes per hour, the
 * last events, and a refused config reload. In remote mode the page is opened with `#token=…`
 * (or `?token=…`): the token moves from the address bar into localStorage and is sent as
 * `Authorization: Bearer …` on every API request.
 *
 * Drawing: every SVG is built with DOM calls (never markup from data); a timeline is one `<path>`
 * per status (a sub-path per probe), so 100 sources × 288 probes are 500 elements, not 28,800.
 *
 * Test hooks: `li[data-source][data-status]` per source, `.fix` holds the exact fix command or
 * link, `button[data-probe="<name>"]`, `#probe-all`, `#banner` (fetch failures), `#config-error`,
 * `#fleet[data-role="leader|standby"]` (fleet mode),
 * `main#app[data-state="loading|ready|error"][data-generated-at][data-history]`,
 * `svg.timeline path[data-status]` (sub-paths `M<x> …` in time order), `.cols > span` headers.
 *
 * The browser script is a real TypeScript function (type-checked against the DOM lib) that is
 * serialized into the page; it must not reference anything outside its own body.
 */

// ---------------------------------------------------------------------------------------------
// Browser code (serialized with Function.prototype.toString; keep it self-contained)

function dashboardClient(): void {
  type Status = 'ok' | 'expiring' | 'degraded' | 'unreachable' | 'action_required';
  interface Probe {
    at: string;
    status: Status;
    latencyMs: number | null;
  }
  interface Source {
    status: Status;
    authPath: string | null;
    operatorAction: string | null;
    fix: string | null;
    message: string;
    expiresAt: string | null;
    lastOkAt: string | null;
    consecutiveFailures: number;
    latencyMs: number | null;
    history: Probe[];
    issuedAt?: string | null;
    refreshAt?: string | null;
  }
  interface ActivityHour {
    hour: number;
    probes: number;
    refreshes: number;
    refreshFailures: number;
  }
  interface KeeperInfo {
    nextCycleAt: string | null;
    config: { file: string; loadedAt: string | null; error: string | null };
    activity: { hours: ActivityHour[]; recent: Array<{ at: string; kind: string; text: string; ok: boolean }> };
    fleet?: { role: 'leader' | 'standby'; store: string; leader: { epoch: number; pid: number; host: string } | null; publishedAt: string | null };
  }
  interface Report {
    generatedAt: string;
    intervalSeconds?: number;
    sources: Record<string, Source>;
    keeper?: KeeperInfo;
  }
  /** A 24 h timeline as the keeper keeps it (see src/keeper/state.ts `Timeline`). */
  interface Timeline {
    t0: number;
    dt: number[];
    s: string;
    l: number[];
  }
  interface HistoryDoc {
    generatedAt: string;
    sources: Record<string, Timeline>;
  }
  interface Row {
    li: HTMLLIElement;
    chipLabel: HTMLElement;
    auth: HTMLElement;
    lifeText: HTMLElement;
    bar: HTMLElement;
    fill: HTMLElement;
    mark: HTMLElement;
    spark: SVGSVGElement;
    sparkLine: SVGPathElement;
    latText: HTMLElement;
    lastOk: HTMLElement;
    tl: SVGSVGElement;
    tlPaths: Map<string, SVGPathElement>;
    tlCursor: SVGRectElement;
    tlInfo: HTMLElement;
    tlUptime: HTMLElement;
    tlKey: string;
    /** Probe times (epoch s), letters and latencies of the drawn timeline (for hover and keys). */
    times: number[];
    letters: string;
    lats: number[];
    cursor: number;
    problem: HTMLElement;
    action: HTMLElement;
    fixRow: HTMLElement;
    fixEl: HTMLElement | null;
    fixValue: string | null;
    msg: HTMLElement;
    probe: HTMLButtonElement;
    src: Source;
  }

  const POLL_MS = 5000;
  const FETCH_TIMEOUT_MS = 10000;
  const PROBE_TIMEOUT_MS = 120000;
  const TOKEN_KEY = 'latchkey.token';
  const DAY_S = 86400;
  /** Timeline viewBox width: x is time over 24 h in these units. */
  const TL_W = 1000;
  const TL_H = 16;
  const STATUSES: Status[] = ['action_required', 'unreachable', 'degraded', 'expiring', 'ok'];
  const LETTER: Record<string, Status> = { o: 'ok', e: 'expiring', d: 'degraded', u: 'unreachable', a: 'action_required' };
  const STATUS_LABEL: Record<Status, string> = {
    ok: 'ok',
    expiring: 'expiring',
    degraded: 'degraded',
    unreachable: 'unreachable',
    action_required: 'action required',
  };
  const SUMMARY_LABEL: Record<Status, string> = {
    ok: 'ok',
    expiring: 'expiring',
    degraded: 'degraded',
    unreachable: 'unreachable',
    action_required: 'needs action',
  };
  const ACTION_LABEL: Record<string, string> = {
    relogin: 'Sign in again',
    reauthorize: 'The grant was revoked: authorize again',
    renew_session: 'Renew the browser session',
    replace_token: 'Replace the token',
    check_network: 'Check the network',
    fix_config: 'Fix the configuration',
  };
  const AUTH_LABEL: Record<string, string> = { token: 'token', oauth: 'OAuth', session: 'session' };

  const $ = (id: string): HTMLElement => {
    const e = document.getElementById(id);
    if (!e) throw new Error('missing #' + id);
    return e;
  };
  const app = $('app');
  const list = $('sources');
  const summary = $('summary');
  const updated = $('updated');
  const banner = $('banner');
  const configError = $('config-error');
  const fleetRole = $('fleet');
  const note = $('note');
  const empty = $('empty');
  const cols = $('cols');
  const probeAll = $('probe-all') as HTMLButtonElement;
  const kNextCycle = $('k-next-cycle');
  const kNextRefresh = $('k-next-refresh');
  const kTotals = $('k-totals');
  const kHours = $('k-hours') as unknown as SVGSVGElement;
  const kEvents = $('k-events');
  // The SVG namespace, from an element the parser made (no URL literal in this script).
  const SVG_NS = kHours.namespaceURI || '';

  const rows = new Map<string, Row>();
  let report: Report | null = null;
  let historyDoc: HistoryDoc | null = null;
  let historyFor = '';
  let historyLoading = false;
  let skewMs = 0; // server clock minus ours, from the Date header (phones drift)
  let polling = false;
  let probing = false;
  let pollTimer: ReturnType<typeof setTimeout> | undefined;
  let noteTimer: ReturnType<typeof setTimeout> | undefined;
  let hoursKey = '';
  let eventsKey = '';

  // --- remote-mode token: take it from the URL, then hide it from the address bar ----------
  let token: string | null = null;
  try {
    const url = new URL(location.href);
    const hash = new URLSearchParams(url.hash.replace(/^#/, ''));
    const fromUrl = url.searchParams.get('token') || hash.get('token');
    if (fromUrl) {
      token = fromUrl;
      url.searchParams.delete('token');
      hash.delete('token');
      const rest = hash.toString();
      history.replaceState(history.state, '', url.pathname + url.search + (rest ? '#' + rest : ''));
      try {
        localStorage.setItem(TOKEN_KEY, fromUrl);
      } catch {
        /* storage disabled: the token lives for this page only */
      }
    } else {
      token = localStorage.getItem(TOKEN_KEY);
    }
  } catch {
    /* no storage, no history: still usable on loopback */
  }

  // --- helpers --------------------------------------------------------------------------------
  function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
    const e = document.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
    for (const k of Object.keys(attrs)) e.setAttribute(k, String(attrs[k]));
    return e;
  }
  function setText(e: Element, text: string): void {
    if (e.textContent !== text) e.textContent = text;
  }
  function now(): number {
    return Date.now() + skewMs;
  }
  function pad(n: number): string {
    return n < 10 ? '0' + n : String(n);
  }
  function duration(ms: number): string {
    const s = Math.floor(Math.abs(ms) / 1000);
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    if (d > 0) return d + 'd ' + h + 'h';
    if (h > 0) return h + 'h ' + pad(m) + 'm';
    if (m > 0) return m + 'm ' + pad(s % 60) + 's';
    return (s % 60) + 's';
  }
  function ago(ms: number): string {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + 's ago';
    if (s < 3600) return Math.floor(s / 60) + 'm ago';
    if (s < 86400) return Math.floor(s / 3600) + 'h ago';
    return Math.floor(s / 86400) + 'd ago';
  }
  function clockTime(ms: number): string {
    const d = new Date(ms);
    return pad(d.getHours()) + ':' + pad(d.getMinutes());
  }
  function time(iso: string | null | undefined): number | null {
    if (!iso) return null;
    const t = Date.parse(iso);
    return Number.isNaN(t) ? null : t;
  }
  function isStatus(s: unknown): s is Status {
    return typeof s === 'string' && (STATUSES as string[]).includes(s);
  }
  function isUrl(s: string): boolean {
    if (!/^https?:\/\/\S+$/i.test(s)) return false;
    try {
      new URL(s);
      return true;
    } catch {
      return false;
    }
  }
  function showNote(text: string): void {
    setText(note, text);
    note.hidden = false;
    if (noteTimer) clearTimeout(noteTimer);
    noteTimer = setTimeout(() => (note.hidden = true), 15000);
  }

  // --- requests -------------------------------------------------------------------------------
  async function call(method: 'GET' | 'POST', path: string, body: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (method === 'POST') {
      headers['Content-Type'] = 'application/json';
      headers['X-Latchkey-Action'] = '1';
    }
    if (token) headers.Authorization = 'Bearer ' + token;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: method === 'POST' ? JSON.stringify(body) : undefined,
        cache: 'no-store',
        credentials: 'same-origin',
        signal: ctrl.signal,
      });
    } catch (err) {
      throw new Error(ctrl.signal.aborted ? 'no answer within ' + timeoutMs / 1000 + ' s' : String((err as Error).message || err));
    } finally {
      clearTimeout(timer);
    }
    const date = Date.parse(res.headers.get('date') || '');
    if (!Number.isNaN(date)) {
      const raw = date - Date.now();
      // The Date header has 1 s resolution: ignore small differences so countdowns don't jump.
      if (Math.abs(raw - skewMs) > 2000) skewMs = Math.abs(raw) > 2000 ? raw : 0;
    }
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (res.status === 401 || res.status === 403) {
      throw new Error(
        token
          ? 'the keeper rejected the access token (HTTP ' + res.status + '); open this page again with #token=<token>'
          : 'the keeper needs an access token (HTTP ' + res.status + '); open this page with #token=<token>',
      );
    }
    const obj = json && typeof json === 'object' ? (json as Record<string, unknown>) : null;
    if (!res.ok) {
      const why = obj && typeof obj.message === 'string' ? obj.message : obj && typeof obj.error === 'string' ? obj.error : '';
      throw new Error('HTTP ' + res.status + (why ? ': ' + why : ''));
    }
    if (!obj || !obj.sources || typeof obj.sources !== 'object') throw new Error('unexpected answer from ' + path);
    return obj;
  }

  async function poll(): Promise<void> {
    if (pollTimer) clearTimeout(pollTimer);
    pollTimer = undefined;
    if (polling) return;
    polling = true;
    try {
      const r = (await call('GET', '/api/health', undefined, FETCH_TIMEOUT_MS)) as unknown as Report;
      // A probe's answer is fresher than a poll that raced it; a report older than the one shown
      // is skipped unless it is much older (the keeper restarted after a clock jump).
      const shown = report ? time(report.generatedAt) : null;
      const got = time(r.generatedAt);
      const older = shown !== null && got !== null && got < shown && shown - got < 10 * 60 * 1000;
      if (!probing && !older) render(r);
      banner.hidden = true;
    } catch (err) {
      setText(banner, 'keeper not reachable: ' + (err as Error).message + '. Retrying every ' + POLL_MS / 1000 + ' s.');
      banner.hidden = false;
      app.dataset.state = 'error';
    } finally {
      polling = false;
      pollTimer = setTimeout(() => void poll(), pollDelayMs());
    }
  }

  /**
   * Every 5 s, or every keeper interval when that is shorter; and just after the next refresh the
   * keeper has planned, so a 6 s token's new expiry shows before the old one runs out.
   */
  function pollDelayMs(): number {
    const iv = report && typeof report.intervalSeconds === 'number' && report.intervalSeconds > 0 ? report.intervalSeconds * 1000 : POLL_MS;
    let delay = Math.min(POLL_MS, iv);
    if (report) {
      const t = now();
      for (const name of Object.keys(report.sources)) {
        const at = time(report.sources[name]?.refreshAt);
        if (at !== null && at + 1500 > t) delay = Math.min(delay, at + 1500 - t);
      }
    }
    return Math.max(1000, delay);
  }

  /** Fetches the 24 h timelines: at start (alongside the first report), then after each new report. */
  async function loadHistory(): Promise<void> {
    if (historyLoading || (report && historyFor === report.generatedAt)) return;
    historyLoading = true;
    try {
      historyDoc = (await call('GET', '/api/history', undefined, FETCH_TIMEOUT_MS)) as unknown as HistoryDoc;
      historyFor = historyDoc.generatedAt;
      for (const [name, row] of rows) drawTimeline(row, historyDoc.sources[name]);
      if (report) app.dataset.history = 'ready';
    } catch {
      // The rows stand without their timelines; the next report tries again.
    } finally {
      historyLoading = false;
      if (report && historyFor !== '' && report.generatedAt !== historyFor) void loadHistory();
    }
  }

  async function probe(source: string | null): Promise<void> {
    if (probing) return;
    probing = true;
    const buttons = [probeAll, ...Array.from(rows.values(), (r) => r.probe)];
    const pressed = source === null ? probeAll : rows.get(source)?.probe;
    const before = pressed ? pressed.textContent || '' : '';
    for (const b of buttons) b.disabled = true;
    if (pressed) pressed.textContent = 'Probing…';
    app.dataset.probing = source === null ? '*' : source;
    try {
      const r = (await call('POST', '/api/probe', source === null ? {} : { source }, PROBE_TIMEOUT_MS)) as unknown as Report;
      banner.hidden = true;
      render(r);
      showNote(source === null ? 'Probed every source.' : 'Probed ' + source + '.');
    } catch (err) {
      showNote('Probe failed: ' + (err as Error).message);
    } finally {
      probing = false;
      delete app.dataset.probing;
      if (pressed) pressed.textContent = before;
      for (const b of [probeAll, ...Array.from(rows.values(), (r) => r.probe)]) b.disabled = false;
    }
  }

  async function copy(text: string, target: HTMLElement, button: HTMLButtonElement): Promise<void> {
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      // No clipboard API (plain-HTTP remote page): select the text, try the legacy command.
      const sel = window.getSelection();
      if (sel) {
        const range = document.createRange();
        range.selectNodeContents(target);
        sel.removeAllRanges();
        sel.addRange(range);
        try {
          ok = document.execCommand('copy');
        } catch {
          ok = false;
        }
      }
    }
    button.textContent = ok ? 'Copied' : 'Selected: copy it';
    setTimeout(() => (button.textContent = 'Copy'), 2000);
  }

  // --- rendering ------------------------------------------------------------------------------
  function makeRow(name: string, src: Source): Row {
    const li = el('li', 'src');
    li.dataset.source = name;
    const main = el('div', 'main');
    const chip = el('span', 'chip');
    chip.append(el('span', 'dot'));
    const chipLabel = el('span', 'chip-label');
    chip.append(chipLabel);
    const nameEl = el('span', 'name', name);
    const auth = el('span', 'auth');
    auth.title = 'auth path in use';
    // Token lifetime: text above a bar from "obtained" to "expires", a tick at the planned refresh.
    const life = el('span', 'life');
    const lifeText = el('span', 'life-text');
    const bar = el('span', 'bar');
    bar.setAttribute('aria-hidden', 'true');
    const fill = el('span', 'fill');
    const mark = el('span', 'mark');
    bar.append(fill, mark);
    life.append(lifeText, bar);
    // Latency over 24 h.
    const lat = el('span', 'lat');
    const spark = svg('svg', { class: 'spark', viewBox: '0 0 100 24', preserveAspectRatio: 'none', 'aria-hidden': 'true' });
    const sparkLine = svg('path', { d: '', 'vector-effect': 'non-scaling-stroke' });
    spark.append(sparkLine);
    const latText = el('span', 'lat-text');
    lat.append(spark, latText);
    const lastOk = el('span', 'lastok');
    const probeBtn = el('button', 'probe', 'Probe now');
    probeBtn.type = 'button';
    probeBtn.dataset.probe = name;
    probeBtn.setAttribute('aria-label', 'Probe ' + name + ' now');
    probeBtn.disabled = probing;
    main.append(chip, nameEl, auth, life, lat, lastOk, probeBtn);
    // The 24 h timeline: one segment per probe at its time; focusable, arrows step through probes.
    const tlWrap = el('div', 'tlwrap');
    const tl = svg('svg', { class: 'timeline', viewBox: '0 0 ' + TL_W + ' ' + TL_H, preserveAspectRatio: 'none', role: 'img', tabindex: '0' });
    const tlPaths = new Map<string, SVGPathElement>();
    for (const letter of ['o', 'e', 'd', 'u', 'a']) {
      const p = svg('path', { d: '', class: 's-' + letter, 'data-status': LETTER[letter] || '' });
      tlPaths.set(letter, p);
      tl.append(p);
    }
    const tlCursor = svg('rect', { class: 'cursor', x: 0, y: 0, width: 0, height: TL_H });
    tl.append(tlCursor);
    const tlLegend = el('div', 'tl-legend');
    const tlStart = el('span', 'tl-end', '24 h ago');
    const tlInfo = el('span', 'tl-info');
    tlInfo.setAttribute('aria-live', 'polite');
    const tlUptime = el('span', 'tl-uptime');
    const tlNow = el('span', 'tl-end', 'now');
    tlLegend.append(tlStart, tlInfo, tlUptime, tlNow);
    tlWrap.append(tl, tlLegend);
    const problem = el('div', 'problem');
    const action = el('div', 'action');
    const fixRow = el('div', 'fixrow');
    const msg = el('div', 'msg');
    problem.append(action, fixRow, msg);
    li.append(main, tlWrap, problem);
    const row: Row = {
      li,
      chipLabel,
      auth,
      lifeText,
      bar,
      fill,
      mark,
      spark,
      sparkLine,
      latText,
      lastOk,
      tl,
      tlPaths,
      tlCursor,
      tlInfo,
      tlUptime,
      tlKey: '',
      times: [],
      letters: '',
      lats: [],
      cursor: -1,
      problem,
      action,
      fixRow,
      fixEl: null,
      fixValue: null,
      msg,
      probe: probeBtn,
      src,
    };
    tl.addEventListener('pointermove', (ev) => {
      const box = tl.getBoundingClientRect();
      if (box.width > 0) pointAt(row, ((ev.clientX - box.left) / box.width) * TL_W);
    });
    tl.addEventListener('pointerleave', () => select(row, -1));
    tl.addEventListener('keydown', (ev) => {
      const n = row.times.length;
      if (n === 0) return;
      let i = row.cursor;
      if (ev.key === 'ArrowLeft') i = i < 0 ? n - 1 : Math.max(0, i - 1);
      else if (ev.key === 'ArrowRight') i = i < 0 ? n - 1 : Math.min(n - 1, i + 1);
      else if (ev.key === 'Home') i = 0;
      else if (ev.key === 'End') i = n - 1;
      else if (ev.key === 'Escape') i = -1;
      else return;
      ev.preventDefault();
      select(row, i);
    });
    tl.addEventListener('blur', () => select(row, -1));
    return row;
  }

  function windowStart(): number {
    const gen = report ? time(report.generatedAt) : null;
    return Math.floor((gen ?? now()) / 1000) - DAY_S;
  }
  function xOf(t: number, start: number): number {
    return ((t - start) / DAY_S) * TL_W;
  }

  function pointAt(row: Row, x: number): void {
    const start = windowStart();
    const t = start + (x / TL_W) * DAY_S;
    let best = -1;
    let bestD = Infinity;
    for (let i = 0; i < row.times.length; i++) {
      const d = Math.abs((row.times[i] as number) - t);
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    }
    select(row, best);
  }

  function select(row: Row, i: number): void {
    row.cursor = i;
    if (i < 0 || i >= row.times.length) {
      row.tlCursor.setAttribute('width', '0');
      setText(row.tlInfo, '');
      return;
    }
    const t = row.times[i] as number;
    const x = xOf(t, windowStart());
    row.tlCursor.setAttribute('x', String(Math.max(0, x - 3)));
    row.tlCursor.setAttribute('width', '6');
    const st = LETTER[row.letters[i] as string] || 'unreachable';
    const l = row.lats[i] as number;
    setText(row.tlInfo, clockTime(t * 1000) + ' · ' + STATUS_LABEL[st] + (l >= 0 ? ' · ' + l + ' ms' : ''));
  }

  /** Draws the timeline and the latency sparkline from the keeper's 24 h history. */
  function drawTimeline(row: Row, tl: Timeline | undefined): void {
    const key = tl ? tl.t0 + '|' + tl.s.length + '|' + tl.s.slice(-1) + '|' + (report ? report.generatedAt : '') : 'none';
    if (key === row.tlKey) return;
    row.tlKey = key;
    const times: number[] = [];
    const lats: number[] = [];
    let letters = '';
    if (tl && typeof tl.s === 'string' && Array.isArray(tl.dt) && Array.isArray(tl.l)) {
      let t = tl.t0;
      for (let i = 0; i < tl.s.length; i++) {
        t += i === 0 ? 0 : Number(tl.dt[i]) || 0;
        times.push(t);
        lats.push(Number(tl.l[i]));
      }
      letters = tl.s;
    }
    row.times = times;
    row.letters = letters;
    row.lats = lats;
    const start = windowStart();
    const end = start + DAY_S;
    const interval = report && report.intervalSeconds ? report.intervalSeconds : 300;
    // A probe's segment runs to the next probe, at most 1.5 intervals: a keeper that was down
    // leaves a visible gap. The newest runs to "now" (the same cap).
    const d: Record<string, string[]> = { o: [], e: [], d: [], u: [], a: [] };
    const counts: Record<string, number> = { o: 0, e: 0, d: 0, u: 0, a: 0 };
    for (let i = 0; i < times.length; i++) {
      const t = times[i] as number;
      const next = i + 1 < times.length ? (times[i + 1] as number) : end;
      const span = Math.min(next - t, 1.5 * interval);
      if (t + span < start) continue;
      const x0 = Math.max(0, xOf(t, start));
      const x1 = Math.min(TL_W, xOf(t + span, start));
      // At least 1 unit wide, with a hairline gap between neighbours when there is room.
      const w = Math.max(1, x1 - x0 > 2.5 ? x1 - x0 - 0.6 : x1 - x0);
      const letter = letters[i] as string;
      const parts = d[letter];
      if (!parts) continue;
      counts[letter] = (counts[letter] || 0) + 1;
      parts.push('M' + x0.toFixed(1) + ' 0h' + w.toFixed(1) + 'v' + TL_H + 'h-' + w.toFixed(1) + 'z');
    }
    for (const [letter, p] of row.tlPaths) p.setAttribute('d', (d[letter] || []).join(''));
    const total = times.length;
    const up = (counts.o || 0) + (counts.e || 0);
    const pct = total ? Math.floor((up / total) * 1000) / 10 : 0;
    setText(row.tlUptime, total ? pct + ' % usable · ' + total + ' probes' : 'no probes yet');
    const bad = (['a', 'u', 'd'] as const).filter((k) => counts[k]).map((k) => counts[k] + ' ' + STATUS_LABEL[LETTER[k] as Status]);
    row.tl.setAttribute('aria-label', total ? 'last 24 h: ' + total + ' probes, ' + pct + ' % usable' + (bad.length ? ', ' + bad.join(', ') : '') + '. Arrow keys step through the probes.' : 'no probes in the last 24 h');
    // Sparkline: latency against time over the same 24 h, scaled to the 95th percentile.
    const known = lats.filter((l) => l >= 0).sort((a, b) => a - b);
    if (known.length === 0) {
      row.sparkLine.setAttribute('d', '');
      setText(row.latText, '');
      row.spark.classList.add('none');
    } else {
      row.spark.classList.remove('none');
      const top = Math.max(1, known[Math.min(known.length - 1, Math.floor(known.length * 0.95))] as number);
      let path = '';
      for (let i = 0; i < times.length; i++) {
        const l = lats[i] as number;
        if (l < 0 || (times[i] as number) < start) continue;
        const x = Math.max(0, Math.min(100, ((((times[i] as number) - start) / DAY_S) * 100)));
        const y = 23 - Math.min(1, l / top) * 21;
        path += (path ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
      }
      row.sparkLine.setAttribute('d', path);
      const median = known[Math.floor(known.length / 2)] as number;
      row.spark.setAttribute('aria-label', 'probe latency over 24 h: median ' + median + ' ms, max ' + known[known.length - 1] + ' ms');
      setText(row.latText, 'p50 ' + median + ' ms');
      row.latText.title = 'median probe latency over 24 h; max ' + known[known.length - 1] + ' ms';
    }
    if (row.cursor >= times.length) select(row, -1);
  }

  function renderFix(row: Row, fix: string | null): void {
    if (fix === row.fixValue) return;
    row.fixValue = fix;
    row.fixRow.replaceChildren();
    row.fixEl = null;
    row.fixRow.hidden = !fix;
    if (!fix) return;
    let target: HTMLElement;
    if (isUrl(fix)) {
      const a = el('a', 'fix', fix);
      a.href = fix;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      target = a;
    } else {
      target = el('code', 'fix', fix);
    }
    const btn = el('button', 'copy', 'Copy');
    btn.type = 'button';
    btn.setAttribute('aria-label', 'Copy the fix for ' + (row.li.dataset.source || ''));
    btn.addEventListener('click', () => void copy(fix, target, btn));
    row.fixEl = target;
    row.fixRow.append(target, btn);
  }

  function updateRow(row: Row, src: Source): void {
    row.src = src;
    const status: Status = isStatus(src.status) ? src.status : 'unreachable';
    if (row.li.dataset.status !== status) row.li.dataset.status = status;
    setText(row.chipLabel, STATUS_LABEL[status]);
    setText(row.auth, src.authPath ? AUTH_LABEL[src.authPath] || src.authPath : 'no auth path');
    const broken = status !== 'ok' || !!src.operatorAction;
    row.problem.hidden = !broken;
    if (broken) {
      const label = src.operatorAction ? ACTION_LABEL[src.operatorAction] || src.operatorAction : '';
      setText(row.action, label);
      row.action.hidden = !label;
      renderFix(row, src.fix || null);
      const failures = src.consecutiveFailures > 1 ? ' (' + src.consecutiveFailures + ' failures in a row)' : '';
      setText(row.msg, (src.message || '') + failures);
    } else {
      renderFix(row, null);
    }
    tickRow(row);
  }

  function tickRow(row: Row): void {
    const src = row.src;
    const t = now();
    const exp = time(src.expiresAt);
    const issued = time(src.issuedAt);
    const refresh = time(src.refreshAt);
    let text = 'no expiry';
    let soon = false;
    if (exp !== null) {
      const left = exp - t;
      if (left > 0) text = 'expires in ' + duration(left);
      // The keeper refreshes on its own timer; until the page's next poll brings the new expiry,
      // a token past its planned refresh is being replaced, not lost.
      else if (refresh !== null && refresh <= t && t - exp < 60000) text = 'refreshing…';
      else text = 'expired ' + duration(left) + ' ago';
      if (refresh !== null && refresh > t && refresh < exp) text = 'refresh in ' + duration(refresh - t) + ' · ' + text;
      soon = left < 10 * 60 * 1000 && (refresh === null || refresh >= exp);
    }
    setText(row.lifeText, text);
    row.lifeText.classList.toggle('soon', soon);
    if (exp !== null && issued !== null && exp > issued) {
      const span = exp - issued;
      row.bar.hidden = false;
      row.fill.style.width = (Math.max(0, Math.min(1, (t - issued) / span)) * 100).toFixed(1) + '%';
      row.mark.hidden = refresh === null || refresh >= exp;
      if (refresh !== null) row.mark.style.left = (Math.max(0, Math.min(1, (refresh - issued) / span)) * 100).toFixed(1) + '%';
      row.bar.title = 'obtained ' + clockTime(issued) + (refresh !== null ? ', refresh ' + clockTime(refresh) : '') + ', expires ' + clockTime(exp);
    } else {
      row.bar.hidden = true;
    }
    const ok = time(src.lastOkAt);
    setText(row.lastOk, ok === null ? 'never ok' : 'last ok ' + ago(t - ok));
    row.lastOk.title = typeof src.latencyMs === 'number' ? 'last probe took ' + Math.round(src.latencyMs) + ' ms' : '';
  }

  function renderKeeper(k: KeeperInfo | undefined): void {
    const hasKeeper = !!k;
    $('keeper').hidden = !hasKeeper;
    if (!k) {
      configError.hidden = true;
      fleetRole.hidden = true;
      return;
    }
    const f = k.fleet;
    if (f) {
      fleetRole.dataset.role = f.role;
      const who = f.leader ? 'pid ' + f.leader.pid + ' on ' + f.leader.host + ', epoch ' + f.leader.epoch : 'no leader yet';
      setText(fleetRole, f.role === 'leader' ? 'This keeper leads ' + f.store + ' (' + who + ').' : 'Standby for ' + f.store + ': showing the state the leader (' + who + ') published; it takes over if the leader stops.');
      fleetRole.hidden = false;
    } else {
      fleetRole.hidden = true;
    }
    if (k.config && k.config.error) {
      setText(configError, 'config.json was not reloaded: ' + k.config.error + '\nThe keeper runs on the last good config until the file is fixed.');
      configError.hidden = false;
    } else {
      configError.hidden = true;
    }
    const hours = Array.isArray(k.activity && k.activity.hours) ? k.activity.hours : [];
    let probes = 0;
    let refreshes = 0;
    let failures = 0;
    for (const h of hours) {
      probes += h.probes;
      refreshes += h.refreshes;
      failures += h.refreshFailures;
    }
    setText(kTotals, '24 h: ' + probes + ' probes · ' + refreshes + ' refreshes' + (failures ? ' (' + failures + ' failed)' : ''));
    const hk = JSON.stringify(hours);
    if (hk !== hoursKey) {
      hoursKey = hk;
      drawHours(hours);
    }
    const recent = Array.isArray(k.activity && k.activity.recent) ? k.activity.recent.slice().reverse() : [];
    const ek = recent.length ? recent[0]!.at + recent.length : '';
    if (ek !== eventsKey) {
      eventsKey = ek;
      kEvents.replaceChildren(
        ...recent.map((e) => {
          const li = el('li', e.ok ? '' : 'bad');
          const at = time(e.at);
          li.append(el('time', '', at === null ? '' : clockTime(at)), el('span', '', ' ' + e.text));
          return li;
        }),
      );
    }
  }

  /** 24 bars, one per hour: probes (light) with the refreshes stacked on them, failures in red. */
  function drawHours(hours: ActivityHour[]): void {
    const nowHour = Math.floor(now() / 3600000) * 3600;
    let max = 1;
    for (const h of hours) max = Math.max(max, h.probes + h.refreshes);
    const parts: SVGElement[] = [];
    for (let i = 0; i < 24; i++) {
      const hour = nowHour - (23 - i) * 3600;
      const h = hours.find((x) => x.hour === hour);
      const x = i * 10 + 1;
      // Every hour has its slot, so an idle hour reads as idle, not as missing.
      parts.push(svg('rect', { x, y: 0, width: 8, height: 32, class: 'ht' }));
      if (!h) continue;
      const total = ((h.probes + h.refreshes) / max) * 30;
      const ref = (h.refreshes / max) * 30;
      parts.push(svg('rect', { x, y: 32 - total, width: 8, height: Math.max(0, total - ref), class: 'hp' }));
      if (ref > 0) parts.push(svg('rect', { x, y: 32 - ref, width: 8, height: ref, class: h.refreshFailures ? 'hf' : 'hr' }));
    }
    kHours.replaceChildren(...parts);
    kHours.setAttribute('aria-label', 'probes and refreshes per hour over the last 24 h');
  }

  function render(r: Report): void {
    report = r;
    const names = Object.keys(r.sources || {});
    for (const [name, row] of rows) {
      if (!names.includes(name)) {
        row.li.remove();
        rows.delete(name);
      }
    }
    for (const name of names) {
      const src = r.sources[name];
      if (!src || typeof src !== 'object') continue;
      let row = rows.get(name);
      if (!row) {
        row = makeRow(name, src);
        rows.set(name, row);
        if (historyDoc) drawTimeline(row, historyDoc.sources[name]);
      }
      updateRow(row, src);
    }
    // Problems first, then by name; move nodes only when the order changed (keeps selections).
    const order = Array.from(rows.entries())
      .sort(([an, a], [bn, b]) => {
        const d = STATUSES.indexOf(a.li.dataset.status as Status) - STATUSES.indexOf(b.li.dataset.status as Status);
        return d !== 0 ? d : an < bn ? -1 : an > bn ? 1 : 0;
      })
      .map(([, row]) => row.li);
    const current = Array.from(list.children);
    if (order.length !== current.length || order.some((li, i) => li !== current[i])) list.replaceChildren(...order);
    empty.hidden = order.length > 0;
    cols.hidden = order.length === 0;

    const counts: Record<Status, number> = { ok: 0, expiring: 0, degraded: 0, unreachable: 0, action_required: 0 };
    for (const row of rows.values()) counts[row.li.dataset.status as Status] += 1;
    const parts = (['ok', 'expiring', 'degraded', 'unreachable', 'action_required'] as Status[])
      .filter((s) => counts[s] > 0)
      .map((s) => counts[s] + ' ' + SUMMARY_LABEL[s]);
    setText(summary, parts.length ? parts.join(' · ') : 'no sources');
    const needs = counts.action_required;
    document.title = needs ? 'Latchkey: ' + needs + ' needs action' : 'Latchkey';
    renderKeeper(r.keeper);
    app.dataset.state = 'ready';
    app.dataset.generatedAt = r.generatedAt;
    tick();
    if (names.length === 0 || (historyDoc && historyFor === r.generatedAt)) app.dataset.history = 'ready';
    else void loadHistory();
  }

  function tick(): void {
    for (const row of rows.values()) tickRow(row);
    if (!report) return;
    const gen = time(report.generatedAt);
    if (gen === null) {
      setText(updated, '');
      return;
    }
    const t = now();
    const age = t - gen;
    setText(updated, 'updated ' + ago(age));
    const interval = typeof report.intervalSeconds === 'number' && report.intervalSeconds > 0 ? report.intervalSeconds : 300;
    const stale = age > Math.max(2.5 * interval * 1000, 60000);
    updated.classList.toggle('stale', stale);
    updated.title = stale ? 'The keeper has not finished a cycle for a while: is it stuck?' : new Date(gen).toLocaleString();
    const k = report.keeper;
    if (k) {
      const next = time(k.nextCycleAt);
      setText(kNextCycle, next === null ? 'no cycle planned' : next > t ? 'next cycle in ' + duration(next - t) : 'cycle running');
      let soonest: number | null = null;
      let soonestName = '';
      for (const name of Object.keys(report.sources)) {
        const at = time(report.sources[name]?.refreshAt);
        if (at !== null && (soonest === null || at < soonest)) {
          soonest = at;
          soonestName = name;
        }
      }
      setText(kNextRefresh, soonest === null ? 'no token to refresh' : 'next refresh ' + (soonest > t ? 'in ' + duration(soonest - t) : 'now') + ' (' + soonestName + ')');
    }
  }

  // --- wiring ---------------------------------------------------------------------------------
  list.addEventListener('click', (ev) => {
    const t = ev.target;
    if (!(t instanceof HTMLButtonElement) || !t.classList.contains('probe')) return;
    const name = t.dataset.probe;
    if (name && rows.has(name)) void probe(name);
  });
  probeAll.addEventListener('click', () => void probe(null));
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void poll();
  });
  setInterval(tick, 1000);
  // Both requests at once: the timelines do not wait a round trip for the report.
  void poll();
  void loadHistory();
}

// ---------------------------------------------------------------------------------------------
// Page

/**
 * One grid for the column headers and every row's first line: the same template, the same inline
 * padding (`--pad-l`/`--pad-r` include the row's border) and no `auto` track, so a header sits
 * exactly over its values whatever the contents (an `auto` button column sized differently in
 * the header than in the rows was what pushed every header ~43 px right).
 */
const CSS = `
:root {
  color-scheme: light dark;
  --bg: #f6f8fa; --panel: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --track: #e6eaef;
  --code: #eff2f5; --accent: #0b6e4f;
  --ok: #1a7f37; --expiring: #9a6700; --degraded: #bc4c00; --unreachable: #57708f; --action_required: #cf222e;
  --pad-l: 16px; --pad-r: 13px;
  --grid: 9rem minmax(0, 1fr) 5rem 17rem 10.5rem 7.5rem 6.5rem;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0d1117; --panel: #161b22; --fg: #e6edf3; --muted: #9198a1; --line: #30363d; --track: #262c34;
    --code: #0b0f14; --accent: #3fb68b;
    --ok: #3fb950; --expiring: #e3b341; --degraded: #f0883e; --unreachable: #8aa4c8; --action_required: #f85149;
  }
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; background: var(--bg); color: var(--fg); }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; -webkit-text-size-adjust: 100%; }
main { max-width: 1240px; margin: 0 auto; padding: max(12px, env(safe-area-inset-top)) max(12px, env(safe-area-inset-right)) 24px max(12px, env(safe-area-inset-left)); }
header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 8px 16px; padding: 8px 0 12px; }
.brand { display: flex; align-items: baseline; gap: 12px; flex-wrap: wrap; }
h1 { font-size: 20px; margin: 0; color: var(--accent); letter-spacing: .2px; }
#summary { font-weight: 600; }
.meta { display: flex; align-items: center; gap: 12px; color: var(--muted); }
#updated.stale { color: var(--expiring); font-weight: 600; }
button { font: inherit; color: inherit; background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 5px 10px; cursor: pointer; min-height: 32px; white-space: nowrap; }
button:hover:not(:disabled) { border-color: var(--accent); }
button:focus-visible, a:focus-visible, summary:focus-visible, svg:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
button:disabled { opacity: .6; cursor: progress; }
#probe-all { border-color: var(--accent); color: var(--accent); font-weight: 600; }
#banner, #config-error { background: var(--action_required); color: #fff; padding: 10px 12px; border-radius: 6px; margin-bottom: 10px; font-weight: 600; overflow-wrap: anywhere; }
#config-error { background: var(--panel); color: var(--fg); border: 1px solid var(--line); border-left: 4px solid var(--expiring); font-weight: 500; white-space: pre-wrap; }
#note, #fleet { border: 1px solid var(--line); background: var(--panel); padding: 8px 12px; border-radius: 6px; margin-bottom: 10px; }
main[data-state="error"] #sources { opacity: .55; }
#keeper { display: grid; grid-template-columns: 1fr auto; gap: 4px 16px; align-items: center; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; margin-bottom: 12px; color: var(--muted); }
.kstats { display: flex; flex-wrap: wrap; gap: 4px 16px; font-variant-numeric: tabular-nums; }
.kstats b { color: var(--fg); font-weight: 600; }
#k-hours { width: 240px; height: 32px; display: block; }
.khours span { display: block; font-size: 11px; text-align: right; }
.khours .kr { font-style: normal; color: var(--ok); }
#k-hours .ht { fill: var(--track); } #k-hours .hp { fill: var(--muted); } #k-hours .hr { fill: var(--ok); } #k-hours .hf { fill: var(--action_required); }
#keeper details { grid-column: 1 / -1; }
#keeper summary { cursor: pointer; width: max-content; padding: 2px 0; }
#k-events { list-style: none; margin: 4px 0 0; padding: 0; display: grid; gap: 2px; font-size: 13px; max-height: 14rem; overflow: auto; }
#k-events time { font-variant-numeric: tabular-nums; color: var(--muted); }
#k-events span { color: var(--fg); overflow-wrap: anywhere; }
#k-events .bad span { color: var(--action_required); }
.cols, .src > .main { display: grid; grid-template-columns: var(--grid); gap: 4px 12px; align-items: center; }
.cols { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; padding: 0 var(--pad-r) 6px var(--pad-l); }
ul#sources { list-style: none; margin: 0; padding: 0; display: grid; gap: 8px; }
.src { background: var(--panel); border: 1px solid var(--line); border-left: 4px solid var(--c, var(--line)); border-radius: 8px; padding: 10px calc(var(--pad-r) - 1px) 8px calc(var(--pad-l) - 4px); }
.src[data-status="ok"] { --c: var(--ok); }
.src[data-status="expiring"] { --c: var(--expiring); }
.src[data-status="degraded"] { --c: var(--degraded); }
.src[data-status="unreachable"] { --c: var(--unreachable); }
.src[data-status="action_required"] { --c: var(--action_required); }
.main > * { min-width: 0; }
.chip { display: inline-flex; align-items: center; gap: 6px; font-weight: 600; color: var(--c); white-space: nowrap; }
.dot { width: 10px; height: 10px; border-radius: 50%; background: var(--c); flex: none; }
.name { font-weight: 600; overflow-wrap: anywhere; }
.auth { color: var(--muted); }
.life, .lat { display: grid; gap: 3px; }
.life-text, .lastok, .lat-text { font-variant-numeric: tabular-nums; color: var(--muted); font-size: 13px; }
.life-text.soon { color: var(--expiring); font-weight: 600; }
.bar { position: relative; display: block; height: 6px; border-radius: 3px; background: var(--track); overflow: hidden; }
.fill { position: absolute; inset: 0 auto 0 0; width: 0; background: var(--accent); border-radius: 3px; }
.mark { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: var(--fg); }
.lat { grid-template-columns: 4.5rem 1fr; align-items: center; gap: 8px; }
.spark { width: 100%; height: 24px; display: block; overflow: visible; }
.spark path { fill: none; stroke: var(--accent); stroke-width: 1.5; stroke-linejoin: round; }
.spark.none { visibility: hidden; }
.tlwrap { margin-top: 8px; }
.timeline { width: 100%; height: 16px; display: block; background: var(--track); border-radius: 3px; cursor: crosshair; }
.timeline .s-o { fill: var(--ok); } .timeline .s-e { fill: var(--expiring); } .timeline .s-d { fill: var(--degraded); }
.timeline .s-u { fill: var(--unreachable); } .timeline .s-a { fill: var(--action_required); }
.timeline .cursor { fill: none; stroke: var(--fg); stroke-width: 2px; vector-effect: non-scaling-stroke; }
.tl-legend { display: flex; gap: 12px; color: var(--muted); font-size: 12px; margin-top: 2px; font-variant-numeric: tabular-nums; }
.tl-info { flex: 1; text-align: center; color: var(--fg); }
.tl-uptime { text-align: right; }
.problem { margin-top: 8px; padding-top: 8px; border-top: 1px dashed var(--line); display: grid; gap: 6px; }
.action { font-weight: 600; color: var(--c); }
.fixrow { display: flex; gap: 8px; align-items: stretch; flex-wrap: wrap; }
.fix { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; user-select: all; -webkit-user-select: all; overflow-wrap: anywhere; flex: 1 1 16rem; }
a.fix { color: var(--accent); user-select: text; -webkit-user-select: text; }
.msg { color: var(--muted); overflow-wrap: anywhere; }
#empty { background: var(--panel); border: 1px dashed var(--line); border-radius: 8px; padding: 20px 16px; text-align: center; }
#empty p { margin: 0 0 8px; }
#empty code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; display: inline-block; overflow-wrap: anywhere; user-select: all; -webkit-user-select: all; }
#empty .hint { color: var(--muted); margin: 8px 0 0; }
@media (max-width: 1000px) {
  .cols { display: none; }
  #keeper { grid-template-columns: 1fr; }
  #k-hours { width: 100%; }
  .src > .main {
    grid-template-columns: auto minmax(0, 1fr) auto;
    grid-template-areas: "name name probe" "chip auth auth" "life life life" "lat lat lastok";
    gap: 6px 10px;
  }
  .chip { grid-area: chip; } .name { grid-area: name; font-size: 16px; } .auth { grid-area: auth; justify-self: end; }
  .life { grid-area: life; } .lat { grid-area: lat; } .lastok { grid-area: lastok; justify-self: end; align-self: center; } .probe { grid-area: probe; }
  header { align-items: flex-start; }
}
`;

const SCRIPT = `"use strict";(${dashboardClient.toString()})();`;

function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

const CSP_DIRECTIVES = [
  "default-src 'none'",
  `script-src ${cspHash(SCRIPT)}`,
  `style-src ${cspHash(CSS)}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
];

/**
 * Content-Security-Policy for the dashboard HTML, suitable for a response header: only the page's
 * own inline script and style (by hash) run, requests go to the same origin only, no framing.
 * The page also carries it in a `<meta>` (without `frame-ancestors`, which a meta cannot set).
 */
export const DASHBOARD_CSP = [...CSP_DIRECTIVES, "frame-ancestors 'none'"].join('; ');

const THEME_LIGHT = '#f6f8fa';
const THEME_DARK = '#0d1117';

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta http-equiv="Content-Security-Policy" content="${CSP_DIRECTIVES.join('; ')}">
<meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark">
<meta name="theme-color" content="${THEME_LIGHT}" media="(prefers-color-scheme: light)">
<meta name="theme-color" content="${THEME_DARK}" media="(prefers-color-scheme: dark)">
<meta name="mobile-web-app-capable" content="yes">
<meta name="apple-mobile-web-app-capable" content="yes">
<meta name="apple-mobile-web-app-title" content="Latchkey">
<meta name="apple-mobile-web-app-status-bar-style" content="default">
<title>Latchkey</title>
<link rel="manifest" href="/manifest.webmanifest">
<link rel="icon" href="/icon.svg" type="image/svg+xml">
<link rel="icon" href="/icon.png" type="image/png" sizes="192x192">
<link rel="apple-touch-icon" href="/icon.png">
<style>${CSS}</style>
</head>
<body>
<main id="app" data-state="loading">
<header>
<div class="brand"><h1>Latchkey</h1><span id="summary" aria-live="polite">loading…</span></div>
<div class="meta"><span id="updated"></span><button id="probe-all" type="button" data-probe-all="">Probe all now</button></div>
</header>
<div id="banner" role="alert" hidden></div>
<div id="config-error" role="alert" hidden></div>
<div id="note" role="status" hidden></div>
<div id="fleet" role="status" hidden></div>
<section id="keeper" aria-label="what the keeper did" hidden>
<div class="kstats"><b>Keeper</b><span id="k-next-cycle"></span><span id="k-next-refresh"></span><span id="k-totals"></span></div>
<div class="khours"><svg id="k-hours" viewBox="0 0 240 32" preserveAspectRatio="none" role="img" aria-label="probes and refreshes per hour"></svg><span>probes · <i class="kr">refreshes</i> per hour, 24 h</span></div>
<details><summary>Recent activity</summary><ol id="k-events"></ol></details>
</section>
<div class="cols" id="cols" aria-hidden="true"><span>status</span><span>source</span><span>auth</span><span>token</span><span>latency 24 h</span><span>last ok</span><span></span></div>
<ul id="sources" aria-label="sources"></ul>
<div id="empty" hidden>
<p><b>No sources yet.</b> Add the first one from a terminal, for example:</p>
<code>latchkey add github --preset github --token env:GITHUB_TOKEN</code>
<p class="hint">See <code>latchkey add --help</code> for OAuth sources and presets. The keeper picks up config.json changes by itself.</p>
</div>
<noscript><p>This page needs JavaScript; the same report is at <code>/api/health</code>.</p></noscript>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

// ---------------------------------------------------------------------------------------------
// Icon: a white padlock on a green rounded square. The SVG and the PNGs come from one geometry.

const ICON = {
  bg: '#0b6e4f',
  fg: '#ffffff',
  corner: 0.22, // background corner radius, fraction of the side
  shackle: { cx: 0.5, cy: 0.43, r: 0.155, half: 0.045, legEnd: 0.56 },
  body: { x0: 0.27, y0: 0.47, x1: 0.73, y1: 0.81, r: 0.05 },
  hole: { cx: 0.5, cy: 0.6, r: 0.05, slotHalf: 0.02, slotEnd: 0.73 },
} as const;

function buildIconSvg(): string {
  const n = (v: number): string => String(Math.round(v * 192 * 100) / 100);
  const { shackle: s, body: b, hole: h } = ICON;
  return [
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 192 192" width="192" height="192">',
    `<rect width="192" height="192" rx="${n(ICON.corner)}" fill="${ICON.bg}"/>`,
    `<path d="M${n(s.cx - s.r)} ${n(s.legEnd)}V${n(s.cy)}A${n(s.r)} ${n(s.r)} 0 0 1 ${n(s.cx + s.r)} ${n(s.cy)}V${n(s.legEnd)}" fill="none" stroke="${ICON.fg}" stroke-width="${n(2 * s.half)}" stroke-linecap="round"/>`,
    `<rect x="${n(b.x0)}" y="${n(b.y0)}" width="${n(b.x1 - b.x0)}" height="${n(b.y1 - b.y0)}" rx="${n(b.r)}" fill="${ICON.fg}"/>`,
    `<circle cx="${n(h.cx)}" cy="${n(h.cy)}" r="${n(h.r)}" fill="${ICON.bg}"/>`,
    `<rect x="${n(h.cx - h.slotHalf)}" y="${n(h.cy)}" width="${n(2 * h.slotHalf)}" height="${n(h.slotEnd - h.cy)}" fill="${ICON.bg}"/>`,
    '</svg>',
    '',
  ].join('\n');
}

/** Euclidean length (Math.hypot is several times slower in V8, and this runs per pixel). */
function len(x: number, y: number): number {
  return Math.sqrt(x * x + y * y);
}

/** Signed distance to a rounded rectangle (negative inside). */
function sdRoundRect(x: number, y: number, x0: number, y0: number, x1: number, y1: number, r: number): number {
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const qx = Math.abs(x - cx) - ((x1 - x0) / 2 - r);
  const qy = Math.abs(y - cy) - ((y1 - y0) / 2 - r);
  return len(Math.max(qx, 0), Math.max(qy, 0)) + Math.min(Math.max(qx, qy), 0) - r;
}

function hexRgb(hex: string): [number, number, number] {
  const v = parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

/** Rasterizes the icon (RGBA, anti-aliased from signed distances: one sample per pixel). */
function rasterIcon(size: number): Buffer {
  const px = Buffer.alloc(size * size * 4);
  const bg = hexRgb(ICON.bg);
  const fg = hexRgb(ICON.fg);
  const { shackle: s, body: b, hole: h } = ICON;
  const cover = (dUnits: number): number => Math.min(1, Math.max(0, 0.5 - dUnits * size));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x + 0.5) / size;
      const v = (y + 0.5) / size;
      const alpha = cover(sdRoundRect(u, v, 0, 0, 1, 1, ICON.corner));
      let dShackle: number;
      if (v <= s.cy) {
        dShackle = Math.abs(len(u - s.cx, v - s.cy) - s.r) - s.half;
      } else {
        const dx = Math.min(Math.abs(u - (s.cx - s.r)), Math.abs(u - (s.cx + s.r)));
        dShackle = len(dx, Math.max(v - s.legEnd, 0)) - s.half;
      }
      const dBody = sdRoundRect(u, v, b.x0, b.y0, b.x1, b.y1, b.r);
      const dHole = Math.min(
        len(u - h.cx, v - h.cy) - h.r,
        sdRoundRect(u, v, h.cx - h.slotHalf, h.cy, h.cx + h.slotHalf, h.slotEnd, 0),
      );
      const dLock = Math.max(Math.min(dShackle, dBody), -dHole);
      const c = cover(dLock);
      const i = (y * size + x) * 4;
      px[i] = Math.round(bg[0] + (fg[0] - bg[0]) * c);
      px[i + 1] = Math.round(bg[1] + (fg[1] - bg[1]) * c);
      px[i + 2] = Math.round(bg[2] + (fg[2] - bg[2]) * c);
      px[i + 3] = Math.round(alpha * 255);
    }
  }
  return px;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 as PNG chunks use it (exported for the test's PNG check). */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of buf) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** Encodes RGBA pixels as a PNG (8-bit RGBA, no filtering, zlib-deflated). */
function encodePng(size: number, rgba: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // colour type RGBA
  ihdr[10] = 0; // compression
  ihdr[11] = 0; // filter
  ihdr[12] = 0; // interlace
  const stride = size * 4;
  const raw = Buffer.alloc((stride + 1) * size);
  for (let y = 0; y < size; y++) rgba.copy(raw, y * (stride + 1) + 1, y * stride, (y + 1) * stride);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(raw)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

const ICON_SVG = buildIconSvg();

// The PNGs cost ~40 ms of CPU to rasterize and deflate, so they are built once on first use rather
// than at import: every CLI command that imports the keeper would pay for them otherwise.
const pngCache = new Map<number, Buffer>();
function iconPngOnce(size: 192 | 512): Buffer {
  let png = pngCache.get(size);
  if (!png) {
    png = encodePng(size, rasterIcon(size));
    pngCache.set(size, png);
  }
  return png;
}

const MANIFEST = `${JSON.stringify(
  {
    name: 'Latchkey',
    short_name: 'Latchkey',
    description: 'Credential health: what is healthy, what is about to expire, and the exact command that fixes what is broken.',
    id: '/',
    start_url: '/',
    scope: '/',
    display: 'standalone',
    background_color: THEME_DARK,
    theme_color: THEME_DARK,
    icons: [
      { src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
      { src: '/icon.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
      { src: '/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
    ],
  },
  null,
  2,
)}\n`;

// ---------------------------------------------------------------------------------------------
// Exports

/** The dashboard page (built once at module load). */
export function dashboardHtml(): string {
  return HTML;
}

/** The web app manifest, served at `/manifest.webmanifest` as `application/manifest+json`. */
export function manifestJson(): string {
  return MANIFEST;
}

/** The app icon as SVG, served at `/icon.svg` as `image/svg+xml`. */
export function iconSvg(): string {
  return ICON_SVG;
}

/** The PNG sizes rasterized so far in this process (the server must not build them at start-up). */
export function renderedIconSizes(): number[] {
  return [...pngCache.keys()];
}

/** The app icon as PNG: 192×192 at `/icon.png` (default), 512×512 at `/icon-512.png`. */
export function iconPng(size: 192 | 512 = 192): Buffer {
  return iconPngOnce(size === 512 ? 512 : 192);
}

export interface DashboardAsset {
  contentType: string;
  body: Buffer;
  /** The body gzipped, for text assets worth it (served when the browser accepts gzip). */
  gzip?: Buffer;
  /** Strong ETag (quoted) for conditional requests. */
  etag: string;
  /** Every response header the asset should be served with (including the two above). */
  headers: Readonly<Record<string, string>>;
}

function asset(contentType: string, body: string | Buffer, extra: Record<string, string>): DashboardAsset {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const etag = `"${createHash('sha256').update(buf).digest('base64url').slice(0, 22)}"`;
  // Text only: a PNG is already deflated. Level 9 once at start-up; the page is sent many times.
  const gzip = /^(text\/|application\/manifest|image\/svg)/.test(contentType) ? gzipSync(buf, { level: 9 }) : undefined;
  return {
    contentType,
    body: buf,
    ...(gzip && gzip.length < buf.length ? { gzip } : {}),
    etag,
    headers: { 'Content-Type': contentType, ETag: etag, 'X-Content-Type-Options': 'nosniff', ...extra },
  };
}

const STATIC_CACHE = { 'Cache-Control': 'public, max-age=86400' };

const ASSETS: ReadonlyMap<string, DashboardAsset> = new Map([
  [
    '/',
    asset('text/html; charset=utf-8', HTML, {
      'Cache-Control': 'no-cache',
      'Content-Security-Policy': DASHBOARD_CSP,
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
    }),
  ],
  ['/manifest.webmanifest', asset('application/manifest+json; charset=utf-8', MANIFEST, { 'Cache-Control': 'no-cache' })],
  ['/icon.svg', asset('image/svg+xml', ICON_SVG, STATIC_CACHE)],
]);
const LAZY_PNG: ReadonlyMap<string, 192 | 512> = new Map([
  ['/icon.png', 192],
  ['/icon-512.png', 512],
]);
const pngAssets = new Map<string, DashboardAsset>();

/**
 * The prebuilt static asset for a request path (`/`, `/manifest.webmanifest`, `/icon.svg`,
 * `/icon.png`, `/icon-512.png`), or undefined. These need no bearer token even in remote mode:
 * they hold no data, and the browser fetches the manifest and icons without credentials.
 */
export function dashboardAsset(pathname: string): DashboardAsset | undefined {
  const found = ASSETS.get(pathname) ?? pngAssets.get(pathname);
  if (found) return found;
  const size = LAZY_PNG.get(pathname);
  if (size === undefined) return undefined;
  const built = asset('image/png', iconPngOnce(size), STATIC_CACHE);
  pngAssets.set(pathname, built);
  return built;
}

/** Every path `dashboardAsset` answers. */
export const DASHBOARD_ASSET_PATHS: readonly string[] = [...ASSETS.keys(), ...LAZY_PNG.keys()];
