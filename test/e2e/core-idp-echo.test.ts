import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { idpHome } from '../helpers/lk.js';
import { makeHome } from '../helpers/home.js';
import { send, startLoopbackApi } from '../helpers/loopback-api.js';
import { openLatchkey } from '../../src/latchkey.js';
import { logout } from '../../src/login/logout.js';
import type { EngineEvent } from '../../src/engine/fresh-token.js';
import type { LatchkeyError } from '../../src/core/errors.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});

// A fault the real IdP cannot produce: an error_description that quotes the refresh token.
for (const [status, error] of [
  [400, 'invalid_grant'],
  [400, 'invalid_request'],
] as const) {
  test(`an IdP that quotes the refresh token in error_description (${error}) never gets it into a message or the store`, async (t) => {
    const h = await idpHome(idp);
    t.after(() => h.cleanup());
    const grant = await idp.mintGrant();
    const events: EngineEvent[] = [];
    const lk = await h.open({ onRefresh: (e) => events.push(e) });
    await lk.installGrant('idp', grant);
    h.clock.advance(29_000);
    idp.setFault({ kind: 'json', status, body: { error, error_description: `refresh token ${grant.refresh_token} is not valid for this client` } });
    t.after(() => idp.setFault(null));
    let message = '';
    try {
      message = `token ${await lk.token('idp')}`;
    } catch (err) {
      message = `${(err as LatchkeyError).message} ${String((err as LatchkeyError).fix)}`;
    }
    assert.ok(!message.includes(grant.refresh_token), message);
    for (const e of events) assert.ok(!String(e.message).includes(grant.refresh_token), `event: ${e.message}`);
    assert.ok(events.some((e) => String(e.message).includes('[redacted]')), 'the description is kept, with the token redacted');
    const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
    assert.ok(!doc.lastFailure.message.includes(grant.refresh_token), doc.lastFailure.message);
    assert.ok(!JSON.stringify(await lk.status()).includes(grant.refresh_token));
  });
}

/** Every `n`-character piece of `secret` that occurs in `text`. */
function piecesIn(text: string, secret: string, n = 8): string[] {
  const found: string[] = [];
  for (let i = 0; i + n <= secret.length; i++) if (text.includes(secret.slice(i, i + n))) found.push(secret.slice(i, i + n));
  return found;
}

// The description used to be cut to 200 characters before the refresh token was redacted: a
// token straddling the cut left its prefix (up to 42 characters) in every message.
test('a refresh token straddling the 200-character cut of error_description leaves no piece of itself anywhere', async (t) => {
  for (const offset of [170, 185, 193, 199, 200]) {
    const h = await idpHome(idp);
    t.after(() => h.cleanup());
    const grant = await idp.mintGrant();
    const events: EngineEvent[] = [];
    const lk = await h.open({ onRefresh: (e) => events.push(e) });
    t.after(() => lk.close());
    await lk.installGrant('idp', grant);
    h.clock.advance(29_000);
    idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_request', error_description: `${'d'.repeat(offset - 8)}refused:${grant.refresh_token} (and more text after it)` } });
    t.after(() => idp.setFault(null));
    let message = '';
    try {
      await lk.token('idp');
    } catch (err) {
      message = (err as LatchkeyError).message;
    }
    idp.setFault(null);
    const texts = [message, ...events.map((e) => String(e.message)), JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.lastFailure?.message ?? '', JSON.stringify(await lk.status())];
    for (const text of texts) assert.deepEqual(piecesIn(text, grant.refresh_token), [], `offset ${offset}: ${text}`);
    assert.ok(events.some((e) => String(e.message).includes('refused:')), `offset ${offset}: the description is still quoted`);
  }
});

// Only the request's refresh token and client secret used to be redacted.
test('an access token and terminal escapes in error_description never reach a message, the store or status', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const events: EngineEvent[] = [];
  const lk = await h.open({ onRefresh: (e) => events.push(e) });
  t.after(() => lk.close());
  await lk.installGrant('idp', grant);
  h.clock.advance(29_000);
  idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_request', error_description: `\x1b]8;;https://x/\x07token ${grant.access_token}\x1b]8;;\x07 is \x1b[31mbad\x1b[0m\x1b]0;pwned\x07` } });
  t.after(() => idp.setFault(null));
  await lk.token('idp').catch(() => undefined);
  idp.setFault(null);
  const status = JSON.stringify(await lk.status());
  const stored = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.lastFailure.message as string;
  for (const text of [...events.map((e) => String(e.message)), stored, status]) {
    assert.deepEqual(piecesIn(text, grant.access_token), [], text);
    assert.doesNotMatch(text, /\x1b|\x07|\\u001b|\\u0007|pwned/, text); // eslint-disable-line no-control-regex
  }
  assert.match(stored, /token \[redacted\] is bad/);
});

// Revocation errors were not redacted at all: `latchkey logout` printed the whole refresh token.
test('a revocation endpoint that echoes the tokens (and escapes) never gets them into logout\'s error or warnings', async (t) => {
  let echo = '';
  const revocation = await startLoopbackApi((_req, res) => send(res, 400, JSON.stringify({ error: 'invalid_request', error_description: echo })));
  t.after(() => revocation.close());
  const h = await makeHome({ version: 1, sources: { idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: revocation.url('/revoke'), clientId: 'public-client' } } } });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: {} });
  t.after(() => lk.close());
  const grant = await idp.mintGrant();
  await lk.installGrant('idp', grant);
  echo = `\x1b[31m${'r'.repeat(180)} ${grant.refresh_token} and ${grant.access_token}\x1b]0;pwned\x07`;
  const err = await logout(lk, 'idp').then(
    () => assert.fail('the revocation failed: logout must fail'),
    (e: LatchkeyError) => e,
  );
  const forced = await logout(lk, 'idp', { force: true });
  for (const text of [err.message, String(err.fix), ...forced.warnings]) {
    for (const secret of [grant.refresh_token, grant.access_token]) assert.deepEqual(piecesIn(text, secret), [], text);
    assert.doesNotMatch(text, /\x1b|\x07|pwned/, text); // eslint-disable-line no-control-regex
  }
  assert.match(err.message, /invalid_request: r{20}/, 'the endpoint\'s text is still quoted');
  assert.equal(forced.removed, true);
});
