/**
 * `latchkey login --device` (RFC 8628) end to end against oidc-provider's real device flow:
 * the verification pages are driven over HTTP the way a person's phone would.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { main } from '../../src/cli/main.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { openLatchkey } from '../../src/latchkey.js';
import { loginWithDeviceCode, type DevicePrompt } from '../../src/login/device-authorization.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { TestClock } from '../helpers/lk.js';
import { assertNoSecrets, captureStream, driveIdpPages, recordingFetch, storeBytes } from './login-support.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

async function deviceHome(oauth: Record<string, unknown> = {}): Promise<TempHome> {
  return makeHome({ version: 1, sources: { tv: { oauth: { issuer: idp.issuer, clientId: 'public-client', scope: 'openid offline_access api', ...oauth } } } });
}

/** A person approving the device: opens the verification page, confirms the code, signs in. */
async function approve(prompt: DevicePrompt, login = 'alice'): Promise<string> {
  const start = prompt.verificationUriComplete ?? prompt.verificationUri;
  const { html } = await driveIdpPages(start, { donePattern: /id="success"/, login });
  assert.ok(html);
  return html;
}

/** Records the waits the poller asks for and shortens them (the interval itself is asserted). */
function recordedWait(clock?: TestClock): { waits: number[]; wait: (ms: number) => Promise<void> } {
  const waits: number[] = [];
  return {
    waits,
    wait: async (ms) => {
      waits.push(ms);
      clock?.advance(ms);
      await sleep(clock ? 5 : 30);
    },
  };
}

test('device flow end to end: user code shown, approved on the verification pages, grant stored, token and refresh work', { timeout: 60_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  const rec = recordingFetch();
  const lk = await openLatchkey({ home: h.home, env: {}, fetch: rec.fetch });
  const { waits, wait } = recordedWait();
  let prompt: DevicePrompt | undefined;
  let approved: Promise<string> | undefined;
  const result = await loginWithDeviceCode(lk, 'tv', {
    wait,
    onPrompt: (p) => {
      prompt = p;
      approved = approve(p);
    },
  });
  assert.ok(prompt && approved);
  assert.match(prompt.userCode, /^[A-Z]{4}-[A-Z]{4}$/);
  assert.equal(prompt.verificationUri, idp.deviceVerificationUri);
  assert.equal(prompt.verificationUriComplete, `${idp.deviceVerificationUri}?user_code=${prompt.userCode}`);
  assert.equal(prompt.interval, 5, 'RFC 8628 default interval when the server gives none');
  assert.ok(waits.length >= 1 && waits.every((w) => w === 5_000), `polls at the server's interval: ${waits.join(', ')}`);
  assert.match(await approved, /signed in/);
  assert.equal(result.flow, 'device_code');
  assert.equal(result.hasRefreshToken, true);
  assert.equal(result.issuer, idp.issuer);
  const token = await lk.token('tv');
  const res = await fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const fresh = await lk.engine.refreshNow('tv');
  assert.notEqual(fresh, token);
  assertNoSecrets(rec.secrets, JSON.stringify(result), JSON.stringify(prompt));
  await lk.close();
});

test('slow_down adds 5 s to this and every later interval', { timeout: 60_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  t.after(() => idp.setFault(null));
  const lk = await openLatchkey({ home: h.home, env: {} });
  const { waits, wait } = recordedWait();
  const pending: string[] = [];
  let approved: Promise<string> | undefined;
  let prompt: DevicePrompt | undefined;
  idp.setFault({ kind: 'status', status: 400, body: JSON.stringify({ error: 'slow_down' }), times: 2 });
  await loginWithDeviceCode(lk, 'tv', {
    wait: async (ms) => {
      await wait(ms);
      if (waits.length === 3) approved = approve(prompt!);
    },
    onPrompt: (p) => (prompt = p),
    onPoll: (s) => pending.push(`${s.pending}@${s.interval}`),
  });
  await approved;
  assert.deepEqual(waits.slice(0, 3), [5_000, 10_000, 15_000]);
  assert.ok(waits.slice(3).every((w) => w === 15_000), `later polls keep the slower interval: ${waits.join(', ')}`);
  assert.deepEqual(pending.slice(0, 2), ['slow_down@10', 'slow_down@15']);
  await lk.close();
});

test('errors answered with HTTP 200 (GitHub-style): authorization_pending keeps polling, slow_down honours the interval it names', { timeout: 60_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  t.after(() => idp.setFault(null));
  const lk = await openLatchkey({ home: h.home, env: {} });
  const { waits, wait } = recordedWait();
  const pending: string[] = [];
  let approved: Promise<string> | undefined;
  let prompt: DevicePrompt | undefined;
  idp.setFault({ kind: 'status', status: 200, body: JSON.stringify({ error: 'authorization_pending' }), times: 1 });
  const result = await loginWithDeviceCode(lk, 'tv', {
    wait: async (ms) => {
      await wait(ms);
      // Second poll: GitHub's slow_down, with the interval it wants in the body.
      if (waits.length === 2) idp.setFault({ kind: 'status', status: 200, body: JSON.stringify({ error: 'slow_down', interval: 17 }), times: 1 });
      if (waits.length === 3) approved = approve(prompt!);
    },
    onPrompt: (p) => (prompt = p),
    onPoll: (s) => pending.push(`${s.pending}@${s.interval}`),
  });
  await approved;
  assert.equal(result.hasRefreshToken, true);
  assert.deepEqual(pending.slice(0, 2), ['authorization_pending@5', 'slow_down@17']);
  assert.deepEqual(waits.slice(0, 3), [5_000, 5_000, 17_000]);
  await lk.close();
});

