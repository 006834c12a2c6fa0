/**
 * Unit tests of the login pieces that need no IdP: the loopback redirect server, config checks
 * made before any browser opens, remote-text sanitising, and the browser launcher rules.
 */
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { browserAllowed, browserCommand } from '../../../src/cli/commands/login.js';
import type { CliIO } from '../../../src/cli/io.js';
import { resolveConfig } from '../../../src/config/load.js';
import type { ConfigFile } from '../../../src/config/schema.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { Latchkey } from '../../../src/latchkey.js';
import { loginWithAuthorizationCode } from '../../../src/login/authorization-code.js';
import { sanitizeRemoteText } from '../../../src/core/sanitize.js';
import { startLoopbackRedirect } from '../../../src/login/loopback-redirect.js';
import { homePaths } from '../../../src/paths.js';
import { assertNoSecrets } from '../../e2e/login-support.js';

function get(port: number, path: string, host = `127.0.0.1:${port}`): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('loopback redirect: 127.0.0.1 on an OS-chosen port, /callback, hardened fixed pages', async () => {
  const lb = await startLoopbackRedirect();
  try {
    assert.match(lb.redirectUri, /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    assert.ok(lb.port > 0);
    const waiting = lb.waitForCallback();
    const first = get(lb.port, '/callback?state=s&code=c&next=https%3A%2F%2Fevil.example');
    const cb = await waiting;
    assert.equal(cb.params.get('state'), 's');
    // A second callback while the first is held is refused and cannot change the outcome.
    const second = await get(lb.port, '/callback?state=other&code=other');
    assert.equal(second.status, 409);
    cb.respond({ ok: true, source: 'src<b>' });
    const page = await first;
    assert.equal(page.status, 200);
    assert.equal(page.headers.location, undefined);
    assert.equal(page.headers['cache-control'], 'no-store');
    assert.match(String(page.headers['content-security-policy']), /default-src 'none'/);
    assert.equal(page.headers['x-frame-options'], 'DENY');
    assert.equal(page.headers['referrer-policy'], 'no-referrer');
    assert.match(page.body, /Signed in/);
    assert.match(page.body, /src&#60;b&#62;/, 'escaped');
    assert.ok(!page.body.includes('evil.example'));
  } finally {
    await lb.close();
  }
});

test('loopback redirect: close() answers a held callback and rejects nothing silently', async () => {
  const lb = await startLoopbackRedirect();
  const waiting = lb.waitForCallback();
  const pending = get(lb.port, '/callback?state=s&code=c');
  await waiting;
  await lb.close();
  const page = await pending;
  assert.equal(page.status, 400);
  assert.match(page.body, /Sign-in stopped/);
});

test('loopback redirect: waitForCallback rejects when its signal aborts', async () => {
  const lb = await startLoopbackRedirect();
  try {
    const ac = new AbortController();
    const p = lb.waitForCallback(ac.signal);
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
  } finally {
    await lb.close();
  }
});

function lkWith(sources: ConfigFile['sources'], env: NodeJS.ProcessEnv = {}): Latchkey {
  const config = resolveConfig({ version: 1, sources }, '/nonexistent/config.json');
  return new Latchkey(config, { env, paths: homePaths('/nonexistent/home') });
}

async function configError(lk: Latchkey, source: string): Promise<LatchkeyError> {
  let opened = false;
  const err = await loginWithAuthorizationCode(lk, source, {
    timeoutMs: 1_000,
    onUrl: () => {
      opened = true;
    },
  }).catch((e: unknown) => e);
  assert.equal(opened, false, 'refused before any URL was shown');
  assert.ok(err instanceof LatchkeyError, String(err));
  return err;
}

/**
 * The only non-real server in the login tests: a discovery document that lists no S256
 * (oidc-provider always supports S256, so the refusal cannot be produced by the real IdP).
 */
async function metadataServer(methods: string[]): Promise<{ issuer: string; server: Server }> {
  const server = createServer((req, res) => {
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    if (req.url === '/.well-known/openid-configuration' || req.url === '/.well-known/oauth-authorization-server') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, code_challenge_methods_supported: methods }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { issuer: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('login refuses a server whose metadata lists PKCE methods without S256', async () => {
  const { issuer, server } = await metadataServer(['plain']);
  try {
    const err = await configError(lkWith({ s: { oauth: { issuer, clientId: 'c' } } }), 's');
    assert.equal(err.code, 'LK_CONFIG_INVALID');
    assert.match(err.message, /does not support PKCE with S256 \(code_challenge_methods_supported: plain\)/);
    assert.equal(err.exitCode, 1);
  } finally {
    server.close();
  }
});

test('login config errors come before the browser: openid without issuer, reserved params, missing endpoints, plain http off loopback', async () => {
  const endpoints = { authorizationEndpoint: 'http://127.0.0.1:1/auth', tokenEndpoint: 'http://127.0.0.1:1/token', clientId: 'c' };
  const cases: Array<[ConfigFile['sources'], RegExp, string]> = [
    [{ s: { oauth: { ...endpoints, scope: 'openid email' } } }, /scope includes "openid" but no issuer is configured/, 'LK_CONFIG_INVALID'],
    [{ s: { oauth: { ...endpoints, authorizationParams: { redirect_uri: 'https://evil.example/' } } } }, /may not set "redirect_uri"/, 'LK_CONFIG_INVALID'],
    [{ s: { oauth: { ...endpoints, authorizationParams: { scope: 'x' } } } }, /may not set "scope" .*use oauth\.scope/, 'LK_CONFIG_INVALID'],
    [{ s: { oauth: { tokenEndpoint: endpoints.tokenEndpoint, clientId: 'c' } } }, /no authorization endpoint \(sources\.s\.oauth\.authorizationEndpoint is not set\)/, 'LK_CONFIG_INVALID'],
    [{ s: { oauth: { ...endpoints, authorizationEndpoint: 'http://idp.example/auth' } } }, /must use https/, 'LK_INSECURE_ENDPOINT'],
    [{ s: { token: { secret: 'env:T' } } }, /has no oauth method/, 'LK_CONFIG_INVALID'],
    [{ s: { oauth: { ...endpoints, clientSecret: 'env:MISSING', clientAuth: 'client_secret_basic' } } }, /client secret .*MISSING is not set/, 'LK_SECRET_UNRESOLVED'],
  ];
  for (const [sources, message, code] of cases) {
    const err = await configError(lkWith(sources), 's');
    assert.match(err.message, message);
    assert.equal(err.code, code, err.message);
    assert.equal(err.exitCode, 1, err.message);
  }
  await assert.rejects(loginWithAuthorizationCode(lkWith({}), 'ghost'), (e: LatchkeyError) => e.code === 'LK_UNKNOWN_SOURCE');
});

test('remote text is made safe for a terminal line', () => {
  assert.equal(sanitizeRemoteText('a\u001b[2Jb\r\nc\u0007'), 'ab c');
  assert.equal(sanitizeRemoteText('x'.repeat(300)).length, 201);
});

test('the canary check itself catches a leak', () => {
  assert.throws(() => assertNoSecrets(['s3cret-value'], 'prefix s3cret-value suffix'), /leaked/);
  assert.throws(() => assertNoSecrets(['s3cret-value'], { nested: { deep: 's3cret-value' } }), /leaked/);
  assertNoSecrets(['s3cret-value'], 'nothing here', new LatchkeyError('LK_LOGIN_FAILED', 'clean'));
});

function io(env: NodeJS.ProcessEnv, stdoutTTY: boolean): CliIO {
  const stdout = { isTTY: stdoutTTY, write: () => true } as unknown as NodeJS.WritableStream;
  return { stdout, stderr: process.stderr, stdin: process.stdin, env };
}

test('browser: never with --no-browser, LATCHKEY_NO_BROWSER=1, stdout not a TTY, or no way to open one', () => {
  const display = { DISPLAY: ':0' };
  assert.equal(browserAllowed(false, io(display, true)), true);
  assert.equal(browserAllowed(true, io(display, true)), false);
  assert.equal(browserAllowed(false, io({ ...display, LATCHKEY_NO_BROWSER: '1' }, true)), false);
  assert.equal(browserAllowed(false, io(display, false)), false);
  if (process.platform === 'linux') assert.equal(browserAllowed(false, io({}, true)), false, 'no display, no $BROWSER');
});

test('browser command: $BROWSER (first entry, %s), platform openers, never a shell', () => {
  const url = 'http://127.0.0.1:1/auth?a=1&b=$(rm -rf ~)';
  assert.deepEqual(browserCommand({ BROWSER: 'firefox --new-tab:lynx' }, url, 'linux'), { file: 'firefox', args: ['--new-tab', url] });
  assert.deepEqual(browserCommand({ BROWSER: 'chromium --app=%s' }, url, 'linux'), { file: 'chromium', args: [`--app=${url}`] });
  assert.deepEqual(browserCommand({ DISPLAY: ':1' }, url, 'linux'), { file: 'xdg-open', args: [url] });
  assert.deepEqual(browserCommand({ WAYLAND_DISPLAY: 'wayland-0' }, url, 'linux'), { file: 'xdg-open', args: [url] });
  assert.equal(browserCommand({}, url, 'linux'), undefined);
  assert.deepEqual(browserCommand({}, url, 'darwin'), { file: 'open', args: [url] });
  assert.deepEqual(browserCommand({}, url, 'win32'), { file: 'rundll32.exe', args: ['url.dll,FileProtocolHandler', url] });
});
