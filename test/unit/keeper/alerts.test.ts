import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { AlertDispatcher, kumaStatus, signBody } from '../../../src/keeper/alerts.js';
import { jsonLineLog } from '../../../src/keeper/log.js';
import type { StateChange } from '../../../src/keeper/state.js';
import { Secret } from '../../../src/core/secret.js';
import { send, startLoopbackApi, type RecordedRequest } from '../../helpers/loopback-api.js';

const clock = { now: () => Date.now() };

function change(source: string, from: StateChange['from'], to: StateChange['to']): StateChange {
  return {
    source,
    from,
    to,
    operatorAction: to === 'action_required' ? 'reauthorize' : null,
    fix: to === 'action_required' ? `latchkey login ${source}` : null,
    message: `${source} is ${to}`,
    authPath: 'oauth',
    at: new Date().toISOString(),
  };
}

function captureLog(): { log: ReturnType<typeof jsonLineLog>; lines: () => Array<Record<string, unknown>>; text: () => string } {
  let text = '';
  const log = jsonLineLog({ write: (c: string) => (text += c) }, clock);
  return { log, lines: () => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>), text: () => text };
}

test('webhook: signed with HMAC-SHA256, retried after 500 with the same delivery id, delivered once per change', async (t) => {
  let calls = 0;
  const api = await startLoopbackApi((_req, res) => {
    calls++;
    if (calls <= 2) send(res, 500, '{"error":"down"}');
    else send(res, 204);
  });
  t.after(() => api.close());
  const secret = 'whsec-0123456789abcdef';
  const { log, lines, text } = captureLog();
  const d = new AlertDispatcher({
    settings: { webhook: { url: api.url('/hook'), secret: new Secret(secret) }, retryBaseMs: 5, attempts: 5, timeoutMs: 2000 },
    fetch: (i, init) => fetch(i, init),
    log,
    clock,
  });
  d.notify([change('hub', 'ok', 'action_required'), change('gh', 'unreachable', 'ok')]);
  await d.idle();
  const reqs = api.requestsTo('/hook');
  const ids = new Map<string, RecordedRequest[]>();
  for (const r of reqs) {
    const expected = `sha256=${createHmac('sha256', secret).update(r.body).digest('hex')}`;
    assert.equal(r.headers['x-latchkey-signature'], expected, 'valid HMAC of the exact body');
    const id = String(r.headers['x-latchkey-delivery']);
    assert.equal(JSON.parse(r.body).id, id);
    ids.set(id, [...(ids.get(id) ?? []), r]);
  }
  assert.equal(ids.size, 2, 'one alert per change (retries repeat the same id)');
  assert.equal(reqs.length, 4, 'two failed attempts were retried');
  const bodies = [...ids.values()].map((rs) => JSON.parse(rs[0]!.body) as Record<string, unknown>);
  const hub = bodies.find((b) => b.source === 'hub');
  assert.deepEqual([hub?.from, hub?.to, hub?.fix, hub?.recovered], ['ok', 'action_required', 'latchkey login hub', false]);
  assert.equal(bodies.find((b) => b.source === 'gh')?.recovered, true);
  assert.equal(d.state.delivered, 2);
  assert.equal(d.state.failed, 0);
  // One log line per change, with the fields operators grep for; the secret never appears.
  const changes = lines().filter((l) => l.event === 'state_change');
  assert.equal(changes.length, 2);
  for (const k of ['time', 'source', 'from', 'to', 'action', 'message']) assert.ok(k in changes.find((c) => c.source === 'hub')!, k);
  assert.ok(!text().includes(secret));
  assert.equal(signBody('x', new Secret('k')), `sha256=${createHmac('sha256', 'k').update('x').digest('hex')}`);
});

test('a hanging webhook never blocks: notify returns at once, attempts are bounded, the failure is logged', async (t) => {
  const api = await startLoopbackApi(() => undefined); // never answers
  t.after(() => api.close());
  const { log, lines } = captureLog();
  const d = new AlertDispatcher({
    settings: { webhook: { url: api.url('/hook?token=do-not-log') }, retryBaseMs: 5, attempts: 3, timeoutMs: 150 },
    fetch: (i, init) => fetch(i, init),
    log,
    clock,
  });
  const started = performance.now();
  d.notify([change('hub', 'ok', 'unreachable')]);
  assert.ok(performance.now() - started < 50, 'notify does not wait for the network');
  await d.idle();
  assert.equal(api.requestsTo('/hook').length, 3);
  assert.equal(d.state.failed, 1);
  const failed = lines().find((l) => l.event === 'alert_failed');
  assert.match(String(failed?.message), /gave up after 3 attempt/);
  assert.ok(!JSON.stringify(lines()).includes('do-not-log'), 'the webhook URL (it may hold a token) is not logged');
});

test('a 4xx webhook answer is not retried; shutdown abandons pending deliveries after the grace period', async (t) => {
  const api = await startLoopbackApi((_req, res) => send(res, 400));
  t.after(() => api.close());
  const { log } = captureLog();
  const d = new AlertDispatcher({ settings: { webhook: { url: api.url('/h') }, retryBaseMs: 5 }, fetch: (i, init) => fetch(i, init), log, clock });
  d.notify([change('a', null, 'unreachable')]);
  await d.idle();
  assert.equal(api.requests.length, 1);
  const hang = await startLoopbackApi(() => undefined);
  t.after(() => hang.close());
  const h = new AlertDispatcher({ settings: { webhook: { url: hang.url('/h') }, timeoutMs: 60_000 }, fetch: (i, init) => fetch(i, init), log, clock });
  h.notify([change('a', null, 'unreachable'), change('b', null, 'unreachable')]);
  const started = performance.now();
  await h.close(200);
  assert.ok(performance.now() - started < 2000, 'close is bounded');
});

test('Uptime Kuma: one push per call with status and msg; down while something needs action or is unreachable', async (t) => {
  const api = await startLoopbackApi((_req, res) => send(res, 200, '{"ok":true}'));
  t.after(() => api.close());
  const { log } = captureLog();
  const d = new AlertDispatcher({
    settings: { uptimeKumaPushUrl: new Secret(api.url('/api/push/abc?status=up&msg=OK&ping=')) },
    fetch: (i, init) => fetch(i, init),
    log,
    clock,
  });
  d.pushUptimeKuma(kumaStatus(['ok', 'action_required']), 'hub: ok -> action_required');
  await d.idle();
  const [r] = api.requestsTo('/api/push/abc');
  const q = new URL(r!.path, 'http://x').searchParams;
  assert.equal(q.get('status'), 'down');
  assert.equal(q.get('msg'), 'hub: ok -> action_required');
  assert.equal(kumaStatus(['ok', 'expiring', 'degraded']), 'up');
  assert.equal(kumaStatus(['unreachable']), 'down');
});

test('recovered: back to a working credential (ok or expiring) from a failure; not from a first verdict or between healthy states', async () => {
  const { alertPayload } = await import('../../../src/keeper/alerts.js');
  assert.equal(alertPayload(change('a', 'action_required', 'expiring')).recovered, true);
  assert.equal(alertPayload(change('a', 'unreachable', 'ok')).recovered, true);
  assert.equal(alertPayload(change('a', 'expiring', 'ok')).recovered, false);
  assert.equal(alertPayload(change('a', 'ok', 'expiring')).recovered, false);
  assert.equal(alertPayload(change('a', null, 'ok')).recovered, false);
  assert.equal(alertPayload(change('a', 'ok', 'degraded')).recovered, false);
});
