/**
 * `latchkey gateway` as a user runs it: flags or the config's "gateway" section, exactly one
 * ready line on stdout, a signed-in request proxied, SIGTERM closes gracefully; usage errors name
 * the missing flag.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { cliPath, makeHome, runCli } from '../helpers/home.js';
import { signIn, startUpstream, type Upstream } from '../helpers/gateway.js';

let idp: Idp;
let upstream: Upstream;

before(async () => {
  idp = await startIdp({ accessTokenTtl: 600, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
});
after(async () => {
  await upstream.close();
  await idp.close();
});

async function runGateway(args: string[], home: string, env: Record<string, string> = {}): Promise<{ url: string; stdout: () => string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [cliPath, 'gateway', ...args], { env: { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line: ${err}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^latchkey gateway listening on (http:\/\/127\.0\.0\.1:\d+)\n$/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
  return {
    url,
    stdout: () => out,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

test('flags: one ready line, a signed-in request is proxied, SIGTERM exits 0 with nothing more on stdout', async () => {
  const h = await makeHome();
  try {
    const gw = await runGateway(['--upstream', upstream.url, '--issuer', idp.issuer, '--client-id', 'public-client', '--port', '0', '--public', '/open'], h.home);
    const { jar } = await signIn(gw.url, { login: 'cli' });
    const res = await fetch(`${gw.url}/x`, { headers: { cookie: jar.header() } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { headers: Record<string, string> }).headers['x-forwarded-user'], 'cli');
    assert.equal((await fetch(`${gw.url}/open/y`)).status, 200);
    // An open WebSocket does not keep a stopping gateway alive.
    const ws = new WebSocket(`${gw.url.replace('http', 'ws')}/live`, { headers: { cookie: jar.header(), origin: gw.url } });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    assert.equal(await gw.stop(), 0);
    await closed;
    assert.equal(gw.stdout().split('\n').filter(Boolean).length, 1);
  } finally {
    await h.cleanup();
  }
});

test('the config\'s "gateway" section supplies what the flags do not', async () => {
  const h = await makeHome({ version: 1, gateway: { upstream: upstream.url, issuer: idp.issuer, clientId: 'basic-client', clientSecret: 'env:LK_GW_TEST_UNSET_SECRET' } });
  try {
    // The secret reference does not resolve: a clear error naming it, exit 1.
    const r = await runCli(['gateway'], { env: { LATCHKEY_HOME: h.home } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /env:LK_GW_TEST_UNSET_SECRET/);
    assert.equal(r.stdout, '');
    // Resolved: a confidential client (client_secret_basic) signs in with the secret behind the reference.
    const gw = await runGateway([], h.home, { LK_GW_TEST_UNSET_SECRET: 'basic-secret' });
    const { jar } = await signIn(gw.url, { login: 'cfg' });
    assert.equal((await fetch(`${gw.url}/z`, { headers: { cookie: jar.header() } })).status, 200);
    assert.equal(await gw.stop(), 0);
  } finally {
    await h.cleanup();
  }
});

test('usage errors name what is missing or wrong (exit 1); a bad config section names the field', async () => {
  const h = await makeHome();
  try {
    const missing = await runCli(['gateway', '--issuer', idp.issuer, '--client-id', 'x'], { env: { LATCHKEY_HOME: h.home } });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /--upstream/);
    const port = await runCli(['gateway', '--upstream', upstream.url, '--issuer', idp.issuer, '--client-id', 'x', '--port', 'http'], { env: { LATCHKEY_HOME: h.home } });
    assert.equal(port.code, 1);
    assert.match(port.stderr, /--port/);
    const proxy = await runCli(['gateway', '--upstream', upstream.url, '--issuer', idp.issuer, '--client-id', 'x', '--trusted-proxy', 'everyone'], { env: { LATCHKEY_HOME: h.home } });
    assert.equal(proxy.code, 1);
    assert.match(proxy.stderr, /trusted proxy "everyone"/);
    const insecure = await runCli(['gateway', '--upstream', upstream.url, '--issuer', 'http://idp.example.test', '--client-id', 'x'], { env: { LATCHKEY_HOME: h.home } });
    assert.equal(insecure.code, 1);
    assert.match(insecure.stderr, /must use https/);
  } finally {
    await h.cleanup();
  }
  const bad = await makeHome({ version: 1, gateway: { upstream: 'ftp://x', trustedProxies: ['x y'] } });
  try {
    const r = await runCli(['gateway'], { env: { LATCHKEY_HOME: bad.home } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /gateway\.upstream/);
  } finally {
    await bad.cleanup();
  }
});
