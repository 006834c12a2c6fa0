/**
 * One health vocabulary (src/core/health.ts): the keeper's report, pre-flight's cached answer and
 * `latchkey health` agree on the statuses, the exit code, and when a report is stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exitCodeForStatuses, HEALTH_STATUSES, isHealthStatus, isHealthy, isReportFresh } from '../../../src/core/health.js';
import { parseKeeperReport } from '../../../src/client/keeper-report.js';
import { buildHealthReport, isReportStale, parseHealthReport } from '../../../src/keeper/health-report.js';
import { ExitCode } from '../../../src/core/errors.js';

const T0 = Date.parse('2030-01-01T00:00:00Z');

test('pre-flight and `latchkey health` use the same freshness rule (they said 2 and 2.5 intervals)', () => {
  const report = buildHealthReport([], T0, 60);
  const text = JSON.stringify(report);
  // 2.2 intervals old: stale for both (with 2.5 `latchkey health` showed it as current while pre-flight ignored it).
  for (const ageMs of [0, 60_000, 119_000, 120_000, 132_000, 150_000, 400_000, -59_000, -61_000]) {
    const now = T0 + ageMs;
    const trustedByPreflight = parseKeeperReport(text, now) !== undefined;
    assert.equal(!isReportStale(parseHealthReport(JSON.parse(text), 'health.json'), now), trustedByPreflight, `age ${ageMs} ms`);
    assert.equal(isReportFresh(T0, 60, now), trustedByPreflight, `age ${ageMs} ms`);
  }
  assert.equal(isReportFresh(T0, 60, T0 + 132_000), false);
  assert.equal(isReportFresh(T0, 60, T0 + 120_000), true);
});

test('every status is recognised by both readers; anything else is not a status', () => {
  for (const status of HEALTH_STATUSES) {
    assert.equal(isHealthStatus(status), true);
    const text = JSON.stringify({ generatedAt: T0, intervalSeconds: 60, sources: { a: { status } } });
    assert.equal(parseKeeperReport(text, T0)?.sources.get('a')?.status, status);
    assert.equal(parseHealthReport(JSON.parse(text.replace(String(T0), JSON.stringify(new Date(T0).toISOString()))), 'f').sources.a?.status, status);
  }
  for (const v of ['fine', 'OK', '', null, 3]) assert.equal(isHealthStatus(v), false);
  assert.throws(() => parseHealthReport({ generatedAt: new Date(T0).toISOString(), sources: { a: { status: 'fine' } } }, 'health.json'), /sources\.a\.status/);
});

test('healthy means the credential works; the exit code of a set of statuses is 4 over 3 over 0', () => {
  assert.deepEqual(HEALTH_STATUSES.filter(isHealthy), ['ok', 'expiring']);
  assert.equal(isHealthy(null), false);
  assert.equal(exitCodeForStatuses([]), ExitCode.ok);
  assert.equal(exitCodeForStatuses(['ok', 'expiring']), ExitCode.ok);
  assert.equal(exitCodeForStatuses(['ok', 'degraded']), ExitCode.unreachable);
  assert.equal(exitCodeForStatuses(['unreachable', 'ok']), ExitCode.unreachable);
  assert.equal(exitCodeForStatuses(['unreachable', 'action_required', 'degraded']), ExitCode.actionRequired);
});

test('one envelope and entry rule: what `latchkey health` refuses (naming the field), pre-flight does not trust', () => {
  const at = new Date(T0).toISOString();
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /not a JSON object/],
    ['no generatedAt', { sources: {} }, /"generatedAt"/],
    ['bad generatedAt', { generatedAt: 'soon', sources: {} }, /"generatedAt"/],
    ['sources not an object', { generatedAt: at, sources: [] }, /"sources"/],
  ];
  for (const [what, json, message] of cases) {
    assert.throws(() => parseHealthReport(json, 'health.json'), message, what);
    assert.equal(parseKeeperReport(JSON.stringify(json), T0), undefined, what);
  }
  // A malformed entry: the strict reader names it; the lenient one leaves it out (that source is probed live).
  const oneBad = { generatedAt: at, intervalSeconds: 60, sources: { good: { status: 'ok' }, bad: { status: 'ok', history: 'yesterday' } } };
  assert.throws(() => parseHealthReport(oneBad, 'health.json'), /sources\.bad\.history/);
  assert.deepEqual([...(parseKeeperReport(JSON.stringify(oneBad), T0)?.sources.keys() ?? [])], ['good']);
  // Epoch milliseconds are read by both (the keeper writes ISO 8601).
  const numeric = { generatedAt: T0, intervalSeconds: 60, sources: { a: { status: 'ok' } } };
  assert.equal(parseHealthReport(numeric, 'health.json').generatedAt, at);
  assert.equal(parseKeeperReport(JSON.stringify(numeric), T0)?.generatedAt, T0);
});