test('access_denied answered with HTTP 200: the login stops with the reason (not "not a valid token response")', { timeout: 30_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  t.after(() => idp.setFault(null));
  const lk = await openLatchkey({ home: h.home, env: {} });
  const { wait } = recordedWait();
  idp.setFault({ kind: 'status', status: 200, body: JSON.stringify({ error: 'access_denied' }), times: 1 });
  const err = await loginWithDeviceCode(lk, 'tv', { wait }).catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.match(err.message, /the sign-in was denied on the verification page \(access_denied\)/);
  await lk.close();
});

for (const [error, message] of [
  ['access_denied', /the sign-in was denied on the verification page \(access_denied\)/],
  ['expired_token', /the device code expired before the sign-in was approved \(expired_token\)/],
] as const) {
  test(`device flow: ${error} stops polling with a clear message; an existing grant is untouched`, { timeout: 30_000 }, async (t) => {
    const h = await deviceHome();
    t.after(() => h.cleanup());
    t.after(() => idp.setFault(null));
    const lk = await openLatchkey({ home: h.home, env: {} });
    const existing = await idp.mintGrant();
    await lk.installGrant('tv', existing);
    const before = await storeBytes(h.storePath);
    const { waits, wait } = recordedWait();
    idp.setFault({ kind: 'status', status: 400, body: JSON.stringify({ error }), times: 1 });
    const err = await loginWithDeviceCode(lk, 'tv', { wait }).catch((e: unknown) => e);
    assert.ok(err instanceof LatchkeyError);
    assert.match(err.message, message);
    assert.equal(err.exitCode, 4);
    assert.equal(err.fix, 'latchkey login tv');
    assert.equal(waits.length, 1, 'no poll after the terminal error');
    assert.deepEqual(await storeBytes(h.storePath), before);
    assertNoSecrets([existing.access_token, existing.refresh_token], err.message, err);
    await lk.close();
  });
}

test('device flow is bounded by expires_in: never approved -> expired, nothing stored', { timeout: 30_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const lk = await openLatchkey({ home: h.home, env: {}, clock });
  const { waits, wait } = recordedWait(clock);
  let prompt: DevicePrompt | undefined;
  const err = await loginWithDeviceCode(lk, 'tv', { wait, onPrompt: (p) => (prompt = p) }).catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.match(err.message, /the device code expired before the sign-in was approved \(after 10 min\)/);
  assert.ok(prompt);
  const total = waits.reduce((a, b) => a + b, 0);
  assert.ok(total <= prompt.expiresIn * 1000, 'never waits past the expiry');
  assert.equal(await storeBytes(h.storePath), undefined, 'nothing stored');
  await lk.close();
});

test('device flow: a malformed token response fails the login without storing anything', { timeout: 30_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  t.after(() => idp.setFault(null));
  const lk = await openLatchkey({ home: h.home, env: {} });
  const { wait } = recordedWait();
  idp.setFault({ kind: 'malformed', times: 1 });
  const err = await loginWithDeviceCode(lk, 'tv', { wait }).catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.match(err.message, /polling for the device login failed: the token endpoint's answer is not a valid token response/);
  assert.equal(err.exitCode, 4);
  assert.equal(await storeBytes(h.storePath), undefined);
  await lk.close();
});

test('device flow needs a device authorization endpoint: a config error otherwise', async (t) => {
  const h = await makeHome({ version: 1, sources: { tv: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' } } } });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: {} });
  const err = await loginWithDeviceCode(lk, 'tv').catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.equal(err.code, 'LK_CONFIG_INVALID');
  assert.match(err.message, /no device authorization endpoint \(.*sources\.tv\.oauth\.deviceAuthorizationEndpoint is not set\)/);
  assert.equal(err.exitCode, 1);
  await lk.close();
});

test('CLI: latchkey login --device prints the code and URL on stderr, polls at the real interval, prints one line', { timeout: 60_000 }, async (t) => {
  const h = await deviceHome();
  t.after(() => h.cleanup());
  let approved: Promise<string> | undefined;
  const stderr = captureStream((all) => {
    const m = /open (\S+) on any device and enter the code:\s+([A-Z]{4}-[A-Z]{4})/.exec(all);
    if (m?.[1] && m[2] && !approved) {
      const [, uri, userCode] = m;
      approved = approve({ verificationUri: uri, verificationUriComplete: `${uri}?user_code=${userCode}`, userCode, expiresIn: 600, expiresAt: 0, interval: 5 });
    }
  });
  const stdout = captureStream();
  const started = Date.now();
  const code = await main(['login', 'tv', '--device'], { stdout, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home } });
  assert.equal(code, 0, stderr.text());
  assert.ok(Date.now() - started >= 4_900, 'waited the server interval before polling');
  assert.match(stderr.text(), /or open http:\/\/127\.0\.0\.1:\d+\/device\?user_code=/);
  assert.match(stderr.text(), /The code expires in 10:00 min\./);
  assert.match(stdout.text(), /^logged in to "tv" \(device code; refresh token: yes; access token expires \S+; scope "[^"]*"\)\n$/);
  await approved;
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: { tv: { grant: { accessToken: string; refreshToken: string } } } };
  assertNoSecrets([doc.sources.tv.grant.accessToken, doc.sources.tv.grant.refreshToken], stdout.text(), stderr.text());
});
