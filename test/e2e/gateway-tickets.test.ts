/**
 * WebSocket tickets and pass-through across two gateway processes on one LATCHKEY_HOME: a ticket
 * is accepted once (exactly one process wins a race for it), expires after 30 s (injected clock),
 * is bound to its Origin, is never guessable; 1,000 minted are unique; minting and redeeming at
 * the same time loses nothing and accepts nothing twice. Upgrades without auth are refused; the
 * ticket never reaches the upstream.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { signIn, startChildGateway, startUpstream, type ChildGateway, type Jar, type Upstream } from '../helpers/gateway.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let a: ChildGateway;
let b: ChildGateway;
let clockFile: string;
let jar: Jar;

before(async () => {
  idp = await startIdp({ accessTokenTtl: 600, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  clockFile = join(home.home, '..', 'clock-offset');
  await writeFile(clockFile, '0');
  const options = { issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, clockFile };
  [a, b] = await Promise.all([startChildGateway(options), startChildGateway(options)]);
  ({ jar } = await signIn(a.url, { login: 'wsuser' }));
});
after(async () => {
  await Promise.all([a?.close(), b?.close()]);
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

/** `origin`: the Origin header sent (default the gateway's own; null sends none, as a desktop client). */
async function mint(gw: ChildGateway, origin: string | null = gw.url): Promise<Response> {
  return fetch(`${gw.url}/auth/ws-ticket`, { method: 'POST', headers: { cookie: jar.header(), 'x-latchkey-csrf': '1', ...(origin !== null ? { origin } : {}) }, signal: AbortSignal.timeout(10_000) });
}

async function ticketOf(gw: ChildGateway, origin?: string | null): Promise<string> {
  const res = await mint(gw, origin);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { ticket: string; ttlSeconds: number };
  assert.equal(body.ttlSeconds, 30);
  return body.ticket;
}

/** Opens a WebSocket; resolves with the status (101 = open, else the refusal's status) and, when open, the echo of one message. */
function connect(url: string, headers: Record<string, string> = {}): Promise<{ status: number; echo?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, handshakeTimeout: 10_000 });
    ws.on('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.on('open', () => ws.send('ping'));
    ws.on('message', (data) => {
      resolve({ status: 101, echo: String(data) });
      ws.close();
    });
    ws.on('error', () => resolve({ status: -1 }));
  });
}

const wsUrl = (gw: ChildGateway, path: string): string => gw.url.replace(/^http/, 'ws') + path;

test('mint: CSRF header and same origin required; answers { ticket, ttlSeconds: 30 }; 401 session_expired without a session', async () => {
  const noHeader = await fetch(`${a.url}/auth/ws-ticket`, { method: 'POST', headers: { cookie: jar.header() } });
  assert.equal(noHeader.status, 403);
  assert.equal((await mint(a, 'https://evil.test')).status, 403);
  const ticket = await ticketOf(a);
  assert.match(ticket, /^[A-Za-z0-9_-]{43}$/);
  const anon = await fetch(`${a.url}/auth/ws-ticket`, { method: 'POST', headers: { 'x-latchkey-csrf': '1' } });
  assert.equal(anon.status, 401);
  assert.equal(((await anon.json()) as { error: string }).error, 'session_expired');
});

test('a ticket opens one WebSocket to the upstream (ticket removed from the URL, identity headers set), once', async () => {
  const ticket = await ticketOf(a);
  upstream.sockets.length = 0;
  const first = await connect(wsUrl(b, `/live?room=1&ticket=${ticket}&x=2`), { origin: a.url });
  assert.deepEqual(first, { status: 101, echo: 'echo:ping' });
  assert.equal(upstream.sockets[0]?.url, '/live?room=1&x=2');
  assert.equal(upstream.sockets[0]?.headers['x-forwarded-user'], 'wsuser');
  const replay = await connect(wsUrl(a, `/live?ticket=${ticket}`), { origin: a.url });
  assert.equal(replay.status, 401);
});

test('two processes race for one ticket: exactly one accepts it (10 rounds)', async () => {
  for (let round = 0; round < 10; round++) {
    const ticket = await ticketOf(a);
    const results = await Promise.all([a, b, a, b].map((gw) => connect(wsUrl(gw, `/race?ticket=${ticket}`), { origin: a.url })));
    assert.equal(results.filter((r) => r.status === 101).length, 1, `round ${round}: ${JSON.stringify(results)}`);
    assert.equal(results.filter((r) => r.status === 401).length, 3);
  }
});

test('a ticket from another Origin, a guessed one, a malformed one: refused; an upgrade without auth: 401; with the session cookie: accepted', async () => {
  const ticket = await ticketOf(a);
  assert.equal((await connect(wsUrl(a, `/x?ticket=${ticket}`), { origin: 'https://evil.test' })).status, 401);
  // Burnt by the wrong-Origin attempt: not usable afterwards either.
  assert.equal((await connect(wsUrl(a, `/x?ticket=${ticket}`), { origin: a.url })).status, 401);
  assert.equal((await connect(wsUrl(a, `/x?ticket=${'A'.repeat(43)}`), { origin: a.url })).status, 401);
  assert.equal((await connect(wsUrl(a, '/x?ticket=short'), { origin: a.url })).status, 400);
  assert.equal((await connect(wsUrl(a, '/x'), { origin: a.url })).status, 401);
  assert.equal((await connect(wsUrl(a, '/x'), { origin: a.url, cookie: jar.header() })).status, 101);
  // A cross-site page using the browser's cookies is refused.
  assert.equal((await connect(wsUrl(a, '/x'), { origin: 'https://evil.test', cookie: jar.header() })).status, 403);
  // Minted without Origin (a desktop client): redeemed without Origin.
  const desktop = await ticketOf(a, null);
  assert.equal((await connect(wsUrl(b, `/x?ticket=${desktop}`))).status, 101);
});

test('a ticket expires after 30 s (injected clock)', async () => {
  const ticket = await ticketOf(a);
  await writeFile(clockFile, '31000');
  try {
    assert.equal((await connect(wsUrl(b, `/x?ticket=${ticket}`), { origin: a.url })).status, 401);
  } finally {
    await writeFile(clockFile, '0');
  }
});

test('1,000 tickets are unique; minting and redeeming concurrently on two processes loses none and accepts none twice', { timeout: 300_000 }, async () => {
  const tickets = new Set<string>();
  for (let i = 0; i < 1000; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => ticketOf((i + j) % 2 ? b : a)));
    for (const t of batch) tickets.add(t);
  }
  assert.equal(tickets.size, 1000);
  // Concurrent: 40 mints while each minted ticket is redeemed twice at once (one per process).
  const outcomes = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const t = await ticketOf(i % 2 ? a : b);
      const [x, y] = await Promise.all([connect(wsUrl(a, `/c?ticket=${t}`), { origin: (i % 2 ? a : b).url }), connect(wsUrl(b, `/c?ticket=${t}`), { origin: (i % 2 ? a : b).url })]);
      return [x.status, y.status].sort().join('/');
    }),
  );
  assert.deepEqual(new Set(outcomes), new Set(['101/401']));
});
