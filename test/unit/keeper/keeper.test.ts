import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from '../../../src/core/secret.js';
import type { ProbeResult } from '../../../src/client/probe-types.js';
import {
  backoffCapCycles,
  backoffCycles,
  ClockJumpDetector,
  DAILY_REFRESH_MS,
  DueTimes,
  jitteredDelayMs,
  nextCycleDelayMs,
  refreshAheadAt,
  refreshAheadReason,
  refreshDueAt,
  refreshRetryDelayMs,
} from '../../../src/keeper/scheduler.js';
import {
  appendTimeline,
  applyVerdict,
  countActivity,
  emptyActivity,
  emptySourceState,
  emptyTimeline,
  loadKeeperState,
  noteActivity,
  HISTORY_LIMIT,
  recentSamples,
  samplesUntil,
  saveKeeperState,
  takeTurn,
  timelineEnd,
  TIMELINE_MAX_SAMPLES,
  type SourceKeeperState,
  type Verdict,
} from '../../../src/keeper/state.js';
import { combineVerdict } from '../../../src/keeper/verdict.js';
import { buildHealthReport, HealthReportWriter, isReportStale, parseHealthReport, readHealthReport, serializeHealthReport } from '../../../src/keeper/health-report.js';
import { CANCELLED, probeWithDeadline, runBounded } from '../../../src/keeper/probe-stage.js';
import { acquireKeeperLock } from '../../../src/keeper/single-instance.js';
import { formatHealthTable, useColour } from '../../../src/cli/commands/health.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import type { StoredGrant } from '../../../src/store/store.js';

const clock = { now: () => Date.parse('2030-01-01T00:00:00Z') };

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'lk-keeper-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function grant(obtainedAt: number, lifetimeMs: number | undefined, extra: Partial<StoredGrant> = {}): StoredGrant {
  return {
    accessToken: new Secret('a'),
    refreshToken: new Secret('r'),
    obtainedAt,
    ...(lifetimeMs !== undefined ? { expiresAt: obtainedAt + lifetimeMs } : {}),
    ...extra,
  };
}

function probe(status: ProbeResult['status'], extra: Partial<ProbeResult> = {}): ProbeResult {
  return {
    source: 's',
    status,
    authPath: 'oauth',
    operatorAction: null,
    fix: null,
    message: `probe ${status}`,
    latencyMs: 12,
    expiresAt: null,
    checkedAt: '2030-01-01T00:00:00.000Z',
    ...extra,
  };
}

function verdict(status: Verdict['status'], at = '2030-01-01T00:00:00.000Z'): Verdict {
  return { status, authPath: 'token', operatorAction: status === 'action_required' ? 'replace_token' : null, fix: null, message: status, expiresAt: null, latencyMs: 5, at };
}

// --- schedule ---------------------------------------------------------------------------------

test('jitter stays within ±10 % and covers the range', () => {
  assert.equal(jitteredDelayMs(300_000, 0), 270_000);
  assert.equal(jitteredDelayMs(300_000, 0.5), 300_000);
  assert.ok(jitteredDelayMs(300_000, 0.999_999) <= 330_000);
  for (let i = 0; i < 1000; i++) {
    const d = jitteredDelayMs(1000);
    assert.ok(d >= 900 && d <= 1100, String(d));
  }
  // The next cycle counts from the previous start; an overrun starts the next one at once.
  assert.equal(nextCycleDelayMs(0, 400, 1000, 0.5), 600);
  assert.equal(nextCycleDelayMs(0, 5000, 1000, 0.5), 0);
});

test('refresh-ahead: due at ⅔ of the lifetime, daily for tokens without expiry, never for revoked or refresh-less grants', () => {
  const t0 = 1_000_000;
  const g = grant(t0, 60_000);
  assert.equal(refreshAheadReason({ grant: g }, t0 + 39_999), undefined);
  assert.equal(refreshAheadReason({ grant: g }, t0 + 40_000), 'two_thirds_lifetime');
  assert.equal(refreshAheadReason({ grant: g }, t0 + 61_000), 'expired');
  assert.equal(refreshAheadAt({ grant: g }), t0 + 40_000);
  const noExpiry = grant(t0, undefined);
  assert.equal(refreshAheadReason({ grant: noExpiry }, t0 + DAILY_REFRESH_MS - 1), undefined);
  assert.equal(refreshAheadReason({ grant: noExpiry }, t0 + DAILY_REFRESH_MS), 'daily');
  // The last refresh counts, not only the login.
  assert.equal(refreshAheadReason({ grant: noExpiry, lastRefreshAt: t0 + 1000 }, t0 + DAILY_REFRESH_MS), undefined);
  // Long-lived access token (30 days): the daily touch comes first.
  assert.equal(refreshAheadReason({ grant: grant(t0, 30 * DAILY_REFRESH_MS) }, t0 + DAILY_REFRESH_MS), 'daily');
  assert.equal(refreshAheadReason({ grant: grant(t0, 60_000, { revoked: { at: t0, reason: 'invalid_grant' } }) }, t0 + 50_000), undefined);
  assert.equal(refreshAheadReason({ grant: { ...grant(t0, 60_000), refreshToken: undefined } }, t0 + 50_000), undefined);
  assert.equal(refreshAheadReason(undefined, t0), undefined);
  // A clock that jumped back (now before obtainedAt) is not "due".
  assert.equal(refreshAheadReason({ grant: noExpiry }, t0 - 10 * DAILY_REFRESH_MS), undefined);
});

test('backoff: 0, 1, 3, 7… cycles, capped by interval', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoffCycles(n, 16)), [0, 1, 3, 7, 15, 16]);
  assert.equal(backoffCycles(100, 16), 16);
  assert.equal(backoffCapCycles(300_000), 12); // one hour at the default interval
  assert.equal(backoffCapCycles(1000), 16);
  assert.equal(backoffCapCycles(7_200_000), 1);
});

