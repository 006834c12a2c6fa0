/**
 * signOut: the gateway is asked to end the session (CSRF header, same Origin, the cookies),
 * and whatever it answers, no session cookie is left in the client's store, other cookies are.
 * Against a loopback server answering what a gateway (or something in its place) might; the real
 * gateway is in test/e2e/remote-client.test.ts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { JarCookie } from '../../../src/remote/cookie-jar.js';
import { signOut } from '../../../src/remote/sign-out.js';
import { closedPort } from '../../helpers/closed-port.js';
import { FakeElectronCookies } from '../../helpers/electron-cookies.js';
import { jsonAnswer, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
const json = jsonAnswer;

const DELETIONS = ['latchkey_at', 'latchkey_rt', '__Host-latchkey_at', '__Host-latchkey_rt'].map((n) => `${n}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${n.startsWith('__') ? '; Secure' : ''}`);

function jar(): Map<string, JarCookie> {
  return new Map([
    ['latchkey_at', { name: 'latchkey_at', value: 'A', path: '/', expiresAt: Date.now() + 60_000 }],
    ['latchkey_rt', { name: 'latchkey_rt', value: 'R', path: '/', expiresAt: Date.now() + 3_600_000 }],
    ['theme', { name: 'theme', value: 'dark', path: '/' }],
  ]);
}

before(async () => {
  api = await startLoopbackApi((_req, res) => res.end());
});

after(() => api.close());

describe('signOut', () => {
  test('ended: POST <base>auth/logout with CSRF header, Origin and cookies; the gateway\'s deletions applied; the end-session URL passed on', async () => {
    api.requests.length = 0;
    api.handler = json(200, { loggedOut: true, endSessionUrl: 'https://idp.example/session/end?id_token_hint=x' }, { 'set-cookie': DELETIONS });
    const j = jar();
    const out = await signOut(`${api.origin}/dash`, j);
    assert.deepEqual(out, { gateway: 'ended', httpStatus: 200, endSessionUrl: 'https://idp.example/session/end?id_token_hint=x', removed: ['latchkey_at', 'latchkey_rt'] });
    assert.deepEqual([...j.keys()], ['theme']);
    assert.equal(api.requests[0]?.method, 'POST');
    assert.equal(api.requests[0]?.path, '/dash/auth/logout');
    assert.equal(api.requests[0]?.headers['x-latchkey-csrf'], '1');
    assert.equal(api.requests[0]?.headers.origin, api.origin);
    assert.equal(api.requests[0]?.headers.cookie, 'latchkey_at=A; latchkey_rt=R; theme=dark');
  });

  test('an end-session URL that is not http(s) is dropped', async () => {
    api.handler = json(200, { loggedOut: true, endSessionUrl: 'javascript:alert(1)' });
    const out = await signOut(api.origin, jar());
    assert.equal(out.endSessionUrl, undefined);
    assert.equal(out.gateway, 'ended');
  });

  test('the gateway down: unreachable, and still no session cookie left here', async () => {
    const port = await closedPort();
    const j = jar();
    const out = await signOut(`http://127.0.0.1:${port}/`, j);
    assert.equal(out.gateway, 'unreachable');
    assert.match(out.message ?? '', new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.deepEqual(out.removed.sort(), ['latchkey_at', 'latchkey_rt']);
    assert.deepEqual([...j.keys()], ['theme']);
  });

  test('503 and 404: unreachable / rejected; cookies removed locally all the same', async () => {
    api.handler = json(503, { error: 'temporarily_unavailable' }, { 'retry-after': '5' });
    const a = jar();
    const o503 = await signOut(api.origin, a);
    assert.equal(o503.gateway, 'unreachable');
    assert.equal(o503.httpStatus, 503);
    assert.deepEqual([...a.keys()], ['theme']);
    api.handler = json(404, { error: 'not_found' });
    const b = jar();
    const o404 = await signOut(api.origin, b);
    assert.equal(o404.gateway, 'rejected');
    assert.deepEqual([...b.keys()], ['theme']);
  });

  test('a session the gateway had already ended (401 session_expired) counts as ended', async () => {
    api.handler = json(401, { error: 'session_expired', loginUrl: '/auth/login' });
    const out = await signOut(api.origin, jar());
    assert.equal(out.gateway, 'ended');
  });

  test('no live session cookie: no request, nothing to end; stale session cookies still removed', async () => {
    api.requests.length = 0;
    const j = new Map<string, JarCookie>([['__Host-latchkey_at', { name: '__Host-latchkey_at', value: 'old', path: '/', expiresAt: Date.now() - 1 }], ['theme', { name: 'theme', value: 'dark' }]]);
    const out = await signOut(api.origin, j);
    assert.deepEqual(out, { gateway: 'no_session', removed: ['__Host-latchkey_at'] });
    assert.equal(api.requests.length, 0);
    assert.deepEqual([...j.keys()], ['theme']);
  });

  test('Electron session.cookies: the deletions and the local removal go through remove(url, name)', async () => {
    api.handler = json(200, { loggedOut: true });
    const el = new FakeElectronCookies();
    await el.set({ url: `${api.origin}/`, name: 'latchkey_rt', value: 'R', path: '/', expirationDate: Date.now() / 1000 + 3600 });
    await el.set({ url: `${api.origin}/`, name: 'other', value: 'o', path: '/' });
    const out = await signOut(api.origin, el);
    assert.equal(out.gateway, 'ended');
    assert.deepEqual((await el.get({ url: `${api.origin}/` })).map((c) => c.name), ['other']);
  });
});
