/**
 * The session method hands out cookies it obtained under the source's lock only once
 * `withLock` resolved (store contract v2): with PostgreSQL the lock's writes commit when it
 * ends, so cookies remembered inside it could be handed to a caller and then never be stored.
 * The store here probes from inside the lock, after the locked work is done and just before it
 * would commit: what does another caller of the same method get at that moment?
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../../src/config/load.js';
import type { SessionConfig } from '../../src/config/schema.js';
import { Latchkey } from '../../src/latchkey.js';
import type { AuthMethod, PreparedAuth } from '../../src/methods/method.js';
import { createSessionMethod } from '../../src/methods/session.js';
import { homePaths } from '../../src/paths.js';
import { FileStore } from '../../src/store/file-store.js';
import type { StoreTx } from '../../src/store/store.js';
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, startSessionApp, type SessionApp } from '../fixtures/session-app.js';
import { makeHome } from '../helpers/home.js';
import { DelegatingStore } from '../helpers/store.js';

let app: SessionApp;
before(async () => {
  app = await startSessionApp();
});
after(async () => {
  await app.close();
});

/** A fresh login's cookies, from the app's Set-Cookie headers. */
async function login(): Promise<Record<string, string>> {
  const res = await fetch(app.loginUrl, { redirect: 'manual' });
  const out: Record<string, string> = {};
  for (const sc of res.headers.getSetCookie()) {
    const [pair] = sc.split(';');
    const eq = pair!.indexOf('=');
    out[pair!.slice(0, eq)] = pair!.slice(eq + 1);
  }
  return out;
}

interface Probe {
  /** Whether another caller's authorize() had an answer before the lock's work was durable. */
  settled: boolean;
  /** The credential it got, if any. */
  credential: string | undefined;
}

/** A file store whose withLock lets `probe` look at the method once the locked work is done, before withLock resolves. */
function probingStore(path: string, probe: () => Promise<Probe>, probes: Probe[]): DelegatingStore {
  return new (class extends DelegatingStore {
    override withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>): Promise<T> {
      return this.inner.withLock(key, async (tx) => {
        const result = await fn(tx);
        probes.push(await probe());
        return result;
      });
    }
  })(new FileStore({ path }));
}

/** What authorize() answers within a few turns of the event loop (a memo answers at once; a load in flight does not). */
async function peek(method: AuthMethod): Promise<Probe> {
  const seen: Probe = { settled: false, credential: undefined };
  void method.authorize().then(
    (p: PreparedAuth) => {
      seen.settled = true;
      seen.credential = p.credential;
    },
    () => undefined,
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return { ...seen };
}

function open(home: Awaited<ReturnType<typeof makeHome>>, session: SessionConfig, env: NodeJS.ProcessEnv, probes: Probe[]): { lk: Latchkey; method: AuthMethod } {
  const config = resolveConfig({ version: 1, sources: { app: { session } } }, home.configPath);
  const late: { method?: AuthMethod } = {};
  const store = probingStore(homePaths(home.home).store, () => peek(late.method!), probes);
  const lk = new Latchkey(config, { paths: homePaths(home.home), env, store });
  late.method = createSessionMethod({ lk, source: lk.source('app') });
  return { lk, method: late.method };
}

test('cookies obtained under the lock (first load through the renewal URL) are handed out only after withLock resolved', async (t) => {
  const home = await makeHome();
  t.after(() => home.cleanup());
  const cookies = await login();
  // Only the session cookie: the load has to ask the renewal URL for the CSRF cookie, under the lock.
  const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}` };
  const probes: Probe[] = [];
  const { lk, method } = open(home, { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES', renewUrl: app.renewUrl }, env, probes);
  app.stats.reset();
  const got = await method.authorize();
  assert.equal(app.stats.renewCalls, 1, 'the load renewed once');
  assert.deepEqual(probes, [{ settled: false, credential: undefined }], 'inside the lock, another caller had no cookies yet');
  assert.ok(got.headers[CSRF_HEADER], 'the CSRF header is set from the renewed cookie');
  assert.equal((await method.authorize()).credential, got.credential, 'then remembered');
  assert.deepEqual(Object.keys((await lk.store.read('app'))?.session?.cookies ?? {}), [CSRF_COOKIE], 'and stored');
});

test('cookies renewed on a 401 (recovery through the renewal URL) are handed out only after withLock resolved', async (t) => {
  const home = await makeHome();
  t.after(() => home.cleanup());
  const cookies = await login();
  const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}; ${CSRF_COOKIE}=${cookies[CSRF_COOKIE]}` };
  const probes: Probe[] = [];
  const { method } = open(home, { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES', renewUrl: app.renewUrl }, env, probes);
  const first = await method.authorize();
  assert.deepEqual(probes, [], 'usable cookies: no lock taken');
  app.rotateCsrf();
  const res = await fetch(app.apiUrl, { headers: first.headers });
  await res.body?.cancel();
  assert.equal(res.status, 401, 'the rotated CSRF cookie makes the old one fail');
  assert.equal(await method.recover(first), true);
  const renewed = await method.authorize();
  assert.notEqual(renewed.credential, first.credential);
  assert.deepEqual(probes, [{ settled: true, credential: first.credential }], 'inside the lock, another caller still got the cookies from before the renewal');
  const again = await fetch(app.apiUrl, { headers: renewed.headers });
  await again.body?.cancel();
  assert.equal(again.status, 200);
});