test('clock jumps are noticed against the monotonic clock', () => {
  const d = new ClockJumpDetector(30_000);
  assert.equal(d.observe(1_000_000, 0), undefined);
  assert.equal(d.observe(1_001_000, 1000), undefined);
  assert.equal(d.observe(1_001_000 + 3_600_000 + 1000, 2000), 3_600_000);
  assert.equal(d.observe(1_001_000 + 1000, 3000), -3_601_000);
});

// --- state ------------------------------------------------------------------------------------

test('state: counters, failingSince, history bound, lastOkAt kept through failures', () => {
  let s = emptySourceState();
  let r = applyVerdict('s', s, verdict('ok', '2030-01-01T00:00:00.000Z'), 16);
  assert.equal(r.change, undefined, 'first healthy verdict is not a change');
  s = r.next;
  assert.equal(s.lastOkAt, '2030-01-01T00:00:00.000Z');
  r = applyVerdict('s', s, verdict('unreachable', '2030-01-01T00:05:00.000Z'), 16);
  assert.deepEqual([r.change?.from, r.change?.to], ['ok', 'unreachable']);
  s = r.next;
  r = applyVerdict('s', s, verdict('unreachable', '2030-01-01T00:10:00.000Z'), 16);
  assert.equal(r.change, undefined, 'same status twice: no second alert');
  s = r.next;
  assert.equal(s.consecutiveFailures, 2);
  assert.equal(s.failingSince, '2030-01-01T00:05:00.000Z');
  assert.equal(s.lastOkAt, '2030-01-01T00:00:00.000Z');
  assert.equal(s.skipCycles, 1);
  r = applyVerdict('s', s, verdict('ok', '2030-01-01T00:20:00.000Z'), 16);
  assert.deepEqual([r.change?.from, r.change?.to], ['unreachable', 'ok'], 'recovery is a change');
  assert.equal(r.next.consecutiveFailures, 0);
  assert.equal(r.next.failingSince, null);
  assert.equal(r.next.skipCycles, 0);
  let h = r.next;
  for (let i = 0; i < TIMELINE_MAX_SAMPLES + 10; i++) h = applyVerdict('s', h, verdict('ok', new Date(Date.parse('2030-01-01T01:00:00Z') + i * 1000).toISOString()), 16).next;
  assert.equal(h.timeline.s.length, TIMELINE_MAX_SAMPLES, 'bounded by count');
  // A first verdict that is broken is a change (from null).
  const first = applyVerdict('s', emptySourceState(), verdict('action_required'), 16);
  assert.deepEqual([first.change?.from, first.change?.to], [null, 'action_required']);
});

test('backoff never starves: a failing source skips cycles, then takes its turn again', () => {
  let s = emptySourceState();
  let probes = 0;
  for (let cycle = 0; cycle < 60; cycle++) {
    const turn = takeTurn(s);
    s = turn.next;
    if (!turn.due) continue;
    probes++;
    s = applyVerdict('s', s, verdict('unreachable'), 8).next;
  }
  // 60 cycles with cap 8: probed at 1, 2, 4, 8, 16 then every 9th cycle — far fewer than 60, never zero.
  assert.ok(probes >= 8 && probes <= 12, `probed ${probes} times`);
  // action_required backs off less (the fix may come any moment).
  let a = emptySourceState();
  for (let i = 0; i < 10; i++) a = applyVerdict('s', a, verdict('action_required'), 16).next;
  assert.equal(a.skipCycles, 3);
});

test('state file: atomic round trip; a corrupt file is moved aside, never overwritten in place', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'keeper-state.json');
  assert.equal((await loadKeeperState(path)).kind, 'missing');
  const s = applyVerdict('a', emptySourceState(), verdict('unreachable'), 16).next;
  await saveKeeperState(path, { version: 1, savedAt: '2030-01-01T00:00:00.000Z', cycles: 7, sources: { a: s }, activity: emptyActivity() });
  const back = await loadKeeperState(path);
  assert.equal(back.kind, 'loaded');
  assert.equal(back.state.cycles, 7);
  // As saved (the timeline's typed arrays may differ in spare room, not in content).
  assert.deepEqual(JSON.parse(JSON.stringify(back.state.sources.a)), JSON.parse(JSON.stringify(s)));
  await writeFile(path, '{"version":1,"sources":{"a":{"status":"ok"', 'utf8');
  const corrupt = await loadKeeperState(path, Date.parse('2030-01-02T00:00:00Z'));
  assert.equal(corrupt.kind, 'corrupt');
  assert.equal(corrupt.state.cycles, 0);
  const files = await readdir(dir);
  assert.ok(files.some((f) => f.startsWith('keeper-state.json.corrupt-')), files.join(','));
  assert.ok(!files.includes('keeper-state.json'));
  // Fields of an older/partial file get defaults.
  await writeFile(path, JSON.stringify({ version: 1, sources: { b: { status: 'ok', history: [{ at: 'x', status: 'nope' }] } } }));
  const partial = await loadKeeperState(path);
  assert.equal(partial.kind, 'loaded');
  assert.equal(partial.state.sources.b?.consecutiveFailures, 0);
  assert.deepEqual(partial.state.sources.b?.timeline.s, '');
  // A file from before the timeline: its valid samples carry over, in order.
  const samples = Array.from({ length: 5 }, (_, i) => ({ at: new Date(Date.UTC(2030, 0, 1, 0, i * 5)).toISOString(), status: 'ok', latencyMs: i }));
  samples[2] = { at: 'bad', status: 'nope', latencyMs: 0 };
  (samples[4] as Record<string, unknown>).latencyMs = 'slow';
  await writeFile(path, JSON.stringify({ version: 1, sources: { c: { status: 'ok', history: samples } } }));
  const c = (await loadKeeperState(path)).state.sources.c!;
  assert.deepEqual(recentSamples(c.timeline), [
    { at: '2030-01-01T00:00:00.000Z', status: 'ok', latencyMs: 0 },
    { at: '2030-01-01T00:05:00.000Z', status: 'ok', latencyMs: 1 },
    { at: '2030-01-01T00:15:00.000Z', status: 'ok', latencyMs: 3 },
    { at: '2030-01-01T00:20:00.000Z', status: 'ok', latencyMs: null },
  ]);
  // A timeline whose arrays disagree is dropped (history only), the rest of the source loads.
  await writeFile(path, JSON.stringify({ version: 1, sources: { d: { status: 'ok', timeline: { t0: 1, dt: [0, 5], s: 'o', l: [1] } } } }));
  const d = (await loadKeeperState(path)).state.sources.d!;
  assert.equal(d.status, 'ok');
  assert.equal(d.timeline.s, '');
});

