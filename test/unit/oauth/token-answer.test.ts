import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { classifyTokenAnswer, classifyTransportError, MAX_RETRY_AFTER_MS, TOKEN_ANSWERS, type TokenAnswerClass } from '../../../src/oauth/token-answer.js';
import { encodeOutsideUnreserved } from '../../../src/oauth/client-auth.js';
import { readExpiresIn, MAX_ACCESS_TOKEN_LIFETIME_S } from '../../../src/lifetime.js';
import { addLeadSample, expiresAtOf, leadOf, NO_LEAD_SAMPLES, refreshAheadAt, refreshDueAt } from '../../../src/engine/expiry.js';
import { parseStoreDocument } from '../../../src/store/store-document.js';
import { repoRoot } from '../../helpers/home.js';

const NOW = Date.UTC(2026, 0, 1);
const json = { 'content-type': 'application/json' };
const classify = (status: number, body: string, headers: Record<string, string> = {}): TokenAnswerClass => classifyTokenAnswer(status, new Headers(headers), body, NOW).class;

test('docs/DESIGN.md prints the same table as TOKEN_ANSWERS (every class, its consumption, action and exit code)', () => {
  const doc = readFileSync(join(repoRoot, 'docs', 'DESIGN.md'), 'utf8');
  for (const [cls, row] of Object.entries(TOKEN_ANSWERS)) {
    const line = doc.split('\n').find((l) => l.startsWith(`| \`${cls}\` |`));
    assert.ok(line, `docs/DESIGN.md has no row for ${cls}`);
    const cells = line.split(' | ').map((c) => c.trim());
    const [, , consumed, , , , action, exit] = cells;
    assert.equal(consumed, row.consumed, `${cls}: consumed`);
    assert.equal(action, row.operatorAction ?? '—', `${cls}: action`);
    assert.equal(exit?.replace(/\s*\|$/, ''), String(row.exitCode), `${cls}: exit code`);
  }
});

test('the table never lets a failure that may have consumed the token be anything but fail-open (it is not resent at once)', () => {
  for (const [cls, row] of Object.entries(TOKEN_ANSWERS)) {
    if (row.consumed === 'maybe') assert.equal(row.handling, 'fail_open', cls);
    if (row.handling === 'confirm_then_revoke') assert.equal(row.consumed, 'no', `${cls}: a confirmation resends, so the answer must prove the token unused`);
  }
});

test('HTTP answers are classified by status and RFC 6749 error', () => {
  assert.equal(classify(400, ''), 'refused_without_error');
  assert.equal(classify(400, '<html>Bad Request</html>'), 'refused_without_error');
  assert.equal(classify(400, '{"error":"invalid_grant"}', json), 'invalid_grant');
  assert.equal(classify(200, '{"error":"bad_refresh_token"}', json), 'invalid_grant');
  assert.equal(classify(401, ''), 'invalid_client');
  assert.equal(classify(401, '{"error":"invalid_client"}', json), 'invalid_client');
  for (const e of ['unauthorized_client', 'invalid_scope', 'invalid_request', 'unsupported_grant_type'] as const) assert.equal(classify(400, JSON.stringify({ error: e })), e);
  assert.equal(classify(400, '{"error":"consent_required"}'), 'other_error');
  assert.equal(classify(403, '<html>blocked</html>'), 'http_4xx');
  assert.equal(classify(302, ''), 'redirect');
  assert.equal(classify(429, ''), 'retry_later');
  assert.equal(classify(502, ''), 'server_error');
  assert.equal(classify(200, '<html>'), 'unusable_2xx');
  assert.equal(classify(200, '{"error":"server_error","refresh_token":"r2"}'), 'token', 'a rotation, even with an error: validation then makes it rotation_unusable');
  assert.equal(classify(200, '{"access_token":"a","token_type":"bearer"}'), 'token_without_refresh_token');
  assert.equal(classify(200, '{"access_token":"a","refresh_token":"r2","token_type":"bearer"}'), 'token');
  const a = classifyTokenAnswer(503, new Headers(json), '{"error":"temporarily_unavailable","error_description":"maintenance"}', NOW);
  assert.equal(a.error, 'temporarily_unavailable');
  assert.equal(a.errorDescription, 'maintenance');
});

