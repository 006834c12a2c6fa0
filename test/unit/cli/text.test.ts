/**
 * The small pure pieces behind the CLI's messages: which fix a source gets, "did you mean",
 * JSONC, network error phrases, the shared table (order and NO_COLOR-aware colour).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { formatPreflightTable } from '../../../src/cli/preflight-format.js';
import { formatStatusTable } from '../../../src/cli/commands/status.js';
import { colourWanted, renderTable } from '../../../src/cli/terminal-table.js';
import type { ProbeResult } from '../../../src/client/probe-types.js';
import { secretRefProblem } from '../../../src/config/constants.js';
import { hasJsonComments, jsonWithoutComments, UnclosedCommentError } from '../../../src/config/jsonc.js';
import { fixForSource, loginCommandFor, sourceAwareFix } from '../../../src/config/source-fix.js';
import { fixFor } from '../../../src/core/errors.js';
import type { SourceStatus } from '../../../src/latchkey.js';
import { describeNetworkError, hostPortOf } from '../../../src/net/describe-network-error.js';
import { closestName, didYouMean } from '../../../src/text/closest-name.js';

test('fixForSource: login only when it can run; otherwise import, with how to enable login', () => {
  const te = 'https://idp.example/token';
  assert.equal(fixForSource('a', { oauth: { clientId: 'c', tokenEndpoint: te, authorizationEndpoint: 'https://idp.example/auth' } }, 'relogin'), 'latchkey login a');
  assert.equal(fixForSource('a', { oauth: { clientId: 'c', issuer: 'https://idp.example' } }, 'reauthorize'), 'latchkey login a');
  assert.equal(fixForSource('a', { oauth: { clientId: 'c', tokenEndpoint: te, deviceAuthorizationEndpoint: 'https://idp.example/device' } }, 'relogin'), 'latchkey login a --device');
  assert.equal(loginCommandFor('a', { oauth: { clientId: 'c', tokenEndpoint: te } }), undefined);
  assert.equal(
    fixForSource('a', { oauth: { clientId: 'c', tokenEndpoint: te } }, 'relogin'),
    'latchkey import a --grant <file>   (or, to sign in here: latchkey add a --authorization-endpoint <url>, then latchkey login a)',
  );
  assert.equal(fixForSource('p', { token: { secret: 'file:/run/secrets/p' } }, 'replace_token'), 'latchkey secrets set file:/run/secrets/p');
  assert.equal(fixForSource('p', { token: { secret: 'env:P' } }, 'fix_config', '/h/config.json'), 'edit sources.p in /h/config.json, then: latchkey preflight p --live');
  // A method's own fix is kept; the generic one is replaced.
  assert.equal(sourceAwareFix('a', { oauth: { clientId: 'c', tokenEndpoint: te } }, 'relogin', fixFor('a', 'relogin')), fixForSource('a', { oauth: { clientId: 'c', tokenEndpoint: te } }, 'relogin'));
  assert.equal(sourceAwareFix('s', { session: {} }, 'renew_session', 'sign in at https://app.example/login'), 'sign in at https://app.example/login');
  // Every generic fix is a command (it starts with one) or names the file to edit.
  for (const action of ['relogin', 'reauthorize', 'renew_session', 'replace_token', 'check_network', 'fix_config'] as const) {
    assert.match(fixFor('x', action), /latchkey (login|preflight|secrets set) |^edit /, action);
  }
});

test('did you mean: typos, transpositions and prefixes; nothing for a different word', () => {
  assert.equal(closestName('tokn', ['token', 'status']), 'token');
  assert.equal(closestName('preflite', ['preflight', 'fetch']), 'preflight');
  assert.equal(closestName('--budgte', ['--budget', '--json']), '--budget');
  assert.equal(closestName('hubsopt', ['hubspot', 'github']), 'hubspot');
  assert.equal(closestName('stat', ['status', 'init']), 'status');
  assert.equal(closestName('deploy', ['token', 'status', 'fetch']), undefined);
  assert.equal(didYouMean('x', []), '');
});

test('JSONC: comments and BOM blanked outside strings, positions kept; an unclosed comment is named', () => {
  const text = '\ufeff{ // c\n "a": "http://x/*y*/", /* b */ "b": "\\"//" }';
  const plain = jsonWithoutComments(text);
  assert.deepEqual(JSON.parse(plain), { a: 'http://x/*y*/', b: '"//' });
  assert.equal(plain.split('\n').length, 2, 'lines kept');
  assert.equal(plain.length, text.length - 1, 'only the BOM removed; comments become spaces');
  assert.equal(hasJsonComments(text), true);
  assert.equal(hasJsonComments('{"a": "//"}'), false);
  assert.throws(() => jsonWithoutComments('{\n  /* open'), (e: unknown) => e instanceof UnclosedCommentError && /line 2, column 3 is never closed/.test((e as Error).message));
});