// --- verdict ----------------------------------------------------------------------------------

test('verdict: a revoked grant is action_required even while its access token still works', () => {
  const at = '2030-01-01T00:00:00.000Z';
  const v = combineVerdict('hub', probe('ok', { expiresAt: '2030-01-01T00:10:00.000Z' }), { kind: 'revoked', message: 'invalid_grant' }, at);
  assert.equal(v.status, 'action_required');
  assert.equal(v.operatorAction, 'reauthorize');
  assert.equal(v.fix, 'latchkey login hub');
  assert.match(v.message, /still works until 2030-01-01T00:10:00.000Z/);
  // A token is preferred and works: the dead oauth fallback is mentioned, status unchanged.
  const fb = combineVerdict('hub', probe('ok', { authPath: 'token' }), { kind: 'revoked', message: 'invalid_grant' }, at);
  assert.equal(fb.status, 'ok');
  assert.match(fb.message, /fallback oauth/);
  // Transient refresh failure with a working token: degraded, not action_required.
  const tr = combineVerdict('hub', probe('ok'), { kind: 'transient', reason: 'two_thirds_lifetime', message: 'timeout' }, at);
  assert.equal(tr.status, 'degraded');
  assert.equal(tr.operatorAction, null);
  // Misconfigured client: fix_config.
  const bad = combineVerdict('hub', probe('ok'), { kind: 'action', operatorAction: 'fix_config', message: 'invalid_client' }, at);
  assert.equal(bad.operatorAction, 'fix_config');
  // The probe's own verdict stands when nothing else is known; its action gets the fix.
  const dead = combineVerdict('hub', probe('action_required', { operatorAction: 'relogin', fix: null }), { kind: 'not_due' }, at);
  assert.equal(dead.fix, 'latchkey login hub');
  // A session keep-alive refused after renewal needs a person.
  const warm = combineVerdict('s', probe('ok', { authPath: 'session' }), { kind: 'none' }, at, { kind: 'failed', message: 'rejected', operatorAction: 'renew_session' });
  assert.equal(warm.status, 'action_required');
  assert.equal(warm.operatorAction, 'renew_session');
});

// --- probe stage ------------------------------------------------------------------------------

test('probe stage: a probe that ignores its signal is cut off at the deadline; errors are classified; shutdown cancels', async () => {
  const stop = new AbortController();
  const started = Date.now();
  const stalled = await probeWithDeadline(() => new Promise(() => undefined), 's', 100, stop.signal, clock);
  assert.ok(stalled !== CANCELLED);
  assert.equal(stalled.status, 'unreachable');
  assert.match(stalled.message, /no answer within 0.1 s/);
  assert.ok(Date.now() - started < 3000);
  const thrown = await probeWithDeadline(
    async () => {
      throw new LatchkeyError('LK_GRANT_REVOKED', 'revoked', { source: 's', operatorAction: 'reauthorize' });
    },
    's',
    1000,
    stop.signal,
    clock,
  );
  assert.ok(thrown !== CANCELLED);
  assert.equal(thrown.status, 'action_required');
  assert.equal(thrown.fix, 'latchkey login s');
  const pending = probeWithDeadline(() => new Promise(() => undefined), 's', 60_000, stop.signal, clock);
  stop.abort();
  assert.equal(await pending, CANCELLED);
});

test('runBounded never exceeds its concurrency and finishes everything', async () => {
  let inFlight = 0;
  let peak = 0;
  const done: number[] = [];
  await runBounded([...Array(50).keys()], 7, async (i) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await new Promise((r) => setTimeout(r, 1 + (i % 3)));
    inFlight--;
    done.push(i);
  });
  assert.equal(peak, 7);
  assert.equal(done.length, 50);
});

test('runBounded with a per-host share: one host holds at most its share while another host waits; alone, it gets every slot', async () => {
  // 20 probes of a slow host, then 4 of a fast one; 6 slots, 3 per host.
  const items = [...Array(20).keys()].map((i) => `slow-${i}`).concat([...Array(4).keys()].map((i) => `fast-${i}`));
  const inFlight = { slow: 0, fast: 0 };
  let fastWaiting = 4;
  let peakSlowWhileFastWaits = 0;
  let peakSlowAlone = 0;
  let peakTotal = 0;
  const started: string[] = [];
  await runBounded(
    items,
    6,
    async (item) => {
      const host = item.startsWith('slow') ? 'slow' : 'fast';
      started.push(item);
      inFlight[host]++;
      if (host === 'fast') fastWaiting--;
      peakTotal = Math.max(peakTotal, inFlight.slow + inFlight.fast);
      if (fastWaiting > 0) peakSlowWhileFastWaits = Math.max(peakSlowWhileFastWaits, inFlight.slow);
      if (fastWaiting === 0 && inFlight.fast === 0) peakSlowAlone = Math.max(peakSlowAlone, inFlight.slow);
      await new Promise((r) => setTimeout(r, host === 'slow' ? 30 : 5));
      inFlight[host]--;
    },
    0,
    { groupOf: (item) => item.split('-')[0]!, perGroup: 3 },
  );
  assert.equal(started.length, 24, 'everything ran');
  assert.equal(peakTotal, 6);
  assert.equal(peakSlowWhileFastWaits, 3, 'while probes of the fast host waited for a slot, the slow one held at most its share');
  assert.equal(peakSlowAlone, 6, 'once nobody else waited, the slow host got every slot');
  assert.ok(started.indexOf('fast-0') < 6, `the fast host started among the first six (${started.slice(0, 6).join(', ')})`);
  assert.deepEqual(
    started.filter((i) => i.startsWith('slow')),
    [...Array(20).keys()].map((i) => `slow-${i}`),
    'in order within a host',
  );
});

