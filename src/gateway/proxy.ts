import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { JSON_HEADERS } from '../http/security-headers.js';
import { withoutGatewayCookies } from './cookie-rules.js';
import { identityHeaders, stripIdentityHeaders } from './identity-headers.js';
import type { GatewayMetrics } from './metrics.js';
import type { RequestShape } from './request-shape.js';
import type { SessionIdentity } from './session-store.js';

/**
 * The reverse proxy to the upstream: a keep-alive agent, hop-by-hop headers removed both ways
 * (RFC 9110 §7.6.1: the fixed list plus what `Connection` names), the gateway's cookies removed
 * from `Cookie`, identity headers stripped from the incoming request and then set from the
 * session, `X-Forwarded-For/-Proto/-Host` set for the upstream.
 */

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Headers without hop-by-hop ones (and those `Connection` lists). */
export function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers };
  const named = String(headers.connection ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '');
  for (const h of HOP_BY_HOP) delete out[h];
  for (const h of named) delete out[h];
  return out;
}

/** The request headers the upstream gets. */
export function upstreamRequestHeaders(req: IncomingMessage, shape: RequestShape, identity: SessionIdentity | undefined): OutgoingHttpHeaders {
  const headers = endToEnd(req.headers);
  stripIdentityHeaders(headers);
  const cookie = withoutGatewayCookies(req.headers.cookie);
  if (cookie === undefined) delete headers.cookie;
  else headers.cookie = cookie;
  const peer = req.socket.remoteAddress ?? '';
  const prior = shape.viaTrustedProxy ? req.headers['x-forwarded-for'] : undefined;
  headers['x-forwarded-for'] = prior ? `${String(prior)}, ${peer}` : peer;
  headers['x-forwarded-proto'] = shape.https ? 'https' : 'http';
  headers['x-forwarded-host'] = shape.host;
  if (shape.prefix) headers['x-forwarded-prefix'] = shape.prefix;
  else delete headers['x-forwarded-prefix'];
  return identity ? { ...headers, ...identityHeaders(identity) } : headers;
}

/** `Cache-Control` made private (kept as is when already private or no-store). */
export function privateCacheControl(value: string | undefined): string {
  if (!value) return 'private';
  if (/(^|,)\s*(private|no-store)\s*(,|$|=)/i.test(value)) return value;
  const rest = value
    .split(',')
    .map((d) => d.trim())
    .filter((d) => d !== '' && !/^(public|s-maxage\s*=.*)$/i.test(d));
  return ['private', ...rest].join(', ');
}

export class UpstreamProxy {
  readonly upstream: URL;
  readonly #agent: HttpAgent;
  readonly #metrics: GatewayMetrics;

  constructor(upstream: URL, metrics: GatewayMetrics) {
    this.upstream = upstream;
    this.#metrics = metrics;
    const options = { keepAlive: true, maxSockets: 256, maxFreeSockets: 64, keepAliveMsecs: 1000 };
    this.#agent = upstream.protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
  }

  /** The upstream URL for a request target (path and query of the request, under the upstream's own path). */
  target(url: string | undefined): URL {
    const base = this.upstream.pathname.replace(/\/$/, '');
    const u = new URL(this.upstream.href);
    const raw = url ?? '/';
    const q = raw.indexOf('?');
    u.pathname = `${base}${q === -1 ? raw : raw.slice(0, q)}`;
    u.search = q === -1 ? '' : raw.slice(q);
    return u;
  }

  get agent(): HttpAgent {
    return this.#agent;
  }

  forward(req: IncomingMessage, res: ServerResponse, shape: RequestShape, identity: SessionIdentity | undefined, setCookies: readonly string[]): Promise<void> {
    return new Promise((resolve) => {
      const target = this.target(req.url);
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const up = send(target, { method: req.method, headers: upstreamRequestHeaders(req, shape, identity), agent: this.#agent });
      const done = (): void => resolve();
      req.on('aborted', () => up.destroy());
      res.on('close', () => {
        if (!res.writableFinished) up.destroy();
        done();
      });
      up.on('response', (upRes) => {
        const headers = endToEnd(upRes.headers);
        if (setCookies.length) {
          const existing = headers['set-cookie'] ?? [];
          headers['set-cookie'] = [...existing, ...setCookies];
          // A shared cache must never keep (and hand others) an answer carrying a session's cookies.
          headers['cache-control'] = privateCacheControl(headers['cache-control']);
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, headers as OutgoingHttpHeaders);
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      });
      up.on('error', () => {
        this.#metrics.upstreamErrors.inc();
        if (!res.headersSent) {
          const body = JSON.stringify({ error: 'bad_gateway', message: 'the upstream did not answer' });
          res.writeHead(502, { ...JSON_HEADERS, 'Content-Length': String(Buffer.byteLength(body)), ...(setCookies.length ? { 'Set-Cookie': [...setCookies] } : {}) });
          res.end(body);
        } else {
          res.destroy();
        }
        done();
      });
      req.pipe(up);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
