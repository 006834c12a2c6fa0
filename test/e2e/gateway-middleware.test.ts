/**
 * The gateway as middleware over the same core, in Node's http, Express and Fastify: the
 * /auth/* routes work in the host app, a signed-in request reaches the app's handler with the
 * identity (req.latchkey / request.latchkey and the identity headers) and without the gateway's
 * cookies, an anonymous one gets 401 session_expired, a due session is refreshed in place.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { createGateway, type Gateway, type GatewayIdentity } from '../../src/gateway/index.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { Jar, signIn } from '../helpers/gateway.js';

let idp: Idp;
let home: TempHome;
let gateway: Gateway;
let offset = 0;
const clock = { now: () => Date.now() + offset };
const servers: Array<{ name: string; url: string; close(): Promise<void> }> = [];

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const closeServer = (server: Server) => () => new Promise<void>((resolve) => {
  server.closeAllConnections();
  server.close(() => resolve());
});

function answer(req: IncomingMessage & { latchkey?: GatewayIdentity }): string {
  return JSON.stringify({ who: req.latchkey?.sub ?? null, email: req.latchkey?.email ?? null, header: req.headers['x-forwarded-user'] ?? null, cookie: req.headers.cookie ?? null, path: req.url });
}

before(async () => {
  idp = await startIdp({ accessTokenTtl: 60, redirectUris: ['http://127.0.0.1/auth/callback'] });
  home = await makeHome();
  gateway = await createGateway({ issuer: idp.issuer, clientId: 'public-client', home: home.home, clock, publicPaths: ['/public'], log: () => undefined });

  const plain = createServer((req, res) =>
    gateway.middleware.node(req, res, () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(answer(req));
    }),
  );
  servers.push({ name: 'node http', url: await listen(plain), close: closeServer(plain) });

  const app = express();
  app.use(gateway.middleware.express);
  app.use((req, res) => {
    res.type('application/json').send(answer(req));
  });
  const expressServer = createServer(app);
  servers.push({ name: 'express', url: await listen(expressServer), close: closeServer(expressServer) });

  const fastify = Fastify();
  await fastify.register(gateway.middleware.fastify);
  fastify.all('/*', async (request, reply) => {
    const r = request as unknown as { raw: IncomingMessage; latchkey?: GatewayIdentity };
    reply.type('application/json').send(JSON.stringify({ ...JSON.parse(answer(r.raw)), fromRequest: r.latchkey?.sub ?? null }));
  });
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const addr = fastify.server.address() as AddressInfo;
  servers.push({ name: 'fastify', url: `http://127.0.0.1:${addr.port}`, close: () => fastify.close() });
});
after(async () => {
  for (const s of servers) await s.close();
  await gateway.close();
  await idp.close();
  await home.cleanup();
});

for (const index of [0, 1, 2]) {
  test(`middleware #${index} (node http, express, fastify): sign-in, identity in the app, anonymous 401, public paths, refresh in place`, async () => {
    const s = servers[index] as (typeof servers)[number];
    offset = 0;
    const { jar, location } = await signIn(s.url, { login: `mw${index}`, next: '/inside' });
    assert.equal(location, '/inside');
    const res = await fetch(`${s.url}/inside`, { headers: { cookie: `${jar.header()}; app=1`, 'x-forwarded-user': 'mallory' } });
    assert.equal(res.status, 200, s.name);
    const body = (await res.json()) as Record<string, string | null>;
    assert.equal(body.who, `mw${index}`);
    assert.equal(body.header, `mw${index}`, 'the forged identity header was replaced');
    assert.equal(body.cookie, 'app=1', 'the gateway cookies are out of the app\'s view');
    if (s.name === 'fastify') assert.equal(body.fromRequest, `mw${index}`);

    const anon = await fetch(`${s.url}/inside`, { headers: { accept: 'application/json' } });
    assert.equal(anon.status, 401, s.name);
    assert.equal(((await anon.json()) as { error: string }).error, 'session_expired');
    const pub = await fetch(`${s.url}/public/file`, { headers: { 'x-forwarded-user': 'mallory' } });
    assert.equal(pub.status, 200);
    assert.equal(((await pub.json()) as { header: string | null }).header, null);

    offset += 45_000;
    const before = idp.stats.refreshSuccesses;
    const refreshed = await fetch(`${s.url}/inside`, { headers: { cookie: jar.header() } });
    assert.equal(refreshed.status, 200);
    assert.equal(idp.stats.refreshSuccesses, before + 1);
    assert.ok(refreshed.headers.getSetCookie().some((l) => l.startsWith('latchkey_at=v1.')), 'the rotated cookies are set on the app\'s response');
    const me = await fetch(`${s.url}/auth/me`, { headers: { cookie: new Jar().header() } });
    assert.equal(me.status, 401);
  });
}

test('fail closed: when the store fails, every front end answers 503 and the app\'s handler never runs', async () => {
  const { FileStore } = await import('../../src/store/file-store.js');
  const { join } = await import('node:path');
  const real = new FileStore({ path: join(home.home, 'store.json') });
  const broken = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop === 'get') return async () => Promise.reject(new Error('EIO: the disk is on fire'));
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  const { jar } = await signIn(servers[0]?.url as string, { login: 'broken' });
  const bad = await createGateway({ issuer: idp.issuer, clientId: 'public-client', home: home.home, store: broken, sessionCacheMs: 0, log: () => undefined });
  let ran = 0;
  const plain = createServer((req, res) =>
    bad.middleware.node(req, res, () => {
      ran++;
      res.end('app');
    }),
  );
  const fastify = Fastify();
  await fastify.register(bad.middleware.fastify);
  fastify.all('/*', async () => {
    ran++;
    return 'app';
  });
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const urls = [await listen(plain), `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`];
  try {
    for (const url of urls) {
      const res = await fetch(`${url}/inside`, { headers: { cookie: jar.header() } });
      assert.equal(res.status, 503, url);
      const text = await res.text();
      assert.doesNotMatch(text, /disk is on fire|\n\s+at /);
    }
    assert.equal(ran, 0);
  } finally {
    await closeServer(plain)();
    await fastify.close();
    await bad.close();
  }
});