test('runBounded: a released task gives its slot to the next item and is still waited for; released tasks are bounded too', async () => {
  // Items 0 and 1 stall until the end and release their slots; with 2 slots and 1 release
  // allowed, item 1 cannot release, so it keeps its slot: the healthy items run on the other one.
  const gates: Array<() => void> = [];
  const started: number[] = [];
  const finished: number[] = [];
  let active = 0;
  let peakActive = 0;
  const run = runBounded(
    [0, 1, 2, 3, 4, 5],
    2,
    async (i, release) => {
      started.push(i);
      if (i < 2) {
        release();
        await new Promise<void>((r) => gates.push(r));
      } else {
        active++;
        peakActive = Math.max(peakActive, active);
        await new Promise((r) => setTimeout(r, 2));
        active--;
      }
      finished.push(i);
    },
    1,
  );
  let settled = false;
  void run.then(() => (settled = true));
  for (let i = 0; i < 200 && finished.length < 4; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(started, [0, 1, 2, 3, 4, 5], 'the released slot went on with the healthy items');
  assert.deepEqual(finished.sort(), [2, 3, 4, 5]);
  assert.equal(peakActive, 1, 'item 1 could not release (the bound is 1), so only one slot served the healthy items');
  assert.equal(settled, false, 'runBounded waits for released tasks');
  for (const g of gates) g();
  await run;
  assert.equal(finished.length, 6);
});

test('probe stage: a probe still unanswered after the slow mark says so once (the keeper then frees its slot); a fast one does not', async () => {
  const stop = new AbortController();
  let slowCalls = 0;
  const stalled = await probeWithDeadline(() => new Promise(() => undefined), 's', 100, stop.signal, clock, () => slowCalls++);
  assert.ok(stalled !== CANCELLED && stalled.status === 'unreachable');
  assert.equal(slowCalls, 1);
  let fastSlow = 0;
  const fast = await probeWithDeadline(async () => probe('ok'), 's', 100, stop.signal, clock, () => fastSlow++);
  assert.ok(fast !== CANCELLED && fast.status === 'ok');
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(fastSlow, 0);
});

// --- report -----------------------------------------------------------------------------------

test('health report: exact field names; the writer notices deletion, corruption and replacement', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'health.json');
  const s = applyVerdict('a', emptySourceState(), verdict('action_required'), 16).next;
  const report = buildHealthReport([['a', s], ['b', emptySourceState()]], Date.parse('2030-01-01T00:00:00Z'), 300);
  assert.deepEqual(Object.keys(report), ['generatedAt', 'intervalSeconds', 'sources']);
  assert.deepEqual(Object.keys(report.sources.a!), [
    'status',
    'authPath',
    'operatorAction',
    'fix',
    'message',
    'expiresAt',
    'lastOkAt',
    'consecutiveFailures',
    'latencyMs',
    'history',
  ]);
  assert.deepEqual(Object.keys(report.sources.a!.history[0]!), ['at', 'status', 'latencyMs']);
  assert.equal(report.sources.b?.status, 'unreachable');
  assert.equal(report.sources.b?.message, 'not checked yet');
  const w = new HealthReportWriter(path);
  assert.equal(await w.check(), 'first');
  await w.write(serializeHealthReport(report));
  assert.equal(await w.check(), 'unchanged');
  assert.deepEqual(await readHealthReport(path), report);
  await unlink(path);
  assert.equal(await w.check(), 'deleted');
  await w.write(serializeHealthReport(report));
  await writeFile(path, '{"generatedAt": "garb');
  assert.equal(await w.check(), 'corrupted');
  await assert.rejects(readHealthReport(path), /not valid JSON/);
  await writeFile(path, JSON.stringify({ ...report, generatedAt: '2031-01-01T00:00:00.000Z' }));
  assert.equal(await w.check(), 'replaced');
  assert.equal(w.writes, 2);
  assert.throws(() => parseHealthReport({ generatedAt: 'x', sources: {} }, 'f'), /generatedAt/);
  assert.equal(isReportStale(report, Date.parse('2030-01-01T00:10:00Z')), false);
  assert.equal(isReportStale(report, Date.parse('2030-01-01T00:30:00Z')), true);
  assert.equal(JSON.parse(await readFile(path, 'utf8')).generatedAt, '2031-01-01T00:00:00.000Z');
});

