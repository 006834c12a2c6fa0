/**
 * A session's slow work (a DevTools visit, a renewal request) never outlives the callers that
 * wait for it: a pre-flight that spent its budget leaves nothing running, so `latchkey
 * preflight` exits as soon as it has answered; concurrent callers share the work, which stops
 * only when every one of them has given up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { resolveConfig } from '../../src/config/load.js';
import type { SessionConfig } from '../../src/config/schema.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { Latchkey } from '../../src/latchkey.js';
import type { AuthMethod } from '../../src/methods/method.js';
import { createSessionMethod } from '../../src/methods/session.js';
import { homePaths } from '../../src/paths.js';
import { makeHome, runCli, type TempHome } from '../helpers/home.js';

function openMethod(home: TempHome, session: SessionConfig, env: NodeJS.ProcessEnv = {}): AuthMethod {
  const config = resolveConfig({ version: 1, sources: { app: { session } } }, home.configPath);
  const lk = new Latchkey(config, { paths: homePaths(home.home), env });
  return createSessionMethod({ lk, source: lk.source('app') });
}

/** A server whose handler decides; every request is counted and its early close recorded. */
async function startServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; hits: number; closedEarly: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { hits: 0, closedEarly: 0 };
  const server: Server = createServer((req, res) => {
    state.hits += 1;
    res.on('close', () => {
      if (!res.writableEnded) state.closedEarly += 1;
    });
    handler(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    get hits() {
      return state.hits;
    },
    get closedEarly() {
      return state.closedEarly;
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const target = (signal?: AbortSignal) => ({ url: new URL('https://app.example/api'), method: 'GET', ...(signal ? { signal } : {}) });

test('one caller gives up: the shared DevTools visit goes on for the other, once', async (t) => {
  // /json/version answers after 400 ms with something that is not Chrome.
  const server = await startServer((_req, res) => {
    setTimeout(() => res.end('not json'), 400);
  });
  t.after(() => server.close());
  const home = await makeHome();
  t.after(() => home.cleanup());
  const method = openMethod(home, { origin: 'https://app.example', cdp: { endpoint: server.url, timeoutMs: 5_000 } });
  const quitter = method.authorize(target(AbortSignal.timeout(50)));
  const stayer = method.authorize(target());
  await assert.rejects(quitter, (err: unknown) => (err as Error).name === 'TimeoutError');
  await assert.rejects(stayer, (err: unknown) => err instanceof LatchkeyError && err.operatorAction === 'renew_session' && /not JSON/.test(err.message));
  assert.equal(server.hits, 1, 'one visit for both callers');
  assert.equal(server.closedEarly, 0, 'the visit was not cut short');
});

test('every caller gives up: the DevTools visit is stopped (its request closed), and the next caller starts afresh', async (t) => {
  const server = await startServer(() => undefined); // never answers
  t.after(() => server.close());
  const home = await makeHome();
  t.after(() => home.cleanup());
  const method = openMethod(home, { origin: 'https://app.example', cdp: { endpoint: server.url, timeoutMs: 10_000 } });
  const started = Date.now();
  await Promise.all([
    assert.rejects(method.authorize(target(AbortSignal.timeout(100)))),
    assert.rejects(method.authorize(target(AbortSignal.timeout(150)))),
  ]);
  assert.ok(Date.now() - started < 2_000);
  for (let i = 0; i < 50 && server.closedEarly < 1; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.closedEarly, 1, 'the /json/version request was abandoned');
  // A later caller is not handed the cancelled visit's failure: it makes its own.
  await assert.rejects(method.authorize(target(AbortSignal.timeout(100))), (err: unknown) => (err as Error).name === 'TimeoutError');
  assert.equal(server.hits, 2);
});

test('a renewal request is stopped with the caller (recover honours the request\'s signal)', async (t) => {
  const server = await startServer(() => undefined); // the renewal URL never answers
  t.after(() => server.close());
  const home = await makeHome();
  t.after(() => home.cleanup());
  const origin = server.url;
  const method = openMethod(home, { origin, cookieHeader: 'env:C', renewUrl: `${origin}/renew`, timeoutMs: 10_000 }, { C: 'sid=1' });
  const used = await method.authorize({ url: new URL(`${origin}/api`), method: 'GET' });
  const started = Date.now();
  await assert.rejects(method.recover(used, { url: new URL(`${origin}/api`), method: 'GET', signal: AbortSignal.timeout(150) }));
  assert.ok(Date.now() - started < 2_000);
  for (let i = 0; i < 50 && server.closedEarly < 1; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server.closedEarly, 1, 'the renewal request was abandoned');
});

test('CLI: `latchkey preflight` with a stalled DevTools endpoint answers within the budget and exits at once', async (t) => {
  const server = await startServer(() => undefined);
  t.after(() => server.close());
  const h = await makeHome({
    version: 1,
    sources: { hs: { session: { origin: 'https://app.example', cdp: { endpoint: server.url, timeoutMs: 10_000 } }, probe: { url: 'https://app.example/api/me' } } },
  });
  t.after(() => h.cleanup());
  const started = Date.now();
  const r = await runCli(['preflight', 'hs', '--budget', '800', '--json'], { env: { LATCHKEY_HOME: h.home } });
  const elapsed = Date.now() - started;
  assert.equal(r.code, 3, r.stderr);
  const report = JSON.parse(r.stdout) as { results: Array<{ status: string; authPath: string; message: string; fix: string }> };
  assert.equal(report.results[0]!.status, 'unreachable');
  assert.equal(report.results[0]!.authPath, 'session');
  // The wait that was cut short is named: the browser, not the API's network path.
  assert.match(report.results[0]!.message, /no answer within 800 ms while the session method was getting its cookies/);
  assert.equal(report.results[0]!.fix, `check that the Chrome at ${server.url} answers and its tab matching https://app.example/* finishes loading, then run \`latchkey preflight hs\``);
  // Startup plus the budget; the DevTools step's own 10 s bound must not keep the process alive.
  assert.ok(elapsed < 5_000, `the process took ${elapsed} ms to exit`);
});

test('a stalled API request after a session that failed: the generic network fix, not the browser\'s', async (t) => {
  const server = await startServer(() => undefined);
  t.after(() => server.close());
  const h = await makeHome({
    version: 1,
    sources: {
      s: {
        methods: ['session', 'token'],
        session: { origin: 'https://app.example', cookieHeader: 'env:NO_COOKIES', cdp: { endpoint: 'http://127.0.0.1:9' } },
        token: { secret: 'env:PAT' },
        probe: { url: `${server.url}/api`, timeoutMs: 300 },
      },
    },
  });
  t.after(() => h.cleanup());
  const { openLatchkey } = await import('../../src/latchkey.js');
  const lk = await openLatchkey({ home: h.home, env: { PAT: 'p' } });
  t.after(() => lk.close());
  const r = await lk.probe('s');
  assert.equal(r.status, 'unreachable');
  assert.equal(r.authPath, 'token');
  assert.equal(r.message, 's: no answer within 300 ms');
  assert.equal(r.fix, 'latchkey preflight s --live');
});
