/**
 * The burst that breaks every other gateway: 50 parallel requests carrying the same expired
 * access cookie and the same refresh cookie, split across two gateway PROCESSES on one
 * LATCHKEY_HOME, against the real IdP with refresh rotation and reuse detection. Exactly one
 * refresh reaches the IdP, all 50 pass, the grant lives on; a request still carrying the previous
 * generation's cookie afterwards gets the new session without a second refresh.
 *
 * Time is moved with the gateways' injected clock (an offset file), not by sleeping.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Secret } from '../../src/core/secret.js';
import { sealKeyFromSecret, type SealKey } from '../../src/gateway/seal.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { Jar, signIn, startChildGateway, startUpstream, type ChildGateway, type Upstream } from '../helpers/gateway.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let a: ChildGateway;
let b: ChildGateway;
let clockFile: string;
let key: SealKey;

before(async () => {
  idp = await startIdp({ accessTokenTtl: 60, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  clockFile = join(home.home, '..', 'clock-offset');
  await writeFile(clockFile, '0');
  const options = { issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, clockFile };
  // Started at the same instant: both must end up with the one key (link(2), no clobbering).
  [a, b] = await Promise.all([startChildGateway(options), startChildGateway(options)]);
  key = sealKeyFromSecret(new Secret(await readFile(join(home.home, 'gateway.key'), 'utf8')));
});
after(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

function pointer(value: string | undefined, purpose: 'at' | 'rt'): { s: string; g: number } | undefined {
  const raw = value === undefined ? undefined : key.openJson(value, purpose);
  return raw ? { s: String(raw.s), g: Number(raw.g) } : undefined;
}

function newCookie(res: Response, name: string): string | undefined {
  const line = res.headers.getSetCookie().find((l) => l.startsWith(`${name}=`) && !l.includes('Max-Age=0'));
  return line?.slice(name.length + 1).split(';')[0];
}

test('50 parallel requests, same expired access cookie and refresh cookie, 2 processes: 1 IdP refresh, 50 x 200, grant alive; the previous generation later gets the new session', { timeout: 120_000 }, async () => {
  const { jar } = await signIn(a.url, { login: 'burst' });
  const before = pointer(jar.cookies.get('latchkey_rt'), 'rt');
  assert.ok(before, 'the refresh cookie opens with the key under LATCHKEY_HOME');
  assert.equal(before.g, 1);
  // The access token is due (60 s token, refreshed from ~40 s on): move both gateways' clocks 45 s on.
  await writeFile(clockFile, '45000');
  idp.stats.reset();
  const cookie = jar.header();
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      fetch(`${i % 2 ? b.url : a.url}/api/burst/${i}`, { headers: { cookie, accept: 'application/json' }, signal: AbortSignal.timeout(60_000) }).then(async (res) => ({ res, body: await res.text() })),
    ),
  );
  const statuses = results.map((r) => r.res.status);
  assert.deepEqual(statuses, Array(50).fill(200), `statuses: ${statuses.join(',')}; stderr A: ${a.stderr()} B: ${b.stderr()}`);
  assert.equal(idp.stats.refreshRequests, 1, 'exactly one refresh reached the IdP');
  assert.equal(idp.stats.refreshSuccesses, 1);
  assert.equal(idp.stats.revokedGrants, 0, 'no grant revoked by reuse detection');
  // Every response handed out the same new generation of the same session; none cleared a cookie.
  const gens = new Set<string>();
  for (const { res } of results) {
    const at = pointer(newCookie(res, 'latchkey_at'), 'at');
    const rt = pointer(newCookie(res, 'latchkey_rt'), 'rt');
    assert.ok(at && rt, 'each response sets the new access and refresh cookies');
    assert.equal(at.s, before.s);
    gens.add(`${at.g}/${rt.g}`);
    assert.ok(!res.headers.getSetCookie().some((l) => l.includes('Max-Age=0') && /latchkey_(at|rt)=/.test(l)), 'no response deletes a session cookie');
  }
  assert.deepEqual([...gens], ['2/2']);

  // 10 s later, a request still carrying generation 1 (a tab that missed the Set-Cookie) gets generation 2, and no refresh.
  await writeFile(clockFile, '55000');
  for (const gw of [a, b]) {
    const res = await fetch(`${gw.url}/api/late`, { headers: { cookie, accept: 'application/json' } });
    assert.equal(res.status, 200);
    assert.equal(pointer(newCookie(res, 'latchkey_rt'), 'rt')?.g, 2);
  }
  assert.equal(idp.stats.refreshRequests, 1);

  // The new generation works on both, without a refresh.
  const next = new Jar();
  next.store(results[0]?.res as Response);
  for (const gw of [a, b]) {
    const res = await fetch(`${gw.url}/api/after`, { headers: { cookie: next.header() } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.getSetCookie().length, 0);
  }
  assert.equal(idp.stats.refreshRequests, 1);

  // The grant is alive at the IdP: the next refresh (clock moved again) succeeds.
  await writeFile(clockFile, '95000');
  const again = await fetch(`${b.url}/api/again`, { headers: { cookie: next.header() } });
  assert.equal(again.status, 200);
  assert.equal(idp.stats.refreshSuccesses, 2);
  assert.equal(idp.stats.revokedGrants, 0);
  assert.equal(pointer(newCookie(again, 'latchkey_rt'), 'rt')?.g, 3);
});

test('sessions are shared: signed in on one process, used on the other; a logout on one ends it on both', async () => {
  await writeFile(clockFile, '0');
  const { jar } = await signIn(b.url, { login: 'shared' });
  assert.equal((await fetch(`${a.url}/api/shared`, { headers: { cookie: jar.header() } })).status, 200);
  const out = await fetch(`${a.url}/auth/logout`, { method: 'POST', headers: { cookie: jar.header(), 'x-latchkey-csrf': '1' } });
  assert.equal(out.status, 200);
  for (const gw of [a, b]) assert.equal((await fetch(`${gw.url}/api/shared`, { headers: { cookie: jar.header(), accept: 'application/json' } })).status, 401);
});
