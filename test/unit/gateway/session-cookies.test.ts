/**
 * The session cookies a request carries, as the gateway reads them on every request: sealed
 * pointers that open only with this gateway's key and for their own purpose, an access cookie
 * only until its own expiry. An opened value is remembered (no AES-GCM open per request); these
 * tests hold the rules the same for a value seen before as for a new one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SealKey } from '../../../src/gateway/seal.js';
import { SessionCookies } from '../../../src/gateway/session-cookies.js';
import type { RequestCookies } from '../../../src/gateway/cookie-rules.js';
import type { RequestShape } from '../../../src/gateway/request-shape.js';
import type { SessionData } from '../../../src/gateway/session-store.js';

const shape: RequestShape = { https: false, prefix: '', host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080', viaTrustedProxy: false, clientAddress: '127.0.0.1', loopbackHttp: true };
const SID = 'A'.repeat(43);

function session(now: number): SessionData {
  return { gen: 3, version: 1, identity: { sub: 'u' }, accessToken: 'at', refreshToken: 'rt', expiresAt: now + 600_000, obtainedAt: now, createdAt: now, endsAt: now + 3_600_000 } as SessionData;
}

/** The cookie values (`name=value` pairs) that `Set-Cookie` headers hand out. */
function valuesOf(setCookies: string[]): Map<string, string> {
  return new Map(setCookies.map((h) => h.split(';')[0]!.split('=') as [string, string]));
}

function carrying(pairs: Array<[string, string]>): RequestCookies {
  const values = new Map<string, string[]>();
  for (const [name, value] of pairs) values.set(name, [...(values.get(name) ?? []), value]);
  return { values, rejected: 0 };
}

test('session cookies: a value opens for its own purpose only, an access cookie counts until its own expiry, a tampered or foreign value never — on first sight and when seen again', () => {
  let now = Date.UTC(2026, 0, 1);
  const clock = { now: () => now };
  const key = new SealKey(randomBytes(32));
  const cookies = new SessionCookies(key, clock, 120_000);
  const issued = valuesOf(cookies.issue(shape, SID, session(now)));
  const at = issued.get('latchkey_at')!;
  const rt = issued.get('latchkey_rt')!;
  assert.ok(at && rt);

  for (const round of ['first sight', 'seen again']) {
    assert.deepEqual(cookies.pointers(carrying([['latchkey_at', at], ['latchkey_rt', rt]])), [
      { sid: SID, gen: 3, kind: 'at' },
      { sid: SID, gen: 3, kind: 'rt' },
    ], round);
    // Purpose-bound: an access value sent as the refresh cookie (and the reverse) opens as nothing.
    assert.deepEqual(cookies.pointers(carrying([['latchkey_rt', at], ['latchkey_at', rt]])), [], round);
    // One character changed: the tag fails.
    const tampered = `${at.slice(0, -2)}${at.at(-2) === 'A' ? 'B' : 'A'}${at.at(-1)}`;
    assert.deepEqual(cookies.pointers(carrying([['latchkey_at', tampered]])), [], round);
    // Sealed with another gateway's key.
    const foreign = valuesOf(new SessionCookies(new SealKey(randomBytes(32)), clock, 120_000).issue(shape, SID, session(now)));
    assert.deepEqual(cookies.pointers(carrying([['latchkey_at', foreign.get('latchkey_at')!]])), [], round);
  }

  // The access cookie's own expiry is checked on every request, remembered value or not.
  now += 600_000;
  assert.deepEqual(cookies.pointers(carrying([['latchkey_at', at], ['latchkey_rt', rt]])), [{ sid: SID, gen: 3, kind: 'rt' }]);
});