test('health table: aligned columns, colour only on a TTY and never with NO_COLOR', () => {
  const s = applyVerdict('dead', emptySourceState(), { ...verdict('action_required'), fix: 'latchkey login dead' }, 16).next;
  const report = buildHealthReport([['dead', s], ['fine', applyVerdict('fine', emptySourceState(), verdict('ok'), 16).next]], Date.parse('2030-01-01T00:00:00Z'), 300);
  const plain = formatHealthTable({ from: 'keeper', report, note: 'note', stale: false }, Date.parse('2030-01-01T00:00:10Z'), false);
  assert.ok(!plain.includes('\x1b['), 'no escape codes');
  assert.match(plain, /dead\s+action_required\s+token.*latchkey login dead/);
  const coloured = formatHealthTable({ from: 'keeper', report, note: 'note', stale: false }, Date.parse('2030-01-01T00:00:10Z'), true);
  assert.ok(coloured.includes('\x1b[1;31maction_required'), 'action_required in bold red');
  const tty = { isTTY: true } as unknown as NodeJS.WritableStream;
  const io = (env: NodeJS.ProcessEnv) => ({ stdout: tty, stderr: tty, stdin: process.stdin, env });
  assert.equal(useColour(io({})), true);
  assert.equal(useColour(io({ NO_COLOR: '1' })), false);
  assert.equal(useColour({ ...io({}), stdout: process.stdout.isTTY ? ({} as NodeJS.WritableStream) : process.stdout }), false);
});

test('health table: text from upstreams or a hand-edited report cannot put escape sequences on the terminal', () => {
  const hostile = { ...verdict('action_required'), message: 'invalid_grant\x1b]0;pwned\x07\x1b[2J\nline two\u009b31m', fix: 'latchkey login x\r\x1b[K' };
  const report = buildHealthReport([['x', applyVerdict('x', emptySourceState(), hostile, 16).next]], Date.parse('2030-01-01T00:00:00Z'), 300);
  const out = formatHealthTable({ from: 'keeper', report, note: 'note \x1b[31m', stale: false }, Date.parse('2030-01-01T00:00:10Z'), false);
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(out.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/, 'no control character but the line breaks of the table');
  assert.equal(out.trimEnd().split('\n').length, 3, 'note, header, one row: the message did not add a line');
  assert.match(out, /latchkey login x/);
  // Escape sequences go whole (an OSC's payload, a CSI's parameters), not just their ESC byte.
  assert.match(out, /invalid_grant line two/);
  assert.doesNotMatch(out, /pwned|\[2J|31m/);
});

// --- single instance --------------------------------------------------------------------------

test('single instance: a second keeper is refused (naming the holder) or stands by until the first releases', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'locks', 'keeper.lock');
  const first = await acquireKeeperLock(path, { heartbeatMs: 50, staleMs: 300 });
  await assert.rejects(acquireKeeperLock(path), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, 'LK_KEEPER');
    assert.match(err.message, new RegExp(`another keeper is already running .*pid ${process.pid}`));
    return true;
  });
  // Past the stale age the heartbeat keeps the live holder's lock fresh.
  await new Promise((r) => setTimeout(r, 700));
  await assert.rejects(acquireKeeperLock(path, { staleMs: 300 }), /another keeper/);
  let announced = 0;
  const waiting = acquireKeeperLock(path, { standby: true, staleMs: 300, onStandby: () => announced++ });
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(announced, 1, 'says once that it stands by');
  await first.release();
  const second = await waiting;
  await second.release();
  // Standing by can be abandoned.
  const third = await acquireKeeperLock(path);
  const ctrl = new AbortController();
  const abandoned = acquireKeeperLock(path, { standby: true, signal: ctrl.signal });
  setTimeout(() => ctrl.abort(), 200);
  await assert.rejects(abandoned, /stopped while standing by/);
  await third.release();
});

test('single instance: a lock broken by someone else is reported lost by the heartbeat', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'locks', 'keeper.lock');
  let lost = 0;
  const lock = await acquireKeeperLock(path, { heartbeatMs: 30, onLost: () => lost++ });
  await writeFile(path, JSON.stringify({ owner: 'someone-else', pid: 1, host: 'elsewhere', at: Date.now() }));
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(lost, 1);
  await lock.release();
  // Not ours: release leaves the other owner's lock alone.
  assert.match(await readFile(path, 'utf8'), /someone-else/);
});

test('single instance: a standby keeper takes over a keeper lock stamped in the future once it has not changed for staleMs; an empty one after the create grace', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'locks', 'keeper.lock');
  await mkdir(join(dir, 'locks'), { recursive: true, mode: 0o700 });
  const future = Date.now() + 3_600_000;
  await writeFile(path, JSON.stringify({ owner: 'clock-ahead', pid: 4242, host: 'elsewhere', at: future }));
  await utimes(path, new Date(future), new Date(future));
  const ctrl = new AbortController();
  const giveUp = setTimeout(() => ctrl.abort(), 8_000);
  t.after(() => clearTimeout(giveUp));
  // Before: each standby attempt started counting afresh, so it stood by for ever.
  const lock = await acquireKeeperLock(path, { standby: true, staleMs: 1_500, signal: ctrl.signal });
  await lock.release();
  // An empty keeper.lock (a keeper killed between create and write, an older version): taken
  // over after the create grace, without --standby too.
  await writeFile(path, '');
  const old = new Date(Date.now() - 5_000);
  await utimes(path, old, old);
  const again = await acquireKeeperLock(path);
  await again.release();
});

test('metrics: per-keeper registry; the expiry countdown is computed at scrape time; removed sources disappear', async () => {
  const { KeeperMetrics } = await import('../../../src/keeper/metrics.js');
  let now = Date.parse('2030-01-01T00:00:00Z');
  const m = new KeeperMetrics(() => now);
  const other = new KeeperMetrics(() => now);
  m.setSource('hub', 'ok', '2030-01-01T00:10:00.000Z', 0);
  m.recordRefresh({ source: 'hub', outcome: 'refreshed', durationMs: 12 });
  m.recordProbe('hub', 'unreachable', 'oauth', 250);
  assert.match(await m.render(), /latchkey_source_expiry_seconds\{source="hub"\} 600/);
  now += 60_000;
  const text = await m.render();
  assert.match(text, /latchkey_source_expiry_seconds\{source="hub"\} 540/);
  assert.match(text, /latchkey_source_up\{source="hub"\} 1/);
  assert.match(text, /latchkey_refreshes_total\{source="hub",outcome="refreshed"\} 1/);
  assert.match(text, /latchkey_probe_failures_total\{source="hub",outcome="unreachable"\} 1/);
  assert.match(text, /latchkey_probe_duration_seconds_bucket\{le="0.25",auth_path="oauth"\} 1/);
  assert.doesNotMatch(await other.render(), /source="hub"/, 'registries are not shared');
  m.retainSources(new Set());
  assert.doesNotMatch(await m.render(), /latchkey_source_up\{source="hub"\}/);
});