test('Retry-After: seconds or an HTTP date, capped', () => {
  assert.equal(classifyTokenAnswer(429, new Headers({ 'retry-after': '120' }), '', NOW).retryAfterMs, 120_000);
  assert.equal(classifyTokenAnswer(429, new Headers({ 'retry-after': new Date(NOW + 90_000).toUTCString() }), '', NOW).retryAfterMs, 90_000);
  assert.equal(classifyTokenAnswer(429, new Headers({ 'retry-after': '999999' }), '', NOW).retryAfterMs, MAX_RETRY_AFTER_MS);
  assert.equal(classifyTokenAnswer(429, new Headers({ 'retry-after': 'soon' }), '', NOW).retryAfterMs, undefined);
});

test('a fetch that threw: only failures before a connection carried the request prove it was not sent', () => {
  const fetchFailed = (code: string): Error => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
  assert.equal(classifyTransportError(fetchFailed('ECONNREFUSED')), 'not_sent');
  assert.equal(classifyTransportError(fetchFailed('ENOTFOUND')), 'not_sent');
  assert.equal(classifyTransportError(fetchFailed('UND_ERR_CONNECT_TIMEOUT')), 'not_sent');
  assert.equal(classifyTransportError(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), 'timeout_after_send');
  assert.equal(classifyTransportError(fetchFailed('UND_ERR_SOCKET')), 'reset');
  assert.equal(classifyTransportError(fetchFailed('ECONNRESET')), 'reset');
});

test('Basic credentials: only characters outside RFC 3986 unreserved are encoded', () => {
  assert.equal(encodeOutsideUnreserved('lk-conf.x~y_Z09'), 'lk-conf.x~y_Z09');
  assert.equal(encodeOutsideUnreserved("a+b/c=d%e f!'()*:"), 'a%2Bb%2Fc%3Dd%25e%20f%21%27%28%29%2A%3A');
  assert.equal(encodeOutsideUnreserved('é'), '%C3%A9');
  assert.equal(decodeURIComponent(encodeOutsideUnreserved("x-y:z!'é")), "x-y:z!'é", 'a decoding server gets the original back');
});

test('expires_in: unknown or clamped, with a warning, never a crash', () => {
  assert.deepEqual(readExpiresIn(3600), { seconds: 3600 });
  assert.deepEqual(readExpiresIn('3600'), { seconds: 3600 });
  assert.equal(readExpiresIn(undefined).seconds, undefined);
  for (const bad of [0, -3600, Number.NaN, 'soon', {}, true]) {
    const r = readExpiresIn(bad);
    assert.equal(r.seconds, undefined, String(bad));
    assert.ok(r.warning, String(bad));
  }
  for (const big of [1e12, 1e300, Number.MAX_VALUE]) {
    const r = readExpiresIn(big);
    assert.equal(r.seconds, MAX_ACCESS_TOKEN_LIFETIME_S);
    assert.match(r.warning ?? '', /clamped/);
    assert.doesNotThrow(() => new Date(expiresAtOf(NOW, r.seconds)!).toISOString());
  }
});

test('expiry: the earlier of the JWT exp and the expires_in time', () => {
  const nowS = NOW / 1000;
  assert.equal(expiresAtOf(NOW, 3600, { exp: nowS + 60, iat: nowS }), (nowS + 60) * 1000);
  assert.equal(expiresAtOf(NOW, 60, { exp: nowS + 3600, iat: nowS }), NOW + 59_000);
  // The IdP's clock is an hour behind ours: exp is read relative to iat.
  assert.equal(expiresAtOf(NOW, 3600, { exp: nowS - 3600 + 60, iat: nowS - 3600 }), NOW + 59_000);
  // An exp already past by our clock and no iat: the clocks disagree; ignored.
  assert.equal(expiresAtOf(NOW, 60, { exp: nowS - 10 }), NOW + 59_000);
  assert.equal(expiresAtOf(NOW, undefined, { exp: nowS + 30 }), NOW + 30_000);
  assert.equal(expiresAtOf(NOW, undefined, { exp: 1e300 }), NOW + MAX_ACCESS_TOKEN_LIFETIME_S * 1000);
  assert.equal(expiresAtOf(NOW, undefined), undefined);
});

