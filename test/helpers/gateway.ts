/**
 * Helpers for gateway tests: a real upstream (HTTP + WebSocket echo of what it received), the
 * sign-in through the gateway against the real test IdP driven over HTTP (the same hops a
 * browser makes: gateway /auth/login → IdP authorize → login page → consent → gateway callback),
 * and a cookie jar that keeps what the gateway sets.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';

/** A cookie jar keyed by name (one host), honouring deletions (Max-Age=0 / empty value). */
export class Jar {
  readonly cookies = new Map<string, string>();
  /** Every Set-Cookie header seen, in order. */
  readonly seen: string[] = [];
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      this.seen.push(line);
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const maxAge = attrs.map((a) => a.trim()).find((a) => a.toLowerCase().startsWith('max-age='));
      if (value === '' || (maxAge !== undefined && Number(maxAge.slice(8)) <= 0)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
  clone(): Jar {
    const j = new Jar();
    for (const [k, v] of this.cookies) j.cookies.set(k, v);
    return j;
  }
}

/** What the upstream saw of one request. */
export interface UpstreamSeen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  /** The gateway's end of the connection (the same port again = a kept-alive connection). */
  remotePort?: number;
}

export interface Upstream {
  url: string;
  seen: UpstreamSeen[];
  /** WebSocket connections accepted: their URL and headers. */
  sockets: UpstreamSeen[];
  close(): Promise<void>;
}

/** An upstream that answers every request with JSON of what it received, and echoes WebSocket messages. */
export async function startUpstream(): Promise<Upstream> {
  const seen: UpstreamSeen[] = [];
  const sockets: UpstreamSeen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers };
      seen.push({ ...entry, remotePort: req.socket.remotePort });
      const body = JSON.stringify({ ...entry, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req) => {
    sockets.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    ws.on('message', (data) => ws.send(`echo:${String(data)}`));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    sockets,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Options of {@link signIn}. */
export interface SignInOptions {
  next?: string;
  login?: string;
  /** Extra headers on the requests to the gateway (X-Forwarded-* when testing behind a proxy). */
  headers?: Record<string, string>;
  jar?: Jar;
}

/** The result of a sign-in: the gateway's cookies and where the callback sent the browser. */
export interface SignedIn {
  jar: Jar;
  location: string;
  /** The authorization request the gateway made. */
  authorizationUrl: URL;
  /** The callback URL the IdP sent the browser to (code and state in it). */
  callbackUrl: URL;
}

const TIMEOUT = 10_000;

/** Signs in through the gateway at `gatewayUrl` against the real IdP, over HTTP (no browser). */
export async function signIn(gatewayUrl: string, options: SignInOptions = {}): Promise<SignedIn> {
  const jar = options.jar ?? new Jar();
  const start = await fetch(`${gatewayUrl}/auth/login${options.next !== undefined ? `?next=${encodeURIComponent(options.next)}` : ''}`, {
    redirect: 'manual',
    headers: { ...options.headers, cookie: jar.header() },
    signal: AbortSignal.timeout(TIMEOUT),
  });
  await start.body?.cancel();
  if (start.status !== 302) throw new Error(`signIn: /auth/login answered ${start.status}`);
  jar.store(start);
  const authorizationUrl = new URL(start.headers.get('location') ?? '');
  const callbackUrl = await authorizeAtIdp(authorizationUrl, options.login ?? 'alice');
  const done = await fetch(`${gatewayUrl}${callbackUrl.pathname.replace(/^.*(\/auth\/callback)$/, '$1')}${callbackUrl.search}`, {
    redirect: 'manual',
    headers: { ...options.headers, cookie: jar.header() },
    signal: AbortSignal.timeout(TIMEOUT),
  });
  const text = await done.text();
  if (done.status !== 302) throw new Error(`signIn: /auth/callback answered ${done.status}: ${text}`);
  jar.store(done);
  return { jar, location: done.headers.get('location') ?? '', authorizationUrl, callbackUrl };
}

/** Drives the IdP from an authorization URL to the redirect back (login page, consent); returns the callback URL. */
export async function authorizeAtIdp(authorizationUrl: URL, login: string): Promise<URL> {
  const redirectUri = authorizationUrl.searchParams.get('redirect_uri') ?? '';
  const idpJar = new Jar();
  let next: { url: string; method: 'GET' | 'POST'; body?: URLSearchParams } = { url: authorizationUrl.href, method: 'GET' };
  for (let hop = 0; hop < 12; hop++) {
    const res = await fetch(next.url, {
      method: next.method,
      redirect: 'manual',
      headers: { cookie: idpJar.header(), ...(next.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: next.body,
      signal: AbortSignal.timeout(TIMEOUT),
    });
    idpJar.store(res);
    const text = await res.text();
    if (res.status >= 300 && res.status < 400) {
      const target = new URL(res.headers.get('location') ?? '', next.url);
      if (target.href.startsWith(redirectUri)) return target;
      next = { url: target.href, method: 'GET' };
      continue;
    }
    const form = /<form[^>]*method="post"[^>]*action="([^"]+)"/i.exec(text);
    if (res.status === 200 && form?.[1]) {
      next = { url: new URL(form[1], next.url).href, method: 'POST', body: new URLSearchParams({ login }) };
      continue;
    }
    throw new Error(`authorizeAtIdp: unexpected ${res.status} at ${next.url}: ${text.slice(0, 300)}`);
  }
  throw new Error('authorizeAtIdp: too many hops');
}

/** A gateway running in a child process (test/helpers/gateway-child.ts). */
export interface ChildGateway {
  url: string;
  stderr: () => string;
  close(): Promise<void>;
}

/** Starts a gateway in its own process; resolves once it printed its ready line. */
export async function startChildGateway(options: Record<string, unknown>): Promise<ChildGateway> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL('./gateway-child.js', import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(options)], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH, HOME: process.env.HOME } });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway child did not start: ${err}`)), 15_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^latchkey gateway listening on (http:\/\/\S+)\n/m.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway child exited ${code}: ${err}`));
    });
  });
  return {
    url,
    stderr: () => err,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}