test('metrics: gauges written only on change still follow every transition (status series, up, failures, expiry)', async () => {
  const { KeeperMetrics } = await import('../../../src/keeper/metrics.js');
  const now = Date.parse('2030-01-01T00:00:00Z');
  const m = new KeeperMetrics(() => now);
  const series = async (): Promise<string[]> => (await m.render()).split('\n').filter((l) => l.includes('source="hub"') && !l.startsWith('#')).sort();
  m.setSource('hub', 'ok', '2030-01-01T00:10:00.000Z', 0);
  const first = await series();
  m.setSource('hub', 'ok', '2030-01-01T00:10:00.000Z', 0);
  assert.deepEqual(await series(), first, 'an unchanged source exposes the same series');
  m.setSource('hub', 'unreachable', null, 1);
  let text = (await series()).join('\n');
  assert.match(text, /latchkey_source_status\{source="hub",status="ok"\} 0/);
  assert.match(text, /latchkey_source_status\{source="hub",status="unreachable"\} 1/);
  assert.match(text, /latchkey_source_up\{source="hub"\} 0/);
  assert.match(text, /latchkey_source_consecutive_failures\{source="hub"\} 1/);
  assert.doesNotMatch(text, /latchkey_source_expiry_seconds/, 'an unknown expiry has no series');
  m.setSource('hub', 'action_required', null, 2);
  m.setSource('hub', 'expiring', '2030-01-01T00:01:00.000Z', 0);
  text = (await series()).join('\n');
  assert.equal((text.match(/latchkey_source_status\{[^}]*\} 1/g) ?? []).length, 1, 'exactly one status is 1');
  assert.match(text, /latchkey_source_status\{source="hub",status="expiring"\} 1/);
  assert.match(text, /latchkey_source_status\{source="hub",status="action_required"\} 0/);
  assert.match(text, /latchkey_source_up\{source="hub"\} 1/);
  assert.match(text, /latchkey_source_consecutive_failures\{source="hub"\} 0/);
  assert.match(text, /latchkey_source_expiry_seconds\{source="hub"\} 60/);
  m.retainSources(new Set());
  m.setSource('hub', 'ok', null, 0);
  assert.match((await series()).join('\n'), /latchkey_source_status\{source="hub",status="degraded"\} 0/, 'a source that comes back gets every series again');
});

// --- refresh due times and the timeline --------------------------------------------------------

test('refresh due time: at ⅔ of the lifetime plus up to 5 % jitter (never before ⅔), daily without expiry, none without a refresh token', () => {
  const grant = (over: Record<string, unknown> = {}) => ({ grant: { accessToken: 'a', refreshToken: 'r', obtainedAt: 1_000_000, expiresAt: 1_000_000 + 6000, ...over } }) as never;
  assert.equal(refreshDueAt(grant(), 0), 1_004_000, '⅔ of 6 s');
  assert.equal(refreshDueAt(grant(), 1), 1_004_300, '+5 % of the lifetime at most');
  for (let i = 0; i < 200; i++) {
    const at = refreshDueAt(grant(), Math.random())!;
    assert.ok(at >= 1_004_000 && at <= 1_004_300, String(at));
  }
  assert.equal(refreshDueAt(grant({ expiresAt: undefined }), 0), 1_000_000 + DAILY_REFRESH_MS, 'daily when the expiry is unknown');
  assert.equal(refreshDueAt(grant({ expiresAt: 1_000_000 + 3 * DAILY_REFRESH_MS }), 0), 1_000_000 + DAILY_REFRESH_MS, 'a 3-day token is still refreshed daily');
  assert.equal(refreshDueAt(grant({ refreshToken: undefined }), 0), undefined);
  assert.equal(refreshDueAt(grant({ revoked: { at: 1, reason: 'invalid_grant' } }), 0), undefined);
  assert.equal(refreshDueAt(undefined, 0), undefined);
  // The stage agrees: at the jittered due time the grant is due (no "not_due" wake-up).
  const rec = grant();
  assert.equal(refreshAheadReason(rec, refreshDueAt(rec, 0.999)!), 'two_thirds_lifetime');
  assert.equal(refreshRetryDelayMs(undefined, 0), 30_000);
  assert.equal(refreshRetryDelayMs(9000, 0), 3000, 'a third of what is left when that is under 30 s');
  assert.equal(refreshRetryDelayMs(1000, 0), 1000, 'never under 1 s');
});

test('due times: the earliest is found, due entries are taken once in due order, removed sources are dropped', () => {
  const d = new DueTimes();
  d.set('a', 300);
  d.set('b', 100);
  d.set('c', 200);
  d.set('x', undefined);
  assert.equal(d.size, 3);
  assert.equal(d.earliest(), 100);
  assert.deepEqual(d.takeDue(250), [
    { name: 'b', at: 100 },
    { name: 'c', at: 200 },
  ]);
  assert.deepEqual(d.takeDue(250), [], 'taken once');
  assert.equal(d.earliest(), 300);
  d.retain(new Set(['z']));
  assert.equal(d.earliest(), undefined);
});