test('a stored expiresAt beyond the Date range is bounded when the store is read', () => {
  const doc = JSON.stringify({
    format: 'latchkey-store',
    formatVersion: 1,
    sources: { a: { version: 1, grant: { accessToken: 'at', refreshToken: 'rt', obtainedAt: NOW, expiresAt: 1e303, revoked: { at: 1e300, reason: 'x' } } } },
  });
  const g = parseStoreDocument(doc, '/tmp/store.json').get('a')!.grant!;
  assert.equal(g.expiresAt, NOW + MAX_ACCESS_TOKEN_LIFETIME_S * 1000);
  assert.doesNotThrow(() => new Date(g.revoked!.at).toISOString());
});

test('a refresh lead (how long getting ready to send took here) prepares the refresh that much earlier, at most 2 s and never before a third of the lifetime; one slow sample does not move it', () => {
  const oneSecond = { obtainedAt: NOW, expiresAt: NOW + 1_000 }; // due at 667 ms, no window of its own
  assert.equal(refreshAheadAt(oneSecond, undefined, 0), refreshDueAt(oneSecond));
  assert.equal(Math.round(refreshAheadAt(oneSecond, undefined, 100) - NOW), 567);
  assert.equal(Math.round(refreshAheadAt(oneSecond, undefined, 450) - NOW), 333, 'a third of the lifetime at the earliest');
  // An hour's token: prepared the lead before its usual ahead time (180 s before expiry), by 2 s at most.
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: NOW + 3_600_000 }, undefined, 500), NOW + 3_419_500);
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: NOW + 3_600_000 }, undefined, 60_000), NOW + 3_418_000);
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: undefined }, undefined, 500), Number.POSITIVE_INFINITY);
  // The lead is the lower median of the last three samples.
  let samples = NO_LEAD_SAMPLES;
  assert.equal(leadOf(samples), 0);
  for (const ms of [400, 11_000]) samples = addLeadSample(samples, ms);
  assert.equal(leadOf(samples), 400, 'one slow sample does not move it');
  samples = addLeadSample(samples, 450);
  assert.equal(leadOf(samples), 450);
  for (const ms of [11_000, 11_000]) samples = addLeadSample(samples, ms);
  assert.equal(leadOf(samples), 11_000, 'two in a row do');
  assert.equal(samples.length, 3);
  assert.equal(addLeadSample(samples, Number.NaN), samples);
});

test('refresh ahead starts half a skew before the grant is due, never before ⅔ of its lifetime; unknown expiry never refreshes ahead', () => {
  // An hour: the default 120 s skew; due 120 s before expiry, refreshed from 180 s before.
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: NOW + 3_600_000 }), NOW + 3_420_000);
  assert.equal(refreshDueAt({ obtainedAt: NOW, expiresAt: NOW + 3_600_000 }), NOW + 3_480_000);
  // 7.5 minutes: ⅔ of the lifetime (300 s) comes after half a skew before due (270 s).
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: NOW + 450_000 }), NOW + 300_000);
  // 30 s: the skew is a third of the lifetime, so the grant is due at ⅔ already: no ahead window.
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: NOW + 30_000 }), refreshDueAt({ obtainedAt: NOW, expiresAt: NOW + 30_000 }));
  assert.equal(refreshAheadAt({ obtainedAt: NOW, expiresAt: undefined }), Number.POSITIVE_INFINITY);
});