test('secret references: a relative or ~ file: path is named as a path, anything else is not echoed', () => {
  assert.equal(secretRefProblem('file:/abs/p'), undefined);
  assert.match(secretRefProblem('file:rel/p')!, /must be absolute .*relative path "rel\/p"/);
  assert.match(secretRefProblem('file:~/p')!, /"~" is not expanded/);
  const leaked = secretRefProblem('ghp_abcdefghijklmnop')!;
  assert.match(leaked, /never the secret itself/);
  assert.ok(!leaked.includes('ghp_abcdefghijklmnop'), 'the value is not echoed');
});

test('network errors name host and port', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  const err = await fetch(`http://127.0.0.1:${port}/x`).then(
    () => assert.fail('connected'),
    (e: unknown) => e,
  );
  assert.equal(describeNetworkError(err), `connection refused by 127.0.0.1:${port} (ECONNREFUSED)`);
  const dns = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND idp.invalid'), { code: 'ENOTFOUND', hostname: 'idp.invalid' }) });
  assert.equal(describeNetworkError(dns, 'https://idp.invalid/token'), 'cannot resolve idp.invalid (ENOTFOUND)');
  const tls = Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }) });
  assert.equal(describeNetworkError(tls, 'https://idp.example/token?secret=x'), 'the TLS certificate of idp.example:443 was not accepted (DEPTH_ZERO_SELF_SIGNED_CERT)');
  assert.equal(hostPortOf('http://h'), 'h:80');
  assert.equal(describeNetworkError(Object.assign(new TypeError('fetch failed'), { cause: new Error('bad port') }), 'http://127.0.0.1:9/'), 'cannot reach 127.0.0.1:9 (bad port)');
});

test('one table: worst first then by name; colour by severity only when wanted (NO_COLOR, TERM=dumb, not a TTY)', () => {
  assert.equal(colourWanted({}, true), true);
  assert.equal(colourWanted({ NO_COLOR: '1' }, true), false);
  assert.equal(colourWanted({ NO_COLOR: '' }, true), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourWanted({ TERM: 'dumb' }, true), false);
  assert.equal(colourWanted({}, false), false);
  const rows = renderTable(['NAME', 'STATUS'], [
    { name: 'b', severity: 4, cells: ['b', 'ok'] },
    { name: 'a', severity: 4, cells: ['a', 'ok'] },
    { name: 'z', severity: 0, cells: ['z', 'action_required'] },
  ], { statusColumn: 1, colour: true });
  assert.deepEqual(rows.map((l) => l.split(' ')[0]), ['NAME', 'z', 'a', 'b']);
  assert.ok(rows[1]!.includes('\x1b[1;31maction_required'), 'bold red for action required');
  const probe = (source: string, status: ProbeResult['status']): ProbeResult => ({ source, status, authPath: 'token', operatorAction: null, fix: null, message: '', latencyMs: 1, expiresAt: null, checkedAt: new Date().toISOString(), from: 'live' });
  const pre = formatPreflightTable({ ok: false, exitCode: 4, from: 'live', results: [probe('a', 'ok'), probe('c', 'unreachable'), probe('b', 'action_required')] });
  assert.deepEqual([...pre.matchAll(/^([abc]) /gm)].map((m) => m[1]), ['b', 'c', 'a']);
  assert.ok(!pre.includes('\x1b['));
  const st = (source: string, operatorAction: SourceStatus['operatorAction']): SourceStatus => ({ source, methods: ['token'], authPath: 'token', state: operatorAction ? 'error' : 'ok', expiresAt: null, lastRefreshAt: null, refreshCount: 0, message: '', operatorAction, fix: null });
  const status = formatStatusTable([st('a', null), st('b', 'replace_token')], Date.now(), { config: '/h/config.json', store: '/h/store.json' });
  assert.deepEqual(status.split('\n').slice(0, 4).map((l) => l.split(/\s+/)[0]), ['config:', 'SOURCE', 'b', 'a']);
});