test('timeline: one entry per probe, 24 h window and count bound, compact on disk, never runs backwards', () => {
  const tl = emptyTimeline();
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  appendTimeline(tl, t0, 'ok', 12.4);
  appendTimeline(tl, t0 + 300_000, 'unreachable', null);
  appendTimeline(tl, t0 + 600_000, 'degraded', 800);
  assert.deepEqual(JSON.parse(JSON.stringify(tl)), { t0: t0 / 1000, dt: [0, 300, 300], s: 'oud', l: [12, -1, 800] });
  assert.deepEqual(recentSamples(tl, 2), [
    { at: '2030-01-01T00:05:00.000Z', status: 'unreachable', latencyMs: null },
    { at: '2030-01-01T00:10:00.000Z', status: 'degraded', latencyMs: 800 },
  ]);
  // 25 h of probes every 5 min: only the last 24 h stay (288 gaps of 5 min = 24 h → 289 probes).
  const day = emptyTimeline();
  for (let i = 0; i <= 300; i++) appendTimeline(day, t0 + i * 300_000, 'ok', 1);
  assert.equal(day.s.length, 289);
  assert.equal(timelineEnd(day) - day.t0, 24 * 3600);
  assert.equal(day.dt[0], 0);
  // A clock stepped back: recorded at the last time seen.
  appendTimeline(day, t0, 'action_required', 1);
  assert.equal(day.toJSON().dt.at(-1), 0);
  assert.equal(timelineEnd(day), (t0 + 300 * 300_000) / 1000);
  // Every second for an hour: bounded by count.
  const fast = emptyTimeline();
  for (let i = 0; i < 3600; i++) appendTimeline(fast, t0 + i * 1000, 'ok', 1);
  assert.equal(fast.s.length, TIMELINE_MAX_SAMPLES);
  assert.equal(timelineEnd(fast), (t0 + 3599_000) / 1000);
  assert.ok(JSON.stringify(day).length < 3000, `a 24 h timeline is ${JSON.stringify(day).length} bytes of JSON`);
});

test('timeline: held in typed arrays (4 bytes a probe each), saved compact and loaded back the same, appendable after loading', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-timeline-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const tl = emptyTimeline();
  for (let i = 0; i < TIMELINE_MAX_SAMPLES + 50; i++) appendTimeline(tl, t0 + i * 20_000, i % 9 === 0 ? 'unreachable' : 'ok', i % 9 === 0 ? null : 40 + i);
  // What a keeper at 10,000 sources holds per source: at most 301 slots of 4 bytes in each array.
  assert.ok(tl.dt.byteLength + tl.l.byteLength <= 8 * (TIMELINE_MAX_SAMPLES + 1), `${tl.dt.byteLength + tl.l.byteLength} bytes`);
  const saved = JSON.parse(JSON.stringify(tl)) as { dt: number[]; l: number[]; s: string };
  assert.equal(saved.dt.length, TIMELINE_MAX_SAMPLES);
  assert.equal(saved.l.length, TIMELINE_MAX_SAMPLES);
  assert.equal(saved.l.at(-1), 40 + TIMELINE_MAX_SAMPLES + 49);
  const path = join(dir, 'keeper-state.json');
  await saveKeeperState(path, { version: 1, savedAt: new Date(t0).toISOString(), cycles: 1, sources: { a: { ...emptySourceState(), status: 'ok', timeline: tl } }, activity: emptyActivity() });
  // On disk: varints in base64 (2 to 4 bytes a probe), one source per line.
  const text = await readFile(path, 'utf8');
  const onDisk = JSON.parse(text) as { sources: { a: { timeline: { t0: number; dt: string; s: string; l: string } } } };
  assert.equal(onDisk.sources.a.timeline.s, saved.s);
  assert.equal(typeof onDisk.sources.a.timeline.dt, 'string');
  assert.ok(onDisk.sources.a.timeline.dt.length + onDisk.sources.a.timeline.l.length < 4 * TIMELINE_MAX_SAMPLES * 1.4, `${text.length} bytes`);
  assert.equal(text.split('\n').length, 4, 'head, the one source, the end, and the final newline');
  const loaded = await loadKeeperState(path, t0 + 400 * 20_000);
  const back = loaded.state.sources.a!.timeline;
  assert.deepEqual(JSON.parse(JSON.stringify(back)), saved);
  appendTimeline(back, t0 + 400 * 20_000, 'degraded', 7);
  assert.equal(back.s.length, TIMELINE_MAX_SAMPLES);
  assert.deepEqual(recentSamples(back, 1), [{ at: new Date(t0 + 400 * 20_000).toISOString(), status: 'degraded', latencyMs: 7 }]);
});

test('state file, one source per line: read line by line; cut short it is corrupt (moved aside), a bad timeline is dropped, a hand-reformatted file still loads', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'keeper-state.json');
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const sources: Record<string, SourceKeeperState> = {};
  for (const name of ['a', 'b', 'c']) {
    let s = emptySourceState();
    for (let i = 0; i < 5; i++) s = applyVerdict(name, s, { ...verdict(i === 4 ? 'unreachable' : 'ok'), at: new Date(t0 + i * 60_000).toISOString(), latencyMs: i === 4 ? null : 40 + i }, 16).next;
    sources[name] = s;
  }
  const state = { version: 1 as const, savedAt: new Date(t0).toISOString(), cycles: 5, sources, activity: emptyActivity() };
  await saveKeeperState(path, state);
  const text = await readFile(path, 'utf8');
  const lines = text.split('\n');
  assert.equal(lines.length, 6, 'head, three sources, the end, the final newline');
  assert.ok(lines[0]!.startsWith('{"version":1,') && lines[0]!.endsWith(',"sources":{'), lines[0]);
  const back = await loadKeeperState(path);
  assert.equal(back.kind, 'loaded');
  assert.deepEqual(JSON.parse(JSON.stringify(back.state)), JSON.parse(JSON.stringify(state)));
  // Reformatted by hand (pretty-printed): not the line layout, parsed whole, same state.
  await writeFile(path, JSON.stringify(JSON.parse(text), null, 2));
  const pretty = await loadKeeperState(path);
  assert.equal(pretty.kind, 'loaded');
  assert.deepEqual(JSON.parse(JSON.stringify(pretty.state)), JSON.parse(JSON.stringify(state)));
  // A timeline whose varints do not decode to its letters is dropped; the source loads.
  await writeFile(path, text.replace(/"dt":"[^"]*"/, '"dt":"@@"'));
  const badTimeline = await loadKeeperState(path);
  assert.equal(badTimeline.kind, 'loaded');
  assert.equal(badTimeline.state.sources.a?.timeline.s, '');
  assert.equal(badTimeline.state.sources.b?.timeline.s, 'oooou');
  // Cut short (a dying disk): corrupt, moved aside, never read as a smaller state.
  await writeFile(path, lines.slice(0, 3).join('\n'));
  const cut = await loadKeeperState(path, t0);
  assert.equal(cut.kind, 'corrupt');
  assert.equal(Object.keys(cut.state.sources).length, 0);
  assert.ok((await readdir(dir)).some((f) => f.startsWith('keeper-state.json.corrupt-')));
});

