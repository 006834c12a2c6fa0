/**
 * The sign-in rate limit: every `GET /auth/login` stores a login marker for 10 minutes, so an
 * unauthenticated flood must not be able to fill the store. Per client address (behind a trusted
 * proxy: the forwarded one) and for all clients together; a refused start gets 429 with
 * `Retry-After`, stores nothing, sets no cookie, logs once per episode and is counted.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Secret } from '../../src/core/secret.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { FileStore } from '../../src/store/file-store.js';
import type { Keyspace } from '../../src/store/store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { startUpstream, type Upstream } from '../helpers/gateway.js';
import { DelegatingStore } from '../helpers/store.js';

/** Counts the login markers the gateway stores. */
class CountingStore extends DelegatingStore {
  loginMarkers = 0;
  override put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void> {
    if (keyspace === 'tickets' && id.startsWith('login:')) this.loginMarkers++;
    return super.put(keyspace, id, value, ttlMs);
  }
}

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let store: CountingStore;
let gw: RunningGateway;
const logs: Array<{ level: string; event: string; scope?: unknown }> = [];

before(async () => {
  idp = await startIdp({ accessTokenTtl: 600, redirectUris: ['http://127.0.0.1/auth/callback', 'http://gw.example/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  store = new CountingStore(new FileStore({ path: home.storePath }));
  gw = await startGateway({
    issuer: idp.issuer,
    clientId: 'public-client',
    upstream: upstream.url,
    home: home.home,
    store,
    trustedProxies: ['127.0.0.1/32'],
    loginRateLimit: { perClientPerMinute: 6, perClientBurst: 3, allPerMinute: 8 },
    log: (level, event, fields) => void logs.push({ level, event, ...fields }),
  });
});
after(async () => {
  await gw.close();
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

function login(client: string): Promise<Response> {
  return fetch(`${gw.url}/auth/login`, { redirect: 'manual', headers: { 'x-forwarded-for': client, 'x-forwarded-host': 'gw.example' } });
}

test('a client past its burst gets 429 with Retry-After, no cookie and no stored marker; other clients go on; one log line', async () => {
  const before = store.loginMarkers;
  for (let i = 0; i < 3; i++) assert.equal((await login('203.0.113.7')).status, 302, `start ${i + 1} of the burst`);
  assert.equal(store.loginMarkers - before, 3);
  for (let i = 0; i < 3; i++) {
    const refused = await login('203.0.113.7');
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('set-cookie'), null, 'no login cookie');
    const retryAfter = Number(refused.headers.get('retry-after'));
    // 6 a minute: one start every 10 s.
    assert.ok(retryAfter >= 1 && retryAfter <= 10, `Retry-After ${String(retryAfter)}`);
    assert.deepEqual(await refused.json(), { error: 'too_many_logins', message: `too many sign-ins started; try again in ${retryAfter} s` });
  }
  assert.equal(store.loginMarkers - before, 3, 'nothing stored for a refused start');
  // Behind the proxy, what the client put before its address does not make it another client.
  assert.equal((await login('1.2.3.4, 203.0.113.7')).status, 429, 'a forged first hop changes nothing');
  // An IPv6 client is its /64: three addresses of one /64 use its burst, whatever the notation.
  assert.equal((await login('2001:db8:1:2::10')).status, 302);
  assert.equal((await login('2001:db8:1:2:ffff::1')).status, 302);
  assert.equal((await login('2001:0db8:0001:0002:0:0:0:99')).status, 302);
  assert.equal((await login('2001:db8:1:2::7')).status, 429, 'the same /64 shares one bucket');
  const limited = logs.filter((l) => l.event === 'login_rate_limited');
  assert.deepEqual(
    limited.map((l) => [l.level, l.scope]),
    [
      ['warn', 'client'],
      ['warn', 'client'],
    ],
    'one line per client episode (two clients), not one per refused request',
  );
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(metrics, /latchkey_gateway_login_starts_total\{outcome="started"\} 6/);
  assert.match(metrics, /latchkey_gateway_login_starts_total\{outcome="limited_client"\} 5/);
});

test('many clients together are held to the limit for all: 429 for a new client once it is spent', async () => {
  // 6 of the 8 were started by the test above; two more from new clients, then the ninth is refused.
  assert.equal((await login('198.51.100.1')).status, 302);
  assert.equal((await login('198.51.100.2')).status, 302);
  const refused = await login('198.51.100.3');
  assert.equal(refused.status, 429, 'a fresh client, but the limit for all is spent');
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
  assert.ok(logs.some((l) => l.event === 'login_rate_limited' && l.scope === 'all'));
  assert.match(await (await fetch(`${gw.url}/metrics`)).text(), /latchkey_gateway_login_starts_total\{outcome="limited_all"\} 1/);
});
