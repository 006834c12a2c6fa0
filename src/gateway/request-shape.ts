import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { isLoopbackHost } from '../net/loopback.js';
import type { TrustedProxies } from './trusted-proxies.js';

/**
 * What the gateway needs to know about how the browser reached it: the scheme, the public host,
 * and the path prefix a proxy strips. `X-Forwarded-Proto`, `-Host`, `-Prefix` and `-For` count
 * only when the peer is a configured trusted proxy; a prefix or host that is not well formed is
 * a bad request (a trusted proxy that sends one is misconfigured, or is passing on an attack).
 */
export interface RequestShape {
  https: boolean;
  /** `''` or a normalised prefix like `/dash` (no trailing slash). */
  prefix: string;
  /** The public host (`host[:port]`), as the browser sent it. */
  host: string;
  /** `http(s)://host`. */
  origin: string;
  /** Whether the request came through a trusted proxy. */
  viaTrustedProxy: boolean;
  /** The client's address: the peer, or behind a trusted proxy the last `X-Forwarded-For` hop that is not itself a trusted proxy. */
  clientAddress: string;
  /** Plain HTTP to a loopback host (the only place bare cookie names are meant for). */
  loopbackHttp: boolean;
}

/** Why a request's shape cannot be determined (a 400), or the shape. */
export type ShapeResult = { ok: true; shape: RequestShape } | { ok: false; field: string; message: string };

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;
/** A path prefix: segments of unreserved characters, no empty, `.` or `..` segment. */
const PREFIX_SEGMENT = /^[A-Za-z0-9._~-]+$/;

/** Validates and normalises an `X-Forwarded-Prefix` (`/dash/` → `/dash`, `/` → ``); undefined when not acceptable. */
export function normalisePrefix(raw: string): string | undefined {
  if (raw.length > 200 || !raw.startsWith('/')) return undefined;
  const trimmed = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  if (trimmed === '') return '';
  const segments = trimmed.slice(1).split('/');
  for (const s of segments) if (!PREFIX_SEGMENT.test(s) || s === '.' || s === '..') return undefined;
  return trimmed;
}

function single(v: string | string[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  // A proxy chain may append: "https, http" — the first is what the browser used.
  return first?.split(',')[0]?.trim();
}

/** Longest `X-Forwarded-For` read (a longer one is ignored: the peer counts). */
const MAX_FORWARDED_FOR = 1024;

/**
 * The client of a request a trusted proxy forwarded: the last `X-Forwarded-For` hop that is not
 * itself a trusted proxy, read from the right (each proxy appends the address it saw; what comes
 * before is whatever the client wrote, so a client cannot make itself someone else). All hops
 * trusted: the first. No (or an oversized) header: undefined.
 */
function forwardedClient(header: string | string[] | undefined, trusted: TrustedProxies): string | undefined {
  const text = Array.isArray(header) ? header.join(',') : header;
  if (text === undefined || text.length > MAX_FORWARDED_FOR) return undefined;
  const hops = text
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) if (!trusted.trusts(hops[i])) return hops[i];
  return hops[0];
}

export function requestShape(req: IncomingMessage, trusted: TrustedProxies): ShapeResult {
  const peer = req.socket.remoteAddress ?? '';
  const viaTrustedProxy = trusted.trusts(peer);
  let https = (req.socket as TLSSocket).encrypted === true;
  let host = req.headers.host ?? '';
  let prefix = '';
  let clientAddress = peer;
  if (viaTrustedProxy) {
    const proto = single(req.headers['x-forwarded-proto'])?.toLowerCase();
    if (proto !== undefined) {
      if (proto !== 'https' && proto !== 'http') return { ok: false, field: 'X-Forwarded-Proto', message: 'X-Forwarded-Proto must be http or https' };
      https = proto === 'https';
    }
    const fhost = single(req.headers['x-forwarded-host']);
    if (fhost !== undefined) host = fhost;
    const fprefix = single(req.headers['x-forwarded-prefix']);
    if (fprefix !== undefined) {
      const p = normalisePrefix(fprefix);
      if (p === undefined) return { ok: false, field: 'X-Forwarded-Prefix', message: 'X-Forwarded-Prefix must be a plain path like /app (no //, no . or .. segments, no encoded characters)' };
      prefix = p;
    }
    clientAddress = forwardedClient(req.headers['x-forwarded-for'], trusted) ?? peer;
  }
  if (!HOST.test(host)) return { ok: false, field: viaTrustedProxy && req.headers['x-forwarded-host'] ? 'X-Forwarded-Host' : 'Host', message: 'the request has no valid Host' };
  const hostname = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d+$/, '');
  return {
    ok: true,
    shape: { https, prefix, host, origin: `${https ? 'https' : 'http'}://${host}`, viaTrustedProxy, clientAddress, loopbackHttp: !https && isLoopbackHost(hostname) },
  };
}