test('activity: probes and refreshes counted per hour for 24 h; the last 20 events kept', () => {
  const a = emptyActivity();
  const t0 = Date.parse('2030-01-01T00:10:00Z');
  countActivity(a, t0, { probes: 2 });
  countActivity(a, t0 + 60_000, { refreshes: 1, refreshFailures: 1 });
  assert.deepEqual(a.hours, [{ hour: Date.parse('2030-01-01T00:00:00Z') / 1000, probes: 2, refreshes: 1, refreshFailures: 1 }]);
  for (let h = 1; h <= 30; h++) countActivity(a, t0 + h * 3_600_000, { probes: 1 });
  assert.equal(a.hours.length, 24);
  assert.equal(a.hours[0]?.hour, Date.parse('2030-01-01T07:00:00Z') / 1000, 'the hour of the last count and the 23 before it');
  for (let i = 0; i < 25; i++) noteActivity(a, { at: String(i), kind: 'cycle', text: `cycle ${i}`, ok: true });
  assert.equal(a.recent.length, 20);
  assert.equal(a.recent[0]?.text, 'cycle 5');
});

test('recent history (health.json): the last probes as of the report, built when read and not kept', () => {
  const tl = emptyTimeline();
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  for (let i = 0; i < TIMELINE_MAX_SAMPLES + 40; i++) appendTimeline(tl, t0 + i * 60_000, i % 7 === 0 ? 'degraded' : 'ok', i % 5 === 0 ? null : i);
  const s: SourceKeeperState = { ...emptySourceState(), status: 'ok', timeline: tl };
  const report = buildHealthReport([['a', s]], t0, 300);
  const asBuilt = recentSamples(tl, HISTORY_LIMIT);
  assert.equal(asBuilt.length, HISTORY_LIMIT);
  assert.deepEqual(report.sources.a!.history, asBuilt);
  assert.notEqual(report.sources.a!.history, report.sources.a!.history, 'a new array at each read: nothing held between cycles');
  // The timeline goes on (the next cycle's probes): the report still says what it said.
  for (let i = 0; i < 5; i++) appendTimeline(tl, t0 + (TIMELINE_MAX_SAMPLES + 40 + i) * 60_000, 'unreachable', null);
  assert.deepEqual(report.sources.a!.history, asBuilt);
  assert.equal(JSON.parse(serializeHealthReport(report).toString('utf8')).sources.a.history.length, HISTORY_LIMIT);
  // Every entry shares one getter, whose inputs are not enumerable: a copy is a plain entry with its history.
  const copy = { ...report.sources.a! };
  assert.deepEqual(copy.history, asBuilt);
  assert.deepEqual(Object.getOwnPropertySymbols(copy), []);
  assert.equal(Object.getOwnPropertyDescriptor(report.sources.a!, 'history')?.get, Object.getOwnPropertyDescriptor(buildHealthReport([['b', s]], t0, 300).sources.b!, 'history')?.get);
  assert.deepEqual(
    samplesUntil(tl, (t0 + 302 * 60_000) / 1000, 3).map((p) => p.at),
    [300, 301, 302].map((i) => new Date(t0 + i * 60_000).toISOString()),
    'as of a time',
  );
});

test('health.json bytes: built source by source, the same bytes as JSON.stringify of the whole report (with and without the keeper part)', () => {
  const t0 = Date.parse('2030-01-01T00:00:00Z');
  const entries: Array<[string, SourceKeeperState]> = [];
  for (let i = 0; i < 300; i++) {
    const v = applyVerdict(`s"${i}\u00e9`, emptySourceState(), { ...verdict(i % 3 === 0 ? 'ok' : 'unreachable'), message: `m ${i} ✓ "quoted"` }, 16).next;
    entries.push([`s"${i}\u00e9`, v]);
  }
  entries.push(['unchecked', emptySourceState()]);
  const keeper = { nextCycleAt: null, config: { file: '/x/config.json', loadedAt: null, error: 'é' }, activity: emptyActivity() };
  for (const report of [buildHealthReport(entries, t0, 300), buildHealthReport(entries, t0, 300, { keeper })]) {
    const expected = `${JSON.stringify(report)}\n`;
    for (const hint of [0, 10, expected.length, expected.length * 4]) {
      const bytes = serializeHealthReport(report, hint);
      assert.equal(bytes.toString('utf8'), expected, `size hint ${hint}`);
      assert.ok(bytes.buffer.byteLength - bytes.length <= bytes.buffer.byteLength / 8, 'little slack kept');
    }
  }
  assert.equal(serializeHealthReport(buildHealthReport([], t0, 300)).toString('utf8'), `${JSON.stringify(buildHealthReport([], t0, 300))}\n`);
});
